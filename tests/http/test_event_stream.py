"""GET /madre/events: the audit rows as Server-Sent Events, read through a real uvicorn.

Each event has `id:` (its madre_actions row id), `event:` (the action) and `data:` (the row
as JSON). Filters: plan_id, session_id, status. `Last-Event-ID` (or `?since=ID`) replays what
came after that id, so a client that reconnects misses nothing and sees nothing twice. A
client more than MADRE_EVENTS_MAX_LAG events behind gets a `dropped` event and is cut off.
Streams end when Madre drains.

Streams are read by a thread into a queue (`sse.Stream`): a test waits on the queue with a
timeout, never sleeps. Every stream is closed in a `finally` (its socket is shut down, which
wakes the reading thread at once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from helpers import assert_envelope, post_ok, table_rows
from sse import HEADERS, Sse, Stream

from madre import Madre, create_app
from madre.contracts.events import Event
from madre.contracts.intake import ControlRequest
from madre.http.stream import BATCH
from madre.standins import LoopbackServer, StandinCluster

@pytest.fixture
def open_stream(request: pytest.FixtureRequest) -> Iterator[Callable[..., Stream]]:
    """Open streams on the live server (the `live_url` one unless a URL is given: a test
    with a Madre of its own starts no other); every one is closed after the test."""
    opened: list[Stream] = []

    def open_(url: str | None = None, **kwargs: Any) -> Stream:
        stream = Stream(url or request.getfixturevalue("live_url"), **kwargs)
        opened.append(stream)
        return stream

    try:
        yield open_
    finally:
        for stream in opened:
            stream.close()



def low_chat(url: str, session_id: str | None = None) -> dict[str, Any]:
    """A LOW chat, answered DONE (so all its rows are committed)."""
    body = {"message": "mix these 3 stems", **({"session_id": session_id} if session_id else {})}
    answer = post_ok(url, "/madre/chat", body)
    assert answer["status"] == "DONE", answer
    return answer


def waiting(url: str) -> dict[str, Any]:
    answer = post_ok(url, "/madre/control", {"target": "shub", "action": "delete"})
    assert answer["status"] == "pending_confirmation", answer
    return answer


def rows(madre: Madre, **match: Any) -> list[dict[str, Any]]:
    """The madre_actions rows, oldest first, whose columns equal `match`."""
    return [r for r in table_rows(madre, "madre_actions")
            if all(r[k] == v for k, v in match.items())]


def is_plan_done(plan_id: str) -> Callable[[Sse], bool]:
    return lambda e: e.event == "plan_done" and e.data["plan_id"] == plan_id


def ids(events: list[Sse]) -> list[int | None]:
    return [e.id for e in events]


# --------------------------------------------------------------------------- what an event is


def test_a_plans_events_arrive_as_they_happen_with_id_event_and_json_data(
        live_url, open_stream) -> None:
    stream = open_stream()
    plan_id = low_chat(live_url)["plan_id"]
    events = stream.until(is_plan_done(plan_id))
    assert [e.event for e in events] == [
        "decision:LOW", "plan_created", "plan_started", "step_started:CALL_SWITCH",
        "step_done:CALL_SWITCH", "step_started:CALL_SHUB", "step_done:CALL_SHUB", "plan_done"]
    for event in events:
        assert set(event.data) == set(Event.model_fields)
        assert event.data["id"] == event.id
        assert event.data["action"] == event.event
        assert event.data["plan_id"] == plan_id
    assert [e.data["plan_status"] for e in events[1:3]] == ["PENDING", "RUNNING"]
    assert events[-1].data["plan_status"] == "DONE"


def test_the_events_are_the_audit_rows_with_their_ids_in_commit_order(
        madre, live_url, open_stream) -> None:
    stream = open_stream()
    first = low_chat(live_url)["plan_id"]
    second = low_chat(live_url)["plan_id"]
    events = stream.until(is_plan_done(second))
    assert ids(events) == [r["id"] for r in rows(madre)]
    assert ids(events) == sorted(ids(events))
    assert {e.data["plan_id"] for e in events} == {first, second}


def test_without_last_event_id_a_stream_starts_with_what_happens_next(
        live_url, open_stream) -> None:
    before = low_chat(live_url)["plan_id"]
    stream = open_stream()
    after = low_chat(live_url)["plan_id"]
    events = stream.until(is_plan_done(after))
    assert before not in {e.data["plan_id"] for e in events}
    assert events[0].event == "decision:LOW"


# --------------------------------------------------------------------------- filters


def test_the_plan_id_filter_sends_only_that_plans_events(madre, live_url, open_stream) -> None:
    stream = open_stream()
    mine = low_chat(live_url)["plan_id"]
    other = low_chat(live_url)["plan_id"]
    filtered = open_stream(plan_id=mine, since=0)
    events = filtered.until(is_plan_done(mine))
    assert ids(events) == [r["id"] for r in rows(madre, plan_id=mine)]
    # The unfiltered stream saw the other plan: the filter, not the timing, left it out.
    assert other in {e.data["plan_id"] for e in stream.until(is_plan_done(other))}


def test_the_session_id_filter_sends_only_that_sessions_events(
        madre, live_url, open_stream) -> None:
    stream = open_stream(session_id="sess-events")
    first = low_chat(live_url, session_id="sess-events")["plan_id"]
    low_chat(live_url, session_id="someone-else")
    second = low_chat(live_url, session_id="sess-events")["plan_id"]
    events = stream.until(is_plan_done(second))
    assert ids(events) == [r["id"] for r in rows(madre, session_id="sess-events")]
    assert {e.data["plan_id"] for e in events} == {first, second}


def test_the_status_filter_sends_only_events_after_which_the_plan_has_that_status(
        madre, live_url, open_stream) -> None:
    stream = open_stream(status="waiting")  # case-insensitive
    held = waiting(live_url)["plan_id"]
    low_chat(live_url)
    also_held = waiting(live_url)["plan_id"]
    events = stream.until(lambda e: e.data["plan_id"] == also_held
                          and e.event == "plan_created")
    assert {e.data["plan_status"] for e in events} == {"WAITING"}
    assert ids(events) == [r["id"] for r in rows(madre, plan_status="WAITING")]
    assert {e.data["plan_id"] for e in events} == {held, also_held}


def test_filters_combine(madre, live_url, open_stream) -> None:
    stream = open_stream(session_id="sess-both", status="DONE")
    plan_id = low_chat(live_url, session_id="sess-both")["plan_id"]
    low_chat(live_url, session_id="sess-other")
    events = stream.until(is_plan_done(plan_id))
    assert ids(events) == [r["id"] for r in rows(madre, session_id="sess-both",
                                                 plan_status="DONE")]


# --------------------------------------------------------------------------- replay


def test_reconnecting_with_last_event_id_gets_exactly_the_events_after_it(
        madre, live_url, open_stream) -> None:
    first = open_stream()
    plan_id = low_chat(live_url)["plan_id"]
    seen = first.take(3)
    first.close()  # the client goes away in the middle of the plan's events...
    later = low_chat(live_url)["plan_id"]  # ...and more happens while it is away
    again = open_stream(last_event_id=seen[-1].id)
    rest = again.until(is_plan_done(later))
    everything = [r["id"] for r in rows(madre)]
    assert ids(seen) + ids(rest) == everything  # none missed, none repeated
    assert plan_id in {e.data["plan_id"] for e in rest}


def test_since_in_the_query_resumes_like_last_event_id(madre, live_url, open_stream) -> None:
    plan_id = low_chat(live_url)["plan_id"]
    all_ids = [r["id"] for r in rows(madre)]
    stream = open_stream(since=all_ids[2])
    assert ids(stream.until(is_plan_done(plan_id))) == all_ids[3:]


def test_since_0_replays_every_event_from_the_start(madre, live_url, open_stream) -> None:
    low_chat(live_url)
    waiting(live_url)
    last = low_chat(live_url)["plan_id"]
    stream = open_stream(since=0)
    events = stream.until(is_plan_done(last))
    assert ids(events) == [r["id"] for r in rows(madre)]
    assert events[0].id == rows(madre)[0]["id"]


def test_last_event_id_wins_over_since(madre, live_url, open_stream) -> None:
    plan_id = low_chat(live_url)["plan_id"]
    all_ids = [r["id"] for r in rows(madre)]
    stream = open_stream(last_event_id=all_ids[4], since=0)
    assert ids(stream.until(is_plan_done(plan_id))) == all_ids[5:]


def test_replayed_events_go_on_live_in_one_stream(madre, live_url, open_stream) -> None:
    old = low_chat(live_url)["plan_id"]
    stream = open_stream(since=0)
    stream.until(is_plan_done(old))
    new = low_chat(live_url)["plan_id"]
    live = stream.until(is_plan_done(new))
    assert {e.data["plan_id"] for e in live} == {new}


# --------------------------------------------------------------------------- slow clients


@pytest.fixture
def lagging(start_madre, standins: StandinCluster) -> Iterator[tuple[Madre, str]]:
    """A Madre that drops clients more than 5 events behind, served by its own uvicorn, with
    300 events recorded already (denied controls: one madre_actions row each)."""
    runtime = start_madre(events_max_lag=5)
    for _ in range(300):
        runtime.control(ControlRequest(target="madre", action="stop"))
    with LoopbackServer(create_app(runtime), lifespan="on", name="madre-lagging") as server:
        yield runtime, server.url


def test_a_client_more_than_the_max_lag_behind_gets_dropped_and_the_stream_ends(
        lagging, open_stream) -> None:
    runtime, url = lagging
    recorded = [r["id"] for r in rows(runtime)]
    assert len(recorded) == 300
    stream = open_stream(url, since=0)
    # The first batch is sent; then the client is still 100 events behind (more than 5).
    first = stream.take(BATCH)
    assert ids(first) == recorded[:BATCH]
    dropped = stream.next()
    assert dropped.event == "dropped"
    assert dropped.id == recorded[BATCH - 1]
    assert dropped.data["resume_with_last_event_id"] == recorded[BATCH - 1]
    assert "more than 5 events behind" in dropped.data["reason"]
    assert stream.ended()


def test_a_dropped_client_resumes_with_the_id_the_dropped_event_gives(
        lagging, open_stream) -> None:
    runtime, url = lagging
    recorded = [r["id"] for r in rows(runtime)]
    stream = open_stream(url, since=0)
    stream.take(BATCH)
    resume = stream.next().data["resume_with_last_event_id"]
    rest = open_stream(url, last_event_id=resume)
    assert ids(rest.take(len(recorded) - BATCH)) == recorded[BATCH:]


# --------------------------------------------------------------------------- refusals, ending


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "9" * 19, "3x"])
def test_a_bad_last_event_id_is_answered_400_in_the_envelope(live_url, bad) -> None:
    resp = requests.get(live_url + "/madre/events", headers={**HEADERS, "Last-Event-ID": bad},
                        stream=True, timeout=10)
    with resp:
        assert_envelope(resp, 400, "bad_request")


@pytest.mark.parametrize("bad", ["yesterday", "٣", "1e3"])
def test_a_bad_since_is_answered_400_in_the_envelope(live_url, bad) -> None:
    resp = requests.get(live_url + "/madre/events", params={"since": bad},
                        headers=HEADERS, stream=True, timeout=10)
    with resp:
        assert_envelope(resp, 400, "bad_request")


def test_a_status_that_does_not_exist_is_answered_422(live_url) -> None:
    resp = requests.get(live_url + "/madre/events", params={"status": "FINISHED"},
                        headers=HEADERS, stream=True, timeout=10)
    with resp:
        body = assert_envelope(resp, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["query", "status"]


def test_the_stream_needs_the_token(live_url) -> None:
    resp = requests.get(live_url + "/madre/events", stream=True, timeout=10)
    with resp:
        assert_envelope(resp, 401, "auth_required")


def test_streams_end_when_madre_begins_to_drain(madre, live_url, open_stream) -> None:
    stream = open_stream()
    replaying = open_stream(since=0)
    madre.begin_drain()
    assert stream.ended()
    assert replaying.ended()

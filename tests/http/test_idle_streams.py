"""Idle filtered event streams cost no database read per commit (issue 10, point 4).

One reader per process (`madre.event_hub.EventHub`) reads each commit's rows once and hands
them, in memory, to the streams whose filters match. Shown through a real uvicorn serving
the app with `madre serve`'s connection options: the same commits are made with no idle
stream and with 200 streams filtered on plans that never get an event, and

- the hub reads at most once per commit, with 200 idle streams as with none (a read per
  stream per commit would be at least 200 reads for every commit);
- no stream reads the database while it waits (no `events_after`, no `newest` once open);
- the one stream filtered on a plan that does get events receives exactly that plan's
  events, and the idle ones receive nothing.

Reads are counted by wrapping the two read functions Madre hands the hub (`Queries.
published_after`, `Queries.last_event_id`) and the per-stream replay read (`Queries.
events_after`) before Madre starts; commits by counting `EventHub.notify` (called once
after each of the Store actor's commits). The hub's periodic poll (for other instances'
rows) is set to an hour so every read in the test answers a commit. Nothing sleeps: the
test waits for the watched plan's `plan_done` on its stream.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import post_ok, table_rows
from sse import Stream

from madre import Madre, create_app
from madre.event_hub import EventHub
from madre.server import http_options
from madre.standins import LoopbackServer
from madre.store.queries import Queries

IDLE = 200
CHATS = 5  # LOW chats per round: each commits its intent, plan, steps and audit rows


class Counts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}

    def wrap(self, owner: type, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] = self.calls.get(name, 0) + 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, start_madre) -> Iterator[tuple[Madre, str, Counts]]:
    counts = Counts()
    for name in ("published_after", "last_event_id", "events_after"):
        counts.wrap(Queries, name, monkeypatch)
    counts.wrap(EventHub, "notify", monkeypatch)
    madre = start_madre(tick_seconds=3600.0)  # reads answer commits only, never a timer
    with LoopbackServer(create_app(madre), lifespan="on", name="madre-idle-streams",
                        **http_options(madre.settings)) as server:
        yield madre, server.url, counts



def held_plan(url: str) -> dict[str, Any]:
    answer = post_ok(url, "/madre/control", {"target": "shub", "action": "delete"})
    assert answer["status"] == "pending_confirmation", answer
    return answer


def newest_row(madre: Madre) -> int:
    rows = table_rows(madre, "madre_actions")
    return rows[-1]["id"] if rows else 0


def one_round(madre: Madre, url: str, counts: Counts, watched: dict[str, Any],
              watcher: Stream) -> tuple[dict[str, int], list[int]]:
    """CHATS LOW chats, then the watched plan confirmed and run to its end; the reads and
    commits counted meanwhile, and the ids the watcher received."""
    before = counts.snapshot()
    for _ in range(CHATS):
        answer = post_ok(url, "/madre/chat", {"message": "mix these 3 stems"})
        assert answer["status"] == "DONE", answer
    post_ok(url, f"/madre/plans/{watched['plan_id']}/confirm",
         {"confirm_token": watched["confirm_token"]})
    got = watcher.until(lambda e: e.event == "plan_done", timeout=30)
    after = counts.snapshot()  # reads counted before commits: never a read without its commit
    spent = {k: after.get(k, 0) - before.get(k, 0)
             for k in ("published_after", "last_event_id", "events_after", "notify")}
    assert {e.data["plan_id"] for e in got} == {watched["plan_id"]}
    return spent, [e.id for e in got if e.id is not None]


def test_idle_filtered_streams_add_no_database_read_per_commit(counted) -> None:
    madre, url, counts = counted
    streams: list[Stream] = []
    try:
        # No idle stream: only the one watching a plan that is about to run.
        quiet = held_plan(url)
        start = newest_row(madre)
        watcher = Stream(url, plan_id=quiet["plan_id"])
        streams.append(watcher)
        assert madre.events.subscribers == 1
        alone, got = one_round(madre, url, counts, quiet, watcher)
        assert got == [r["id"] for r in table_rows(madre, "madre_actions")
                       if r["plan_id"] == quiet["plan_id"] and r["id"] > start]

        # 200 idle streams, filtered on plans that never get an event (and the first
        # watcher, whose plan gets none from here on), then the same round again.
        busy = held_plan(url)
        start = newest_row(madre)
        idle = [Stream(url, plan_id=str(uuid.uuid4())) for _ in range(IDLE)]
        streams += idle
        watcher = Stream(url, plan_id=busy["plan_id"])
        streams.append(watcher)
        assert madre.events.subscribers == IDLE + 2
        crowded, got = one_round(madre, url, counts, busy, watcher)
        assert got == [r["id"] for r in table_rows(madre, "madre_actions")
                       if r["plan_id"] == busy["plan_id"] and r["id"] > start]

        for spent in (alone, crowded):
            assert spent["notify"] > 0
            # At most one read per commit (+1: a wake left by the commit just before the
            # round may be read within it), whatever the number of streams.
            assert 1 <= spent["published_after"] <= spent["notify"] + 1, spent
            # The waiting streams never touch the database themselves.
            assert spent["events_after"] == 0 and spent["last_event_id"] == 0, spent
        assert crowded["published_after"] < IDLE, crowded  # not one read per stream
        # Over the whole run, the hub never read without a commit to read.
        total = counts.snapshot()
        assert total["published_after"] <= total["notify"], total
        # The idle streams were sent nothing (the first watcher included, after its plan).
        assert all(s.queue.empty() for s in [*idle, streams[0]])
    finally:
        for stream in streams:
            stream.close()

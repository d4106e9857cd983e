"""Confirmation expiry driven by the tick, and the graceful stop (drain).

Expiry: `madre.tick(now=...)` ends the plans whose confirmation ran out, each exactly once
however often and from however many threads or instances it runs; the timer calls it every
MADRE_TICK_SECONDS. Drain: after `begin_drain()` no new work is taken (ShuttingDown, 503), a
step in flight finishes, its plan is saved where it is and the next start finishes it.
Tests run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from helpers import (
    WAIT,
    at_once,
    assert_envelope,
    audit_actions,
    execute,
    final,
    make_settings,
    table_rows,
)

from madre import Madre
from madre.contracts.intake import (
    ChatRequest,
    ControlRequest,
    ControlResponse,
    IntentRequest,
)
from madre.errors import NotWaiting, ShuttingDown, TokenExpired
from madre.model import Plan, Status

# --------------------------------------------------------------------------- helpers




def ask_to_delete(madre: Madre, target: str = "hermes") -> ControlResponse:
    """A HIGH-risk order: its plan waits for a confirmation (token, expires_at)."""
    pending = madre.control(ControlRequest(target=target, action="delete"))
    assert pending.confirm_token and pending.expires_at
    return pending


def after(pending: ControlResponse) -> dt.datetime:
    """A moment just past the confirmation's expiry."""
    assert pending.expires_at is not None
    return pending.expires_at + dt.timedelta(seconds=1)


# --------------------------------------------------------------------------- expiry by tick


def test_a_tick_past_the_expiry_ends_the_plan_in_error_and_later_ticks_do_not_repeat_it(
        madre, standins):
    pending = ask_to_delete(madre)

    ticks = [madre.tick(now=after(pending)) for _ in range(3)]

    assert [[p.plan_id for p in t] for t in ticks] == [[pending.plan_id], [], []]
    plan = madre.get_plan(pending.plan_id)
    assert plan.status is Status.ERROR and plan.reason == "confirmation_expired"
    assert plan.confirmation.expired
    assert audit_actions(madre, pending.plan_id).count("confirmation_expired") == 1


def test_two_ticks_at_the_same_moment_expire_the_plan_once(madre, standins):
    pending = ask_to_delete(madre)
    moment = after(pending)

    first, second = at_once(lambda: madre.tick(now=moment), lambda: madre.tick(now=moment))

    assert sorted([len(first), len(second)]) == [0, 1]
    assert audit_actions(madre, pending.plan_id).count("confirmation_expired") == 1


def test_two_madres_on_one_database_ticking_at_once_expire_each_plan_once_without_failing(
        madre, start_madre, standins, database_url):
    if database_url.startswith("sqlite"):
        pytest.skip("one Madre instance per SQLite file: several share PostgreSQL only")
    other = start_madre(tick_seconds=3600)
    pendings = [ask_to_delete(madre) for _ in range(20)]
    moment = max(after(p) for p in pendings)

    ours, theirs = at_once(lambda: madre.tick(now=moment), lambda: other.tick(now=moment))

    assert not isinstance(ours, Exception), ours
    assert not isinstance(theirs, Exception), theirs
    expired = sorted(p.plan_id for p in ours + theirs)
    assert expired == sorted(p.plan_id for p in pendings)
    for pending in pendings:
        assert audit_actions(madre, pending.plan_id).count("confirmation_expired") == 1


def test_an_expired_plan_whose_stored_state_cannot_be_read_does_not_stop_the_tick(madre,
                                                                                   standins):
    unreadable, readable = ask_to_delete(madre), ask_to_delete(madre)

    assert execute(madre, "UPDATE tasks SET plan_json = ? WHERE uuid = ?",
                   ("{bad", unreadable.plan_id)) == 1

    expired = madre.tick(now=max(after(unreadable), after(readable)))

    assert sorted(p.plan_id for p in expired) == sorted([unreadable.plan_id, readable.plan_id])
    assert madre.get_plan(readable.plan_id).reason == "confirmation_expired"
    [row] = [r for r in table_rows(madre, "tasks") if r["uuid"] == unreadable.plan_id]
    assert (row["status"], row["error"]) == ("ERROR", "confirmation_expired")
    assert audit_actions(madre, unreadable.plan_id).count("confirmation_expired") == 1
    assert madre.tick(now=after(readable) + dt.timedelta(minutes=1)) == []


def test_a_confirm_after_the_tick_expired_the_plan_is_refused_and_never_resumes_it(madre,
                                                                                  standins):
    pending = ask_to_delete(madre)
    madre.tick(now=after(pending))

    with pytest.raises((NotWaiting, TokenExpired)):
        madre.confirm(pending.plan_id, pending.confirm_token)

    plan = madre.get_plan(pending.plan_id)
    assert plan.status is Status.ERROR and plan.reason == "confirmation_expired"
    assert "plan_confirmed" not in audit_actions(madre, pending.plan_id)
    assert standins.recorder.calls("hermes") == []


def test_a_confirm_racing_the_tick_that_expires_it_has_exactly_one_winner(madre, standins):
    pending = ask_to_delete(madre)

    confirmed, expired = at_once(
        lambda: madre.confirm(pending.plan_id, pending.confirm_token, wait=0),
        lambda: madre.tick(now=after(pending)))

    actions = audit_actions(madre, pending.plan_id)
    if isinstance(confirmed, Exception):  # the tick won
        assert isinstance(confirmed, (NotWaiting, TokenExpired))
        assert [p.plan_id for p in expired] == [pending.plan_id]
        assert final(madre, pending.plan_id).reason == "confirmation_expired"
        assert "plan_confirmed" not in actions
        assert standins.recorder.calls("hermes") == []
    else:  # the confirm won
        assert expired == []
        assert final(madre, pending.plan_id).status is Status.DONE
        assert "confirmation_expired" not in actions
    assert actions.count("plan_confirmed") + actions.count("confirmation_expired") == 1


def test_a_plan_confirmed_before_its_expiry_is_left_alone_by_the_tick(start_madre, standins):
    runtime = start_madre(step_timeout_seconds=10)
    standins.behaviours["hermes"].set("hang")
    pending = ask_to_delete(runtime)
    runtime.confirm(pending.plan_id, pending.confirm_token, wait=0)
    assert standins.recorder.wait_for_calls("hermes", 1, timeout=WAIT)  # RUNNING, in flight

    assert runtime.tick(now=after(pending)) == []

    standins.behaviours["hermes"].release_all()
    assert final(runtime, pending.plan_id).status is Status.DONE
    assert "confirmation_expired" not in audit_actions(runtime, pending.plan_id)


def test_the_timer_expires_a_confirmation_with_no_request_arriving(start_madre, standins):
    runtime = start_madre(tick_seconds=0.05, confirm_ttl_seconds=0.3)
    pending = ask_to_delete(runtime)

    ended = runtime.wait_for_plan(pending.plan_id, 5, final=True)

    assert ended is not None, "the timer never expired the confirmation"
    assert ended.status is Status.ERROR and ended.reason == "confirmation_expired"
    assert ended.updated_at >= pending.expires_at  # not a moment before its time
    assert audit_actions(runtime, pending.plan_id).count("confirmation_expired") == 1


# --------------------------------------------------------------------------- drain: intake


INTAKE = {
    "chat": lambda m, p: m.chat(ChatRequest(message="mix these 3 stems")),
    "control": lambda m, p: m.control(ControlRequest(target="shub", action="status")),
    "intent": lambda m, p: m.submit_intent(IntentRequest(action="status", target="shub")),
    "confirm": lambda m, p: m.confirm(p.plan_id, p.confirm_token),
}


@pytest.mark.parametrize("kind", INTAKE)
def test_after_begin_drain_new_work_is_refused_with_shutting_down(madre, standins, kind):
    pending = ask_to_delete(madre)
    madre.begin_drain()

    with pytest.raises(ShuttingDown):
        INTAKE[kind](madre, pending)

    assert madre.get_plan(pending.plan_id).status is Status.WAITING
    assert standins.recorder.calls("shub") == []


ROUTES = {
    "chat": lambda p: ("/madre/chat", {"message": "mix these 3 stems"}),
    "control": lambda p: ("/madre/control", {"target": "shub", "action": "status"}),
    "intent": lambda p: ("/madre/intent", {"action": "status", "target": "shub"}),
    "confirm": lambda p: (f"/madre/plans/{p.plan_id}/confirm", {"confirm_token": p.confirm_token}),
}


@pytest.mark.parametrize("kind", ROUTES)
def test_after_begin_drain_http_intake_answers_503_shutting_down(madre, client, kind):
    pending = ask_to_delete(madre)
    madre.begin_drain()
    path, body = ROUTES[kind](pending)

    assert_envelope(client.post(path, json=body), 503, "shutting_down")


# --------------------------------------------------------------------------- drain: plans


def drain_with_shub_in_flight(madre: Madre, standins: Any) -> Plan:
    """A shub order whose call is in flight when draining begins, then lets the call answer;
    the plan as its actor saved it when it stopped."""
    standins.behaviours["shub"].set("hang")
    accepted = madre.control(ControlRequest(target="shub", action="ping"))
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)
    # Registered before the drain: the actor wakes every watch when it suspends the plan.
    watch = madre.watchers.watch(accepted.plan_id, final=True)
    madre.begin_drain()
    standins.behaviours["shub"].set("ok")  # health probes must not hang the stop either
    standins.behaviours["shub"].release_all()
    suspended = watch.wait(WAIT)
    assert suspended is not None, "the plan actor did not stop after its step"
    return suspended


def test_draining_lets_the_step_in_flight_finish_and_saves_the_plan_running_at_the_next(
        madre, standins):
    plan = drain_with_shub_in_flight(madre, standins)

    stored = madre.get_plan(plan.plan_id)
    assert stored.status is Status.RUNNING
    assert [s.status for s in stored.steps] == [Status.DONE, Status.PENDING]
    assert stored.steps[0].result is not None
    assert audit_actions(madre, plan.plan_id)[-1] == "plan_suspended"


def test_a_plan_suspended_by_a_drain_is_finished_by_the_next_madre_without_calling_again(
        madre, settings, standins):
    plan = drain_with_shub_in_flight(madre, standins)
    madre.stop()

    with Madre(settings) as again:
        ended = final(again, plan.plan_id)

    assert ended.status is Status.DONE
    assert standins.recorder.idempotency_counts("shub") == {plan.steps[0].step_id: 1}


def test_a_confirmed_plan_still_queued_when_draining_makes_no_call_and_runs_after_restart(
        start_madre, database_url, standins):
    runtime = start_madre(max_active_plans=1, step_timeout_seconds=10)
    standins.behaviours["shub"].set("hang")
    busy = runtime.control(ControlRequest(target="shub", action="ping"))
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)
    pending = ask_to_delete(runtime)
    runtime.confirm(pending.plan_id, pending.confirm_token, wait=0)  # queued behind busy

    runtime.begin_drain()
    standins.behaviours["shub"].set("ok")
    standins.behaviours["shub"].release_all()
    runtime.stop()

    assert standins.recorder.calls("hermes") == []
    with Madre(make_settings(database_url, standins)) as again:
        assert final(again, busy.plan_id).status is Status.DONE
        assert final(again, pending.plan_id).status is Status.DONE
    assert len(standins.recorder.calls("hermes")) == 1
    assert len(standins.recorder.calls("shub")) == 1


def test_stop_returns_while_a_module_hangs_within_the_step_timeout(start_madre, standins):
    runtime = start_madre(step_timeout_seconds=1, step_retries=0)
    standins.behaviours["shub"].set("hang")  # for 30 s unless released
    runtime.control(ControlRequest(target="shub", action="ping"))
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)

    began = time.monotonic()
    runtime.stop()
    took = time.monotonic() - began

    assert took < 1 + 3, f"stop took {took:.1f} s with a 1 s step timeout"
    assert not runtime.running

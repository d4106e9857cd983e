"""Recovery on boot: what a previous run left in the database is picked up by the next start.

The state a stopped (or crashed) Madre leaves is written straight to the database through the
Store actor of a first Madre, which is then stopped; a second Madre on the same database
recovers it during `start()`. Tests run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from doubles import ConcurrencyMeter
from helpers import (
    WAIT,
    audit_actions,
    final,
    intent_row,
    make_settings,
    plan_actor_count,
    store_plan,
    table_rows,
)

from madre import Madre, membership
from madre.contracts.intake import ControlRequest
from madre.errors import TokenExpired
from madre.model import Plan, Status, Step, StepType, WaitReason, new_id, utcnow
from madre.records import Confirmation, IntentRecord
from madre.rules import lifecycle
from madre.rules.tokens import issue_token
from madre.standins import StandinCluster

# --------------------------------------------------------------------------- helpers


@pytest.fixture
def first(database_url: str, standins: StandinCluster) -> Iterator[Madre]:
    """The Madre whose run is interrupted. Its timer never ticks (an hour), so nothing it
    leaves behind is changed before the test stops it."""
    runtime = Madre(make_settings(database_url, standins, tick_seconds=3600)).start()
    try:
        yield runtime
    finally:
        runtime.stop()


def call_step(index: int, module: str = "hermes") -> Step:
    kind = {"hermes": StepType.CALL_HERMES, "shub": StepType.CALL_SHUB}[module]
    return Step(index=index, type=kind,
                payload={"action": "ping", "target": module, "task": "ping", "params": {}})


def new_plan(*steps: Step) -> Plan:
    return Plan(intent_id=new_id(), session_id=new_id(), source="test", steps=list(steps))


# --------------------------------------------------------------------------- running, pending


def test_a_step_left_in_flight_runs_again_with_the_same_key_and_the_plan_reaches_done(
        first, start_madre, standins):
    plan = new_plan(call_step(0), Step(index=1, type=StepType.NOOP))
    store_plan(first, plan)

    # what the write-ahead of step 0 had saved
    change = lifecycle.start(plan, now=utcnow()).then(
        lifecycle.step_started(plan, plan.steps[0], now=utcnow()))
    saved = first.store.save_plan(plan, change)
    assert saved.steps[0].attempts == 1
    first.stop()

    again = start_madre()
    ended = final(again, plan.plan_id)

    assert ended.status is Status.DONE
    assert ended.steps[0].attempts == 2
    # the key is the step id saved before the interruption
    assert standins.recorder.idempotency_counts("hermes") == {plan.steps[0].step_id: 1}


def test_a_plan_left_pending_is_started_on_boot_and_makes_its_call_once(first, start_madre,
                                                                        standins):
    plan = new_plan(call_step(0, "shub"), Step(index=1, type=StepType.NOOP))
    store_plan(first, plan)
    first.stop()

    again = start_madre()
    ended = final(again, plan.plan_id)

    assert ended.status is Status.DONE
    assert standins.recorder.idempotency_counts("shub") == {plan.steps[0].step_id: 1}
    assert "plan_started" in audit_actions(again, plan.plan_id)


# --------------------------------------------------------------------------- waiting plans


def test_waiting_plans_stay_passive_on_boot_and_make_no_call_until_confirmed(first, start_madre,
                                                                             standins):
    by_control = first.control(ControlRequest(target="shub", action="delete"))
    # and one parked at a gate by its actor, after a step that already called hermes
    issued = issue_token(now=utcnow(), ttl_seconds=900)
    gated = new_plan(call_step(0), Step(index=1, type=StepType.NOOP, blocking=True,
                                        payload={"gate": WaitReason.CONFIRMATION.value}),
                     call_step(2, "shub"))
    store_plan(first, gated, confirmation=Confirmation(issued.token_hash, issued.expires_at))
    first.supervisor.spawn(gated)  # it runs in first's actors until its gate
    assert first.wait_for_plan(gated.plan_id, WAIT).status is Status.WAITING
    first.stop()
    calls_before = len(standins.recorder.calls())

    again = start_madre()

    assert plan_actor_count(again) == 0
    assert len(standins.recorder.calls()) == calls_before
    for plan_id in (by_control.plan_id, gated.plan_id):
        assert again.get_plan(plan_id).status is Status.WAITING
    assert again.confirm(by_control.plan_id, by_control.confirm_token).plan_status is Status.DONE
    assert again.confirm(gated.plan_id, issued.token).plan_status is Status.DONE
    counts = standins.recorder.idempotency_counts()
    assert counts[gated.steps[0].step_id] == 1  # called before the restart, not again
    assert counts[gated.steps[2].step_id] == 1


def test_a_confirmation_that_expired_while_madre_was_down_ends_the_plan_during_start(
        database_url, start_madre, standins):
    short = Madre(make_settings(database_url, standins, confirm_ttl_seconds=0.000001,
                                tick_seconds=3600)).start()
    try:
        pending = short.control(ControlRequest(target="hermes", action="delete"))
        assert short.get_plan(pending.plan_id).status is Status.WAITING
    finally:
        short.stop()

    # Its own timer ticks only after an hour: the expiry can only come from start().
    again = start_madre(tick_seconds=3600)
    plan = again.get_plan(pending.plan_id)

    assert plan.status is Status.ERROR
    assert plan.reason == "confirmation_expired"
    assert audit_actions(again, pending.plan_id).count("confirmation_expired") == 1
    assert intent_row(again, pending.intent_id)["result_status"] == "error"
    with pytest.raises(TokenExpired):  # the truth, though start-up ended it
        again.confirm(pending.plan_id, pending.confirm_token)
    assert standins.recorder.calls("hermes") == []


# --------------------------------------------------------------------------- intents


def test_an_intent_left_without_a_plan_is_closed_as_error_with_a_note_on_boot(first, start_madre,
                                                                              standins):
    orphan = new_id()
    first.store.record_intent(IntentRecord(orphan, "operator", {"message": "cut short"}, None))
    waiting = first.control(ControlRequest(target="hermes", action="delete"))
    first.stop()

    again = start_madre()

    row = intent_row(again, orphan)
    assert row["result_status"] == "error"
    assert row["notes"]
    assert row["processed_by_madre_at"] is not None
    # an intent that got its plan is not touched
    assert intent_row(again, waiting.intent_id)["result_status"] == "waiting"
    assert [r for r in table_rows(again, "intents_log")
            if r["result_status"] == "received"] == []


# --------------------------------------------------------------------------- many at once


def test_fifty_recovered_plans_run_at_most_max_active_plans_at_once_and_all_finish(
        first, start_madre, standins):
    plans = [new_plan(call_step(0, "shub"), Step(index=1, type=StepType.NOOP))
             for _ in range(50)]

    for plan in plans:
        store_plan(first, plan)
    first.stop()
    standins.behaviours["shub"].set("slow", delay=0.05)  # long enough for the four to overlap

    # Metered from the start: recovery runs inside start(), before any test code could look.
    meters: list[ConcurrencyMeter] = []

    def metered(real: Any) -> ConcurrencyMeter:
        meters.append(ConcurrencyMeter(real, together=4))
        return meters[-1]

    again = start_madre(max_active_plans=4, step_runner=metered)

    for plan in plans:
        assert final(again, plan.plan_id, timeout=30).status is Status.DONE
    assert meters[0].peak == 4
    assert len(standins.recorder.idempotency_counts("shub")) == 50


def test_one_round_takes_over_a_backlog_larger_than_one_claim_and_every_plan_finishes(
        first, start_madre, standins, monkeypatch):
    count = membership.CLAIM_BATCH + 50  # more than one claim takes
    plans = [new_plan(call_step(0, "shub"), Step(index=1, type=StepType.NOOP))
             for _ in range(count)]
    for plan in plans:
        store_plan(first, plan)
    first.stop()
    rounds: list[list[str]] = []
    take_over = membership.Membership._take_over

    def recorded(self: Any, now: Any) -> list[str]:
        rounds.append(take_over(self, now))
        return rounds[-1]

    monkeypatch.setattr(membership.Membership, "_take_over", recorded)

    again = start_madre()

    assert sorted(rounds[0]) == sorted(p.plan_id for p in plans)  # recovery's round: all
    for plan in plans:
        assert final(again, plan.plan_id, timeout=30).status is Status.DONE
    assert len(standins.recorder.idempotency_counts("shub")) == count

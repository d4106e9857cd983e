"""Recovery on boot: what a previous run left in the database is picked up by the next start.

The state a stopped (or crashed) Madre leaves is written straight to the database through the
Store actor of a first Madre, which is then stopped; a second Madre on the same database
recovers it during `start()`. Tests run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import WAIT, audit_actions, intent_row, make_settings, table_rows, plan_actor_count

from madre import Madre
from madre.rules import lifecycle
from madre.actors.supervisor import Spawn
from madre.contracts import ControlRequest, Plan, Status, Step, StepType, WaitReason, new_id, utcnow
from madre.delegation.client import Answer
from madre.errors import NotWaiting
from madre.rules.tokens import issue_token
from madre.standins import StandinCluster
from madre.delegation.executor import CALL_MODULES, StepExecutor
from madre.store.repository import Confirmation

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


@pytest.fixture
def next_start(database_url: str, standins: StandinCluster) -> Iterator[Any]:
    """Start the next Madre on the same database (settings overridable); stopped after."""
    started: list[Madre] = []

    def start(cls: type[Madre] = Madre, **overrides: Any) -> Madre:
        runtime = cls(make_settings(database_url, standins, **overrides))
        started.append(runtime)
        return runtime.start()

    yield start
    for runtime in reversed(started):
        runtime.stop()


def final(madre: Madre, plan_id: str, timeout: float = WAIT) -> Plan:
    plan = madre.wait_for_plan(plan_id, timeout, final=True)
    assert plan is not None, f"plan {plan_id} did not end in {timeout} s"
    return plan




def call_step(index: int, module: str = "hermes") -> Step:
    kind = {"hermes": StepType.CALL_HERMES, "shub": StepType.CALL_SHUB}[module]
    return Step(index=index, type=kind,
                payload={"action": "ping", "target": module, "task": "ping", "params": {}})


def new_plan(*steps: Step) -> Plan:
    return Plan(intent_id=new_id(), session_id=new_id(), source="test", steps=list(steps))


def write_plan(madre: Madre, plan: Plan, *, confirmation: Confirmation | None = None) -> None:
    madre.store.call(lambda repo: repo.create_plan(plan, confirmation=confirmation, audit=[]))


# --------------------------------------------------------------------------- running, pending


def test_a_step_left_in_flight_runs_again_with_the_same_key_and_the_plan_reaches_done(
        first, next_start, standins):
    plan = new_plan(call_step(0), Step(index=1, type=StepType.NOOP))
    write_plan(first, plan)

    def left_in_flight(repo: Any) -> Plan:  # what the write-ahead of step 0 had saved
        lifecycle.advance(plan, Status.RUNNING)
        lifecycle.advance_step(plan.steps[0], Status.RUNNING)
        return repo.save_plan(plan)

    saved = first.store.call(left_in_flight)
    assert saved.steps[0].attempts == 1
    first.stop()

    again = next_start()
    ended = final(again, plan.plan_id)

    assert ended.status is Status.DONE
    assert ended.steps[0].attempts == 2
    # the key is the step id saved before the interruption
    assert standins.recorder.idempotency_counts("hermes") == {plan.steps[0].step_id: 1}


def test_a_plan_left_pending_is_started_on_boot_and_makes_its_call_once(first, next_start,
                                                                        standins):
    plan = new_plan(call_step(0, "shub"), Step(index=1, type=StepType.NOOP))
    write_plan(first, plan)
    first.stop()

    again = next_start()
    ended = final(again, plan.plan_id)

    assert ended.status is Status.DONE
    assert standins.recorder.idempotency_counts("shub") == {plan.steps[0].step_id: 1}
    assert "plan_started" in audit_actions(again, plan.plan_id)


# --------------------------------------------------------------------------- waiting plans


def test_waiting_plans_stay_passive_on_boot_and_make_no_call_until_confirmed(first, next_start,
                                                                             standins):
    by_control = first.control(ControlRequest(target="shub", action="delete"))
    # and one parked at a gate by its actor, after a step that already called hermes
    issued = issue_token(now=utcnow(), ttl_seconds=900)
    gated = new_plan(call_step(0), Step(index=1, type=StepType.NOOP, blocking=True,
                                        payload={"gate": WaitReason.CONFIRMATION.value}),
                     call_step(2, "shub"))
    write_plan(first, gated, confirmation=Confirmation(issued.token_hash, issued.expires_at))
    first.supervisor.tell(Spawn(gated))  # it runs in first's actors until its gate
    assert first.wait_for_plan(gated.plan_id, WAIT).status is Status.WAITING
    first.stop()
    calls_before = len(standins.recorder.calls())

    again = next_start()

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
        database_url, next_start, standins):
    short = Madre(make_settings(database_url, standins, confirm_ttl_seconds=0.000001,
                                tick_seconds=3600)).start()
    try:
        pending = short.control(ControlRequest(target="hermes", action="delete"))
        assert short.get_plan(pending.plan_id).status is Status.WAITING
    finally:
        short.stop()

    # Its own timer ticks only after an hour: the expiry can only come from start().
    again = next_start(tick_seconds=3600)
    plan = again.get_plan(pending.plan_id)

    assert plan.status is Status.ERROR
    assert plan.reason == "confirmation_expired"
    assert audit_actions(again, pending.plan_id).count("confirmation_expired") == 1
    assert intent_row(again, pending.intent_id)["result_status"] == "error"
    with pytest.raises(NotWaiting):
        again.confirm(pending.plan_id, pending.confirm_token)
    assert standins.recorder.calls("hermes") == []


# --------------------------------------------------------------------------- intents


def test_an_intent_left_without_a_plan_is_closed_as_error_with_a_note_on_boot(first, next_start,
                                                                              standins):
    orphan = new_id()
    first.store.call(lambda repo: repo.record_intent(
        intent_id=orphan, source="operator", payload={"message": "cut short"}, session_id=None))
    waiting = first.control(ControlRequest(target="hermes", action="delete"))
    first.stop()

    again = next_start()

    row = intent_row(again, orphan)
    assert row["result_status"] == "error"
    assert row["notes"]
    assert row["processed_by_madre_at"] is not None
    # an intent that got its plan is not touched
    assert intent_row(again, waiting.intent_id)["result_status"] == "waiting"
    assert [r for r in table_rows(again, "intents_log")
            if r["result_status"] == "received"] == []


# --------------------------------------------------------------------------- many at once


class ConcurrencyMeter(StepExecutor):
    """The real executor, counting how many steps run at the same moment (the peak). The
    first `together` steps wait for each other at a barrier: they must all be in flight at
    once, so the peak reaches `together` whatever the machine's speed."""

    def __init__(self, madre: Madre, *, together: int) -> None:
        s = madre.settings
        routes = {"switch": s.switch_parse_route, "hermes": s.hermes_route,
                  "hormiguero": s.hormiguero_route, "manifestator": s.manifestator_route,
                  "shub": s.shub_route}
        super().__init__({m: madre.clients[m] for m in CALL_MODULES.values()}, routes,
                         madre.board)
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(together)
        self._together = together
        self._entered = 0
        self._running = 0
        self.peak = 0

    def run(self, step: Step, plan: Plan) -> Answer:
        with self._lock:
            self._entered += 1
            first = self._entered <= self._together
            self._running += 1
            self.peak = max(self.peak, self._running)
        try:
            if first:
                self._barrier.wait(timeout=WAIT)
            return super().run(step, plan)
        finally:
            with self._lock:
                self._running -= 1


class MeteredMadre(Madre):
    """A Madre whose executor is metered from the start: recovery runs inside start(), so
    swapping `executor` after start() would miss the first plans."""

    def _recover(self) -> None:
        self.executor = self.meter = ConcurrencyMeter(
            self, together=self.settings.max_active_plans)
        super()._recover()


def test_fifty_recovered_plans_run_at_most_max_active_plans_at_once_and_all_finish(
        first, next_start, standins):
    plans = [new_plan(call_step(0, "shub"), Step(index=1, type=StepType.NOOP))
             for _ in range(50)]

    def write_all(repo: Any) -> None:
        for plan in plans:
            repo.create_plan(plan, confirmation=None, audit=[])

    first.store.call(write_all)
    first.stop()
    standins.behaviours["shub"].set("slow", delay=0.05)  # long enough for the four to overlap

    again = next_start(MeteredMadre, max_active_plans=4)

    for plan in plans:
        assert final(again, plan.plan_id, timeout=30).status is Status.DONE
    assert again.meter.peak == 4
    assert len(standins.recorder.idempotency_counts("shub")) == 50

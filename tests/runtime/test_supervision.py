"""Supervision and passivation: crashed Plan actors restart from what was saved, with backoff,
and are given up on after `restart_max` crashes without touching other plans; plans that wait
hold no actor, and a confirmation is written before its plan is woken.

Crashes are injected by wrapping the real executor (calling the real loopback stand-ins) in a
CrashingRunner passed to the Madre under test (`step_runner=`).
Tests that take `madre` or `start_madre` run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import helpers
from doubles import CrashingRunner, Wrapping
from helpers import WAIT, audit_actions, execute, final, plan_actor_count, table_rows

from madre import Madre
from madre.contracts.intake import ControlRequest
from madre.model import Plan, Status, Step, StepType, WaitReason, new_id, utcnow
from madre.records import Confirmation
from madre.rules.tokens import issue_token

# --------------------------------------------------------------------------- helpers


def crashing(**options: Any) -> Any:
    """A step_runner for Madre: the real executor, crashing as CrashingRunner(**options)."""
    return lambda real: CrashingRunner(real, **options)


def audit_details(madre: Madre, plan_id: str, action: str) -> list[dict[str, Any]]:
    """The detail_json of every madre_actions row `action` of `plan_id`, oldest first."""
    return [json.loads(r["detail_json"]) if r["detail_json"] else {}
            for r in table_rows(madre, "madre_actions")
            if r["plan_id"] == plan_id and r["action"] == action]





def hermes_step(index: int, **params: Any) -> Step:
    return Step(index=index, type=StepType.CALL_HERMES,
                payload={"action": "ping", "target": "hermes", "params": params})


def shub_step(index: int) -> Step:
    return Step(index=index, type=StepType.CALL_SHUB, payload={"task": "ping", "params": {}})


def gate_step(index: int) -> Step:
    """A confirmation gate as the planner writes one (here in the middle of a plan)."""
    return Step(index=index, type=StepType.NOOP, blocking=True,
                payload={"gate": WaitReason.CONFIRMATION.value, "reason": "awaiting_confirmation"})


def store_plan(madre: Madre, *steps: Step, token_ttl: float | None = None
               ) -> tuple[Plan, str | None]:
    """A PENDING plan written to the database (no actor started); with `token_ttl`, a
    confirmation token is issued for it as for a MED/HIGH request. (plan, token or None)"""
    plan = Plan(intent_id=new_id(), session_id=new_id(), source="test", steps=list(steps))
    issued = issue_token(now=utcnow(), ttl_seconds=token_ttl) if token_ttl else None
    confirmation = Confirmation(issued.token_hash, issued.expires_at) if issued else None
    helpers.store_plan(madre, plan, confirmation=confirmation)
    return plan, issued.token if issued else None


# --------------------------------------------------------------------------- restarts


def test_a_plan_actor_that_crashes_once_restarts_after_the_minimum_backoff_and_its_plan_is_done(
        start_madre, standins):
    madre = start_madre(step_runner=crashing(times=1))
    backoff = madre.settings.restart_backoff_seconds

    answer = madre.control(ControlRequest(target="hermes", action="ping", params={"crash": True}))
    ended = final(madre, answer.plan_id)

    assert ended.status is Status.DONE
    [restart] = audit_details(madre, answer.plan_id, "plan_actor_restarted")
    assert restart["restart"] == 1
    assert backoff <= restart["backoff_s"] <= round(backoff * 1.2, 3)
    # and the restart really waited that long: the step's second call came after the backoff
    first, second = standins.recorder.calls("hermes")
    assert second.time - first.time >= restart["backoff_s"]


def test_each_further_restart_of_the_same_plan_waits_twice_as_long(start_madre, standins):
    madre = start_madre(step_runner=crashing(times=2))
    backoff = madre.settings.restart_backoff_seconds

    answer = madre.control(ControlRequest(target="hermes", action="ping", params={"crash": True}))

    assert final(madre, answer.plan_id).status is Status.DONE
    first, second = audit_details(madre, answer.plan_id, "plan_actor_restarted")
    assert (first["restart"], second["restart"]) == (1, 2)
    assert backoff <= first["backoff_s"] <= round(backoff * 1.2, 3)
    assert 2 * backoff <= second["backoff_s"] <= round(2 * backoff * 1.2, 3)


def test_a_restarted_plan_actor_goes_on_from_the_saved_plan_without_redoing_finished_steps(
        start_madre, standins):
    madre = start_madre(step_runner=crashing(times=1))
    plan, _ = store_plan(madre, shub_step(0), hermes_step(1, crash=True), shub_step(2))

    madre.supervisor.spawn(plan)
    ended = final(madre, plan.plan_id)

    assert ended.status is Status.DONE
    first, crashed, last = ended.steps
    counts = standins.recorder.idempotency_counts()
    assert counts[first.step_id] == 1 and first.attempts == 1  # done before the crash: kept
    assert counts[crashed.step_id] == 2 and crashed.attempts == 2  # in flight: same key again
    assert counts[last.step_id] == 1


def test_restart_max_crashes_in_a_row_end_the_plan_in_error_supervisor_gave_up(start_madre,
                                                                               standins):
    runtime = start_madre(restart_max=2, restart_backoff_seconds=0.01,
                          step_runner=crashing(times=None))

    answer = runtime.control(ControlRequest(target="hermes", action="ping",
                                            params={"crash": True}))
    ended = final(runtime, answer.plan_id)

    assert ended.status is Status.ERROR
    assert ended.reason.startswith("supervisor_gave_up")
    assert runtime.executor.crashes == 3  # the first run and restart_max restarts
    actions = audit_actions(runtime, answer.plan_id)
    assert actions.count("plan_actor_restarted") == 2
    assert actions.count("supervisor_gave_up") == 1
    last_restart = max(i for i, a in enumerate(actions) if a == "plan_actor_restarted")
    assert actions.index("supervisor_gave_up") > last_restart
    assert ended.steps[0].status is Status.ERROR


def test_with_restart_max_zero_the_first_crash_ends_the_plan_without_a_restart(start_madre,
                                                                               standins):
    runtime = start_madre(restart_max=0, step_runner=crashing(times=None))

    answer = runtime.control(ControlRequest(target="hermes", action="ping",
                                            params={"crash": True}))
    ended = final(runtime, answer.plan_id)

    assert ended.status is Status.ERROR and ended.reason.startswith("supervisor_gave_up")
    assert runtime.executor.crashes == 1
    actions = audit_actions(runtime, answer.plan_id)
    assert "plan_actor_restarted" not in actions
    assert actions.count("supervisor_gave_up") == 1


def test_crashes_further_apart_than_the_restart_period_never_add_up_to_giving_up(start_madre,
                                                                                 standins):
    # Every backoff (>= 0.1 s) is longer than the period (0.05 s): at each crash the previous
    # one has left the window, so each is restart 1 and restart_max=1 is never exceeded.
    runtime = start_madre(restart_max=1, restart_period_seconds=0.05,
                          restart_backoff_seconds=0.1, step_runner=crashing(times=3))

    answer = runtime.control(ControlRequest(target="hermes", action="ping",
                                            params={"crash": True}))

    assert final(runtime, answer.plan_id).status is Status.DONE
    restarts = audit_details(runtime, answer.plan_id, "plan_actor_restarted")
    assert [r["restart"] for r in restarts] == [1, 1, 1]
    assert "supervisor_gave_up" not in audit_actions(runtime, answer.plan_id)


def test_a_plan_that_keeps_crashing_leaves_a_plan_running_beside_it_untouched(start_madre,
                                                                              standins):
    runtime = start_madre(restart_backoff_seconds=0.01, step_timeout_seconds=10,
                          step_runner=crashing(times=None))
    standins.behaviours["shub"].set("hang")
    healthy = runtime.control(ControlRequest(target="shub", action="ping"))
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)  # its step is in flight

    doomed = runtime.control(ControlRequest(target="hermes", action="ping",
                                            params={"crash": True}))
    assert final(runtime, doomed.plan_id).reason.startswith("supervisor_gave_up")
    assert runtime.get_plan(healthy.plan_id).status is Status.RUNNING

    standins.behaviours["shub"].release_all()
    ended = final(runtime, healthy.plan_id)
    assert ended.status is Status.DONE
    step = ended.steps[0]
    assert step.attempts == 1
    assert standins.recorder.idempotency_counts("shub") == {step.step_id: 1}
    assert not {"plan_actor_restarted", "supervisor_gave_up"} & set(
        audit_actions(runtime, healthy.plan_id))


def test_a_crashed_plan_backing_off_holds_no_place_and_a_queued_plan_starts_meanwhile(
        start_madre, standins):
    gate = threading.Event()
    runtime = start_madre(max_active_plans=1, restart_backoff_seconds=30,
                          step_runner=crashing(times=1, gate=gate))
    doomed = runtime.control(ControlRequest(target="hermes", action="ping",
                                            params={"crash": True}))
    assert runtime.executor.entered.wait(WAIT)  # the only place is taken
    queued = runtime.control(ControlRequest(target="shub", action="ping"))
    # control told the Supervisor Spawn before answering: this ask is queued behind it
    assert runtime.supervisor.queued() == 1

    gate.set()  # the doomed plan crashes now and backs off for 30 s
    ended = final(runtime, queued.plan_id)

    assert ended.status is Status.DONE
    assert runtime.get_plan(doomed.plan_id).status is Status.RUNNING  # still backing off
    assert audit_actions(runtime, doomed.plan_id).count("plan_actor_restarted") == 1
    assert standins.recorder.calls("hermes") == []


def test_a_plan_whose_stored_state_cannot_be_loaded_is_given_up_on_and_supervision_goes_on(
        start_madre, standins):
    runtime = start_madre(restart_backoff_seconds=0.01)
    plan, _ = store_plan(runtime, hermes_step(0))

    assert execute(runtime, "UPDATE tasks SET plan_json = ? WHERE uuid = ?",
                   ("{bad", plan.plan_id)) == 1
    # wait_for_plan reads the plan first, which fails here: watch the plan directly,
    # registered before the activation so the outcome cannot be missed.
    watch = runtime.watchers.watch(plan.plan_id, final=True)
    runtime.supervisor.activate(plan.plan_id)  # every start fails in on_start's load
    ended = watch.wait(WAIT)

    assert ended is not None, "the plan was never given up on"
    assert ended.status is Status.ERROR and ended.reason.startswith("supervisor_gave_up")
    [row] = [r for r in table_rows(runtime, "tasks") if r["uuid"] == plan.plan_id]
    assert row["status"] == "ERROR" and row["error"].startswith("supervisor_gave_up")
    actions = audit_actions(runtime, plan.plan_id)
    assert actions.count("plan_actor_restarted") == runtime.settings.restart_max
    assert actions.count("supervisor_gave_up") == 1
    assert standins.recorder.calls("hermes") == []
    # the Supervisor survived it: other plans still run
    after = runtime.control(ControlRequest(target="shub", action="ping"))
    assert final(runtime, after.plan_id).status is Status.DONE


# --------------------------------------------------------------------------- passivation


def test_a_plan_reaching_a_confirmation_gate_is_saved_waiting_and_holds_no_actor(madre,
                                                                                standins):
    plan, _ = store_plan(madre, hermes_step(0), gate_step(1), shub_step(2), token_ttl=900)

    madre.supervisor.spawn(plan)
    parked = madre.wait_for_plan(plan.plan_id, WAIT)

    assert parked is not None and parked.status is Status.WAITING
    assert parked.wait_reason is WaitReason.CONFIRMATION
    stored = madre.get_plan(plan.plan_id)
    assert [s.status for s in stored.steps] == [Status.DONE, Status.WAITING, Status.PENDING]
    assert plan_actor_count(madre) == 0
    assert standins.recorder.calls("shub") == []


def test_two_hundred_plans_parked_waiting_hold_no_actor_and_queue_nothing(madre, standins):
    plans = [store_plan(madre, Step(index=0, type=StepType.NOOP), gate_step(1),
                        Step(index=2, type=StepType.NOOP))[0] for _ in range(200)]

    for plan in plans:  # every one runs in an actor (64 at most at once) until its gate
        madre.supervisor.spawn(plan)
    for plan in plans:
        parked = madre.wait_for_plan(plan.plan_id, WAIT)
        assert parked is not None and parked.status is Status.WAITING

    assert plan_actor_count(madre) == 0
    assert madre.supervisor.queued() == 0
    assert madre.plan_threads.busy() == 0  # idle threads wait for the next plans: no actor


def test_confirm_wakes_a_parked_plan_from_its_saved_state_and_it_reaches_done(madre, standins):
    plan, token = store_plan(madre, hermes_step(0), gate_step(1), shub_step(2), token_ttl=900)
    madre.supervisor.spawn(plan)
    assert madre.wait_for_plan(plan.plan_id, WAIT).status is Status.WAITING
    assert plan_actor_count(madre) == 0

    answer = madre.confirm(plan.plan_id, token)

    assert answer.plan_status is Status.DONE
    ended = madre.get_plan(plan.plan_id)
    assert [s.status for s in ended.steps] == [Status.DONE] * 3
    counts = standins.recorder.idempotency_counts()
    assert counts[ended.steps[0].step_id] == 1  # done before the gate: not run again
    assert counts[ended.steps[2].step_id] == 1
    assert plan_actor_count(madre) == 0


def test_a_confirm_is_saved_running_before_its_plan_gets_an_actor(start_madre, standins):
    runtime = start_madre(max_active_plans=1, step_timeout_seconds=10)
    standins.behaviours["shub"].set("hang")
    busy = runtime.control(ControlRequest(target="shub", action="ping"))
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)  # holds the only place
    pending = runtime.control(ControlRequest(target="hermes", action="delete"))

    answer = runtime.confirm(pending.plan_id, pending.confirm_token, wait=0)

    assert answer.plan_status is Status.RUNNING
    # confirm told the Supervisor before returning: this ask is queued behind that Spawn
    assert runtime.supervisor.queued() == 1
    assert runtime.supervisor.count() == 1
    stored = runtime.get_plan(pending.plan_id)
    assert stored.status is Status.RUNNING
    assert stored.steps[0].status is Status.DONE  # the gate, passed
    assert stored.confirmation.confirmed_at is not None
    assert "plan_confirmed" in audit_actions(runtime, pending.plan_id)
    assert standins.recorder.calls("hermes") == []

    standins.behaviours["shub"].release_all()
    assert final(runtime, busy.plan_id).status is Status.DONE
    assert final(runtime, pending.plan_id).status is Status.DONE
    assert len(standins.recorder.calls("hermes")) == 1


def test_a_plan_cancelled_while_queued_for_a_place_makes_no_call_when_the_place_frees(
        start_madre, standins):
    runtime = start_madre(max_active_plans=1, step_timeout_seconds=10)
    standins.behaviours["shub"].set("hang")
    busy = runtime.control(ControlRequest(target="shub", action="ping"))
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)
    pending = runtime.control(ControlRequest(target="hermes", action="delete"))
    runtime.confirm(pending.plan_id, pending.confirm_token, wait=0)
    assert runtime.supervisor.queued() == 1

    runtime.cancel(pending.plan_id, reason="changed my mind")
    standins.behaviours["shub"].set("ok")
    standins.behaviours["shub"].release_all()
    assert final(runtime, busy.plan_id).status is Status.DONE
    # The first count is answered after busy's stop report, when the queued plan's actor
    # has been started; the second after that actor's thread ended too.
    plan_actor_count(runtime)
    assert plan_actor_count(runtime) == 0

    assert standins.recorder.calls("hermes") == []
    ended = runtime.get_plan(pending.plan_id)
    assert ended.status is Status.ERROR and ended.reason.startswith("cancelled")


# --------------------------------------------------------------------------- fencing


def _messages(caplog: Any, logger: str) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == logger]


def test_a_plan_fenced_by_the_heartbeat_just_after_it_came_to_rest_stops_without_a_warning(
        madre, standins, caplog):
    # The heartbeat reads the live actors, then the leases: a plan whose last save committed
    # in between has no lease and a live actor for a moment more. That is no loss.
    caplog.set_level(logging.DEBUG, logger="madre.plan")
    publish, rounds = madre.watchers.publish, []

    def publish_then_beat(plan: Plan) -> None:
        publish(plan)
        if threading.current_thread().name.startswith("madre-plan") and not plan.active:
            rounds.append(madre.membership.round())  # while the actor is still alive

    madre.watchers.publish = publish_then_beat  # type: ignore[method-assign]
    answer = madre.control(ControlRequest(target="switch", action="chat"))
    assert final(madre, answer.plan_id).status is Status.DONE
    assert helpers.plan_actors_left(madre) == 0

    assert rounds and rounds[0].fenced == (answer.plan_id,)  # the race really happened
    said = _messages(caplog, "madre.plan")
    assert (logging.DEBUG, "fenced after it came to rest") in said
    assert not [m for level, m in said if level >= logging.WARNING]


class _HeldCall(Wrapping):
    """The real executor, with each module call held until `release` is set."""

    def __init__(self, real: Any) -> None:
        super().__init__(real)
        self.calling, self.release = threading.Event(), threading.Event()

    def run(self, step: Step, plan: Plan) -> Any:
        if step.type.startswith("CALL_"):
            self.calling.set()
            self.release.wait(WAIT)
        return self.real.run(step, plan)


def test_a_running_plan_fenced_by_the_heartbeat_is_warned_about_and_its_actor_stops(
        start_madre, standins, caplog):
    caplog.set_level(logging.DEBUG, logger="madre.plan")
    made: list[_HeldCall] = []

    def held_calls(real: Any) -> _HeldCall:
        made.append(_HeldCall(real))
        return made[0]

    madre = start_madre(step_runner=held_calls)
    held = made[0]
    try:
        answer = madre.control(ControlRequest(target="switch", action="chat"))
        assert held.calling.wait(WAIT)
        madre.supervisor.fence([answer.plan_id])  # as a heartbeat that found its lease gone
        assert helpers.plan_actors_left(madre) == 0
    finally:
        held.release.set()
    assert (logging.WARNING, "plan no longer ours; stopping") in _messages(caplog, "madre.plan")

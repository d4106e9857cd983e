"""The plan state machine (madre.rules.lifecycle), as plain code: no actors, no database."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from madre.errors import IllegalTransition
from madre.model import Plan, Status, Step, WaitReason
from madre.rules import lifecycle

LEGAL_PLAN_MOVES = {
    (Status.PENDING, Status.RUNNING), (Status.PENDING, Status.WAITING),
    (Status.PENDING, Status.ERROR),
    (Status.RUNNING, Status.WAITING), (Status.RUNNING, Status.DONE),
    (Status.RUNNING, Status.ERROR),
    (Status.WAITING, Status.RUNNING), (Status.WAITING, Status.ERROR),
}
ILLEGAL_PLAN_MOVES = sorted(set(itertools.product(Status, Status)) - LEGAL_PLAN_MOVES)
T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def plan_in(status: Status) -> Plan:
    plan = Plan(intent_id="intent-1", session_id="session-1", steps=[Step(type="NOOP")])
    plan.status = status
    plan.wait_reason = WaitReason.CONFIRMATION if status is Status.WAITING else None
    return plan


def wait_reason_for(target: Status) -> WaitReason | None:
    return WaitReason.SPAWNER_JOB if target is Status.WAITING else None


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL_PLAN_MOVES))
def test_a_legal_plan_transition_moves_the_plan(current, target):
    plan = plan_in(current)

    returned = lifecycle.advance(plan, target, wait_reason=wait_reason_for(target), now=T0)

    assert returned is plan
    assert plan.status is target
    assert plan.updated_at == T0


@pytest.mark.parametrize(("current", "target"), ILLEGAL_PLAN_MOVES)
def test_an_illegal_plan_transition_is_refused_and_leaves_the_plan_unchanged(current, target):
    plan = plan_in(current)
    before = plan.model_copy(deep=True)

    with pytest.raises(IllegalTransition) as refused:
        lifecycle.advance(plan, target, wait_reason=wait_reason_for(target), reason="x", now=T0)

    assert plan == before
    assert refused.value.current == current and refused.value.target == target
    assert refused.value.plan_id == plan.plan_id


def test_a_done_plan_cannot_run_again():
    with pytest.raises(IllegalTransition, match="from DONE to RUNNING"):
        lifecycle.advance(plan_in(Status.DONE), Status.RUNNING, now=T0)


@pytest.mark.parametrize("target", list(Status))
def test_an_errored_plan_cannot_go_anywhere(target):
    with pytest.raises(IllegalTransition):
        lifecycle.advance(plan_in(Status.ERROR), target, wait_reason=wait_reason_for(target), now=T0)


def test_a_waiting_plan_cannot_jump_to_done_without_running():
    with pytest.raises(IllegalTransition, match="from WAITING to DONE"):
        lifecycle.advance(plan_in(Status.WAITING), Status.DONE, now=T0)


def test_a_plan_only_waits_for_a_reason():
    plan = plan_in(Status.RUNNING)

    with pytest.raises(ValueError, match="wait_reason"):
        lifecycle.advance(plan, Status.WAITING, now=T0)

    assert plan.status is Status.RUNNING


def test_leaving_waiting_clears_the_wait_reason():
    plan = plan_in(Status.WAITING)

    lifecycle.advance(plan, Status.RUNNING, now=T0)

    assert plan.wait_reason is None


def test_the_reason_given_with_a_transition_is_kept():
    plan = plan_in(Status.RUNNING)

    lifecycle.advance(plan, Status.ERROR, reason="step 1 (CALL_SHUB) failed", now=T0)

    assert plan.reason == "step 1 (CALL_SHUB) failed"


def test_can_advance_agrees_with_advance():
    for current, target in itertools.product(Status, Status):
        assert lifecycle.can_advance(current, target) == ((current, target) in LEGAL_PLAN_MOVES)


# --------------------------------------------------------------------------- steps


def test_starting_a_step_counts_an_attempt_and_stamps_its_start():
    step = Step(type="CALL_SHUB")

    lifecycle.advance_step(step, Status.RUNNING, now=T0)

    assert step.status is Status.RUNNING
    assert step.attempts == 1
    assert step.started_at == T0


def test_a_step_in_flight_may_run_again_and_counts_another_attempt():
    step = Step(type="CALL_SHUB")
    lifecycle.advance_step(step, Status.RUNNING, now=T0)
    step.error = "crashed"

    lifecycle.advance_step(step, Status.RUNNING, now=T0 + dt.timedelta(seconds=1))

    assert step.attempts == 2
    assert step.error is None
    assert step.started_at == T0 + dt.timedelta(seconds=1)


def test_finishing_a_step_stamps_its_end_and_keeps_its_result():
    step = Step(type="CALL_SHUB")
    lifecycle.advance_step(step, Status.RUNNING, now=T0)

    lifecycle.advance_step(step, Status.DONE, result={"status": "ok"},
                           now=T0 + dt.timedelta(seconds=2))

    assert step.status is Status.DONE
    assert step.result == {"status": "ok"}
    assert step.finished_at == T0 + dt.timedelta(seconds=2)


def test_a_step_that_fails_without_starting_gets_both_timestamps():
    step = Step(type="FROBNICATE")

    lifecycle.advance_step(step, Status.ERROR, error="unknown step type", now=T0)

    assert step.started_at == T0 and step.finished_at == T0
    assert step.error == "unknown step type"
    assert step.attempts == 0


@pytest.mark.parametrize("final", [Status.DONE, Status.ERROR])
@pytest.mark.parametrize("target", list(Status))
def test_a_finished_step_cannot_change(final, target):
    step = Step(type="NOOP", status=final)

    with pytest.raises(IllegalTransition):
        lifecycle.advance_step(step, target, now=T0)

    assert step.status is final


@pytest.mark.parametrize("target", [Status.PENDING, Status.RUNNING, Status.WAITING])
def test_a_waiting_step_can_only_finish(target):
    step = Step(type="NOOP", status=Status.WAITING)

    with pytest.raises(IllegalTransition):
        lifecycle.advance_step(step, target, now=T0)


def test_a_confirmation_gate_is_a_blocking_step_with_the_confirmation_gate_payload():
    gate = Step(type="NOOP", blocking=True, payload={"gate": "confirmation"})
    not_blocking = Step(type="NOOP", payload={"gate": "confirmation"})

    assert gate.is_confirmation_gate
    assert not not_blocking.is_confirmation_gate


def test_next_step_is_the_first_unfinished_one():
    plan = Plan(intent_id="i", session_id="s", steps=[
        Step(type="NOOP", status=Status.DONE), Step(type="NOOP", status=Status.ERROR),
        Step(type="CALL_SHUB", status=Status.WAITING), Step(type="NOOP")])

    assert plan.next_step is plan.steps[2]
    for step in plan.steps[2:]:
        step.status = Status.DONE
    assert plan.next_step is None

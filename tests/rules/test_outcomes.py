"""What commands do to a plan without an actor, and the named transitions they use: plain
functions over plans, checked without actors, database or clock."""

from __future__ import annotations

import datetime as dt

import pytest

from madre.errors import IllegalTransition
from madre.model import Plan, Risk, Status, Step, StepType, WaitReason, new_id
from madre.records import Confirmation
from madre.rules import lifecycle, outcomes
from madre.rules.outcomes import Verdict
from madre.rules.tokens import issue_token

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
TTL = 900


def gated_plan() -> tuple[Plan, str, Confirmation]:
    """A HIGH plan behind its confirmation gate, as intake saves it: (plan, token, hash)."""
    plan = Plan(intent_id=new_id(), session_id=new_id(), risk=Risk.HIGH, steps=[
        Step(index=0, type=StepType.NOOP, blocking=True,
             payload={"gate": "confirmation", "reason": "awaiting_confirmation"}),
        Step(index=1, type=StepType.CALL_SHUB, payload={"task": "delete"}),
    ])
    issued = issue_token(now=T0, ttl_seconds=TTL)
    lifecycle.gate(plan, expires_at=issued.expires_at, now=T0)
    return plan, issued.token, Confirmation(issued.token_hash, issued.expires_at)


def job_plan() -> Plan:
    """A plan waiting for the Spawner's report on its job step."""
    plan = Plan(intent_id=new_id(), session_id=new_id(), steps=[
        Step(index=0, type=StepType.SPAWNER_REQUEST, payload={"task_type": "backup"})])
    lifecycle.start(plan, now=T0)
    lifecycle.wait_for_job(plan, plan.steps[0], now=T0)
    return plan


# --------------------------------------------------------------------------- confirmation


def test_the_right_token_in_time_confirms_passes_the_gate_and_runs_the_plan() -> None:
    plan, token, confirmation = gated_plan()

    outcome = outcomes.decide_confirmation(plan, confirmation, token, actor="ops", now=T0)

    assert outcome.verdict is Verdict.CONFIRMED
    assert plan.status is Status.RUNNING and plan.steps[0].status is Status.DONE
    assert outcome.change is not None and outcome.change.confirmed_at == T0
    assert [a.action for a in outcome.change.audit] == ["plan_approved", "plan_confirmed"]
    assert outcome.change.audit[0].actor == "ops"


def test_a_wrong_token_is_refused_the_plan_stays_and_the_refusal_is_audited() -> None:
    plan, _, confirmation = gated_plan()
    before = plan.model_copy(deep=True)

    outcome = outcomes.decide_confirmation(plan, confirmation, "nope", actor="ops", now=T0)

    assert outcome.verdict is Verdict.INVALID_TOKEN and not outcome.moves_plan
    assert plan == before
    assert [(a.action, a.reason) for a in outcome.audit] == [("confirmation_rejected",
                                                              "invalid_token")]


def test_the_right_token_too_late_ends_the_plan_confirmation_expired() -> None:
    plan, token, confirmation = gated_plan()
    late = T0 + dt.timedelta(seconds=TTL)

    outcome = outcomes.decide_confirmation(plan, confirmation, token, actor="ops", now=late)

    assert outcome.verdict is Verdict.EXPIRED
    assert plan.status is Status.ERROR and plan.reason == "confirmation_expired"
    assert plan.steps[0].status is Status.ERROR


def test_a_plan_that_does_not_wait_for_a_confirmation_refuses_any_token() -> None:
    plan, token, confirmation = gated_plan()
    outcomes.decide_confirmation(plan, confirmation, token, actor="ops", now=T0)

    again = outcomes.decide_confirmation(plan, confirmation, token, actor="ops", now=T0)

    assert again.verdict is Verdict.NOT_WAITING and not again.moves_plan
    assert again.audit[0].reason == "not_waiting"


# --------------------------------------------------------------------------- jobs


def test_a_jobs_success_completes_its_step_and_runs_the_plan_again() -> None:
    plan = job_plan()

    outcome = outcomes.decide_job_report(plan, plan.steps[0].step_id, daughter_task_id=7,
                                         ok=True, result={"size": 3}, error=None,
                                         actor="spawner", now=T0)

    assert outcome.verdict is Verdict.RESUMED
    assert plan.status is Status.RUNNING and plan.steps[0].status is Status.DONE
    assert plan.steps[0].result == {"daughter_task_id": 7, "status": "ok",
                                    "result": {"size": 3}}


def test_a_jobs_failure_ends_its_step_and_the_plan_in_error_with_the_reason() -> None:
    plan = job_plan()

    outcome = outcomes.decide_job_report(plan, plan.steps[0].step_id, daughter_task_id=7,
                                         ok=False, result=None, error="disk full",
                                         actor="spawner", now=T0)

    assert outcome.verdict is Verdict.JOB_FAILED
    assert plan.status is Status.ERROR and "disk full" in (plan.reason or "")
    assert outcome.change is not None and outcome.change.close is not None
    assert outcome.change.close.result_status == "error"


def test_a_second_report_of_the_same_job_changes_nothing_and_says_so() -> None:
    plan = job_plan()
    step_id = plan.steps[0].step_id
    outcomes.decide_job_report(plan, step_id, daughter_task_id=7, ok=True, result=None,
                               error=None, actor="spawner", now=T0)
    before = plan.model_copy(deep=True)

    again = outcomes.decide_job_report(plan, step_id, daughter_task_id=7, ok=False,
                                       result=None, error="late", actor="spawner", now=T0)

    assert again.verdict is Verdict.DUPLICATE and not again.moves_plan
    assert plan == before
    assert again.audit[0].action == "job_report_ignored"


# --------------------------------------------------------------------------- endings


@pytest.mark.parametrize("setup", ["pending", "waiting", "running"])
def test_a_cancel_ends_any_plan_not_yet_ended_and_its_unfinished_steps(setup: str) -> None:
    if setup == "waiting":
        plan, _, _ = gated_plan()
    else:
        plan = Plan(intent_id=new_id(), session_id=new_id(), steps=[
            Step(index=0, type=StepType.CALL_HERMES), Step(index=1, type=StepType.NOOP)])
        if setup == "running":
            lifecycle.start(plan, now=T0)
            lifecycle.step_started(plan, plan.steps[0], now=T0)

    outcome = outcomes.decide_cancel(plan, reason="wrong stems", actor="ops", now=T0)

    assert outcome.verdict is Verdict.CANCELLED
    assert plan.status is Status.ERROR and plan.reason == "cancelled: wrong stems"
    assert all(s.status is not Status.RUNNING and s.status is not Status.WAITING
               for s in plan.steps)
    assert outcome.change is not None and outcome.change.audit[0].actor == "ops"


def test_a_plan_that_ended_cannot_be_cancelled() -> None:
    plan = Plan(intent_id=new_id(), session_id=new_id())
    lifecycle.start(plan, now=T0)
    lifecycle.finish(plan, now=T0)

    outcome = outcomes.decide_cancel(plan, reason=None, actor="ops", now=T0)

    assert outcome.verdict is Verdict.ALREADY_ENDED and plan.status is Status.DONE


def test_the_timer_expires_a_plan_only_once_its_deadline_passed_and_it_still_waits() -> None:
    plan, _, confirmation = gated_plan()
    deadline = confirmation.expires_at

    assert outcomes.decide_expiry(plan, now=deadline - dt.timedelta(seconds=1),
                                  deadline=deadline) is None
    expired = outcomes.decide_expiry(plan, now=deadline, deadline=deadline)
    assert expired is not None and expired.verdict is Verdict.EXPIRED
    assert expired.change is not None and expired.change.audit[0].actor == "timer"
    assert outcomes.decide_expiry(plan, now=deadline, deadline=deadline) is None


def test_giving_up_ends_the_plan_with_the_crash_named_in_its_reason() -> None:
    plan = Plan(intent_id=new_id(), session_id=new_id(),
                steps=[Step(index=0, type=StepType.CALL_HERMES)])
    lifecycle.start(plan, now=T0)
    lifecycle.step_started(plan, plan.steps[0], now=T0)

    outcome = outcomes.decide_give_up(plan, error="RuntimeError: boom", now=T0)

    assert outcome is not None and outcome.verdict is Verdict.GAVE_UP
    assert plan.reason == "supervisor_gave_up: RuntimeError: boom"
    assert plan.steps[0].error == "supervisor_gave_up"
    assert outcomes.decide_give_up(plan, error="again", now=T0) is None


# --------------------------------------------------------------------------- the transitions


def test_a_gated_plan_waits_for_a_confirmation_and_its_intent_says_so() -> None:
    plan, _, _ = gated_plan()

    assert (plan.status, plan.wait_reason) == (Status.WAITING, WaitReason.CONFIRMATION)
    assert plan.steps[0].status is Status.WAITING


def test_an_optional_step_that_fails_lets_the_plan_go_on_with_a_warning() -> None:
    plan = Plan(intent_id=new_id(), session_id=new_id(), steps=[
        Step(index=0, type=StepType.SYSTEM_HEALTHCHECK, optional=True)])
    lifecycle.start(plan, now=T0)
    lifecycle.step_started(plan, plan.steps[0], now=T0)

    change, goes_on = lifecycle.step_failed(plan, plan.steps[0], reason="board down",
                                            attempts=1, status_code=None, now=T0)

    assert goes_on and plan.status is Status.RUNNING
    assert plan.warnings == ["optional_step_failed:SYSTEM_HEALTHCHECK"]
    assert change.audit[0].action == "step_failed:SYSTEM_HEALTHCHECK"


def test_a_step_that_cannot_run_fails_with_the_plan_naming_why() -> None:
    plan = Plan(intent_id=new_id(), session_id=new_id(), steps=[
        Step(index=0, type="CALL_MARS"), Step(index=1, type=StepType.NOOP)])
    lifecycle.start(plan, now=T0)

    lifecycle.fail(plan, "unknown step type 'CALL_MARS'", now=T0, step=plan.steps[0])

    assert plan.status is Status.ERROR
    assert [s.status for s in plan.steps] == [Status.ERROR, Status.PENDING]


def test_no_transition_revives_an_ended_plan() -> None:
    plan = Plan(intent_id=new_id(), session_id=new_id())
    lifecycle.start(plan, now=T0)
    lifecycle.finish(plan, now=T0)

    with pytest.raises(IllegalTransition):
        lifecycle.start(plan, now=T0)
    with pytest.raises(IllegalTransition):
        lifecycle.cancel(plan, reason=None, actor="ops", now=T0)

"""The sentences Madre answers with, and the step summaries of a chat answer."""

from __future__ import annotations

import datetime as dt

from madre.contracts import Decision, Plan, Status, StepResult, StepType, WaitReason

REPLY_KEYS = ("reply", "response", "text", "answer", "message")


def step_results(plan: Plan) -> list[StepResult]:
    """What each step did, in plan order (failed ones included, with their error)."""
    return [
        StepResult(step=s.type, status=s.status, result=s.result, error=s.error)
        for s in plan.steps
        if s.status is not Status.PENDING
    ]


def switch_reply(plan: Plan) -> str | None:
    """The text Switch answered for a routed prompt, when it gave one."""
    for step in plan.steps:
        if step.type == StepType.CALL_SWITCH and step.status is Status.DONE and step.result:
            for key in REPLY_KEYS:
                value = step.result.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip()
    return None


def describe(plan: Plan | None, *, plan_id: str | None, decision: Decision,
             waited: float, expires_at: dt.datetime | None = None) -> str:
    """One sentence a person can act on, for the state the plan is in."""
    if decision.denied:
        return f"Refused: {decision.reason}."
    if plan is None:
        return (f"The plan is still running after {waited:g} s; "
                f"follow it at GET /madre/plans/{plan_id}.")
    if plan.status is Status.WAITING and plan.wait_reason is WaitReason.CONFIRMATION:
        until = f" before {expires_at.isoformat()}" if expires_at else ""
        return (
            f"This is {plan.risk} risk ({decision.reason}) and waits for your confirmation: "
            f"POST /madre/plans/{plan.plan_id}/confirm with the confirm_token{until}."
        )
    if plan.status is Status.WAITING:
        return ("A job was requested from the Spawner; the plan continues when the job "
                "reports back.")
    if plan.status is Status.DONE:
        reply = switch_reply(plan)
        if reply:
            return reply
        ran = ", ".join(s.type for s in plan.steps)
        return f"Done: {plan.mode} plan ran {len(plan.steps)} steps ({ran})."
    if plan.status is Status.ERROR:
        return f"The plan failed: {plan.reason or 'no reason recorded'}."
    return (f"The plan is {plan.status} after {waited:g} s; "
            f"follow it at GET /madre/plans/{plan.plan_id}.")

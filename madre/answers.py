"""The answers Madre gives to intake: the sentences, the step summaries, and the response
bodies of chat, control and intent built from what intake decided and the plan's outcome."""

from __future__ import annotations

import datetime as dt

from madre.contracts.intake import (
    ChatResponse,
    ControlResponse,
    ControlStatus,
    IntentResponse,
    StepResult,
)
from madre.model import Decision, Intent, Plan, Risk, Status, StepType, WaitReason
from madre.rules.tokens import IssuedToken

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


def chat_answer(intent: Intent, plan: Plan | None, *, waited: float,
                issued: IssuedToken | None = None, plan_id: str | None = None,
                persisted: bool = True) -> ChatResponse:
    """The chat answer for `intent`: `plan` as it settled (None: still running after
    `waited` seconds, or denied); unpersisted for a dry run."""
    decision = intent.decision
    warnings = list(intent.warnings)
    if plan is not None:
        warnings += [w for w in plan.warnings if w not in warnings]
    if decision.denied:
        status = Status.ERROR
    elif plan is None:
        status = Status.RUNNING
    else:
        status = plan.status if persisted else Status.PENDING
    waiting = issued is not None and status is Status.WAITING
    if persisted:
        sentence = describe(plan, plan_id=plan_id, decision=decision, waited=waited,
                            expires_at=issued.expires_at if issued else None)
    else:
        assert plan is not None
        sentence = f"Dry run: would run {', '.join(s.type for s in plan.steps)}."
    return ChatResponse(
        response=sentence, session_id=intent.session_id, intent_id=intent.intent_id,
        plan_id=plan_id if persisted else None, status=status, mode=intent.mode,
        risk=decision.risk, requires_confirmation=decision.requires_confirmation,
        confirm_token=issued.token if waiting and issued else None,
        expires_at=issued.expires_at if waiting and issued else None,
        plan_digest=plan.plan_digest if waiting and plan is not None else None,
        provider=intent.provider, warnings=warnings, targets=intent.targets,
        actions=step_results(plan) if plan is not None else [],
    )


def control_answer(intent: Intent, plan: Plan | None, *, issued: IssuedToken | None,
                   action_id: int | None) -> ControlResponse:
    """The control answer: denied, waiting for a confirmation (with the token), or accepted."""
    decision = intent.decision
    if plan is None:
        return ControlResponse(status=ControlStatus.DENIED, plan_id=None, risk=decision.risk,
                               reason=decision.reason, action_id=action_id,
                               intent_id=intent.intent_id)
    if issued is not None:
        return ControlResponse(
            status=ControlStatus.PENDING_CONFIRMATION, plan_id=plan.plan_id,
            intent_id=intent.intent_id, risk=decision.risk, confirm_token=issued.token,
            expires_at=issued.expires_at, plan_digest=plan.plan_digest,
            reason=f"Risk {decision.risk}: {decision.reason}. Confirm with this token.",
            action_id=action_id, plan_status=plan.status,
        )
    return ControlResponse(status=ControlStatus.ACCEPTED, plan_id=plan.plan_id,
                           intent_id=intent.intent_id, risk=decision.risk,
                           reason=decision.reason, action_id=action_id,
                           plan_status=plan.status)


def intent_answer(intent: Intent, plan: Plan | None, *, issued: IssuedToken | None
                  ) -> IntentResponse:
    """The structured intake answer (it does not wait for the plan)."""
    decision = intent.decision
    if plan is None:
        return IntentResponse(intent_id=intent.intent_id, plan_id=None, task_id=None,
                              status=Status.ERROR, risk=decision.risk,
                              requires_confirmation=False)
    return IntentResponse(
        intent_id=intent.intent_id, plan_id=plan.plan_id, task_id=plan.plan_id,
        status=plan.status, risk=decision.risk,
        requires_confirmation=decision.requires_confirmation,
        confirm_token=issued.token if issued else None,
        expires_at=issued.expires_at if issued else None,
        plan_digest=plan.plan_digest if issued else None,
    )


def duplicate_intent_answer(intent_id: str, plan: Plan | None, *, denied: bool
                            ) -> IntentResponse:
    """The answer an intent got the first time (without its token, which is shown once)."""
    if plan is None:  # denied, or still being planned by the first request
        return IntentResponse(
            intent_id=intent_id, plan_id=None, task_id=None,
            status=Status.ERROR if denied else Status.PENDING,
            risk=Risk.HIGH if denied else Risk.LOW, requires_confirmation=False,
            duplicate=True,
        )
    return IntentResponse(
        intent_id=intent_id, plan_id=plan.plan_id, task_id=plan.plan_id, status=plan.status,
        risk=plan.risk,
        requires_confirmation=bool(plan.steps and plan.steps[0].is_confirmation_gate),
        plan_digest=plan.plan_digest, duplicate=True,
    )

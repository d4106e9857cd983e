"""A plan's life: the state machine, and the named transitions that are its only moves.

    PENDING ──► RUNNING ──► DONE
       │  ╲        │  ▲
       │   ╲       ▼  │
       │    ──► WAITING
       │           │
       └──────► ERROR ◄── (from any non-final state)

A plan is PENDING when accepted, RUNNING while steps execute, WAITING while parked on a
confirmation or a Spawner job, and ends DONE or ERROR. Steps follow a smaller machine of
their own. `advance` / `advance_step` refuse anything else with `IllegalTransition`, so no
code path can, say, resurrect a DONE plan.

Every change a plan goes through is one of the named transitions below (gate, start, step
started / done / failed, wait for a job or a confirmation, approve, confirm, reject, job
done / failed, finish, fail, cancel, expire, give up, suspend). Each moves the plan in place
and returns the `Change` to write with it: the audit rows, how its intent stands, a job to request.
Whoever owns the plan at that moment (its Plan actor, or the command handler of a passive
plan) applies one and saves plan and change together, conditionally on the version it read.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from madre.errors import IllegalTransition
from madre.model import Approval, Plan, Risk, Status, Step, WaitReason
from madre.modules import LOCAL_STEPS, STEP_MODULES, module_of
from madre.records import AuditRow, Change, IntentClose, JobRequest

PLAN_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.RUNNING, Status.WAITING, Status.ERROR}),
    Status.RUNNING: frozenset({Status.WAITING, Status.DONE, Status.ERROR}),
    Status.WAITING: frozenset({Status.RUNNING, Status.ERROR}),
    Status.DONE: frozenset(),
    Status.ERROR: frozenset(),
}

STEP_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.RUNNING, Status.WAITING, Status.DONE, Status.ERROR}),
    # RUNNING → RUNNING: a step that was in flight when Madre crashed runs again (same key).
    Status.RUNNING: frozenset({Status.RUNNING, Status.WAITING, Status.DONE, Status.ERROR}),
    Status.WAITING: frozenset({Status.DONE, Status.ERROR}),
    Status.DONE: frozenset(),
    Status.ERROR: frozenset(),
}

UNFINISHED_STEP = frozenset({Status.RUNNING, Status.WAITING})
"""Steps an ending plan marks ERROR with its reason (PENDING ones simply never ran)."""


def can_advance(current: Status, target: Status) -> bool:
    return target in PLAN_TRANSITIONS[current]


def advance(plan: Plan, target: Status, *, now: dt.datetime, reason: str | None = None,
            wait_reason: WaitReason | None = None) -> Plan:
    """Move `plan` to `target` in place (and return it), or raise IllegalTransition."""
    if not can_advance(plan.status, target):
        raise IllegalTransition(plan.status, target, plan_id=plan.plan_id)
    if target is Status.WAITING and wait_reason is None:
        raise ValueError("a plan only waits for a reason: give wait_reason")
    plan.status = target
    plan.wait_reason = wait_reason if target is Status.WAITING else None
    if reason is not None:
        plan.reason = reason
    plan.updated_at = now
    return plan


def advance_step(step: Step, target: Status, *, now: dt.datetime,
                 result: dict[str, Any] | None = None, error: str | None = None) -> Step:
    """Move `step` to `target` in place, stamping times and counting attempts."""
    if target not in STEP_TRANSITIONS[step.status]:
        raise IllegalTransition(step.status, target)
    if target is Status.RUNNING:
        step.attempts += 1
        step.started_at = now
        step.error = None
    if target in (Status.DONE, Status.ERROR):
        step.finished_at = now
        if step.started_at is None:
            step.started_at = now
    if result is not None:
        step.result = result
    if error is not None:
        step.error = error
    step.status = target
    return step


def note(plan: Plan, action: str, *, reason: str = "", module: str = "madre",
         actor: str = "plan", detail: dict[str, Any] | None = None) -> AuditRow:
    """An audit row about `plan` (its ids filled in)."""
    return AuditRow(action=action, reason=reason[:255], module=module, plan_id=plan.plan_id,
                    intent_id=plan.intent_id, session_id=plan.session_id, actor=actor,
                    detail=detail)


def step_ms(step: Step) -> float:
    """How long a finished step took, in milliseconds."""
    if step.started_at is None or step.finished_at is None:
        return 0.0
    return round((step.finished_at - step.started_at).total_seconds() * 1000, 3)


def _close(plan: Plan, status: str, notes: str) -> IntentClose:
    return IntentClose(plan.intent_id, status, notes[:500])


# --------------------------------------------------------------------------- getting going


def gate(plan: Plan, *, expires_at: dt.datetime, now: dt.datetime,
         announce: dict[str, Any] | None = None) -> Change:
    """A new plan that needs a human: its first step (the gate) and the plan WAIT for a
    confirmation until `expires_at`. `announce` (what a notification says about it) goes
    into the audit row, so what follows a commit needs no read to tell people."""
    first = plan.steps[0]
    advance_step(first, Status.WAITING, now=now)
    advance(plan, Status.WAITING, now=now, wait_reason=WaitReason.CONFIRMATION)
    action = plan.dsl.action if plan.dsl else "plan"
    return Change(
        audit=(note(plan, f"confirmation_required:{plan.risk}", reason=f"action_{action}",
                    actor="policy",
                    detail={"expires_at": expires_at.isoformat(), **(announce or {})}),),
        close=_close(plan, "waiting", "waiting for confirmation"),
    )


def start(plan: Plan, *, now: dt.datetime) -> Change:
    """PENDING → RUNNING: the plan's actor begins its steps."""
    advance(plan, Status.RUNNING, now=now)
    return Change(audit=(note(plan, "plan_started"),))


def begin(plan: Plan, *, now: dt.datetime) -> tuple[Change, Step | None]:
    """A plan that runs at once: `start`, and when its first step calls a module, that step's
    write-ahead too, so both go in the write that creates the plan (one commit, not three).
    Returns the change and the step written ahead (its call is the actor's first move)."""
    change = start(plan, now=now)
    ahead, step = write_ahead(plan, now=now)
    return change.then(ahead), step


def write_ahead(plan: Plan, *, now: dt.datetime) -> tuple[Change, Step | None]:
    """A plan starting (`begin`) or woken (confirmed, a job reported) whose next step calls a
    module: that step's write-ahead, to go in the write that starts or wakes it. Returns the change
    and the step written ahead, or no change and None when its next move calls nothing."""
    step = plan.next_step
    if step is None or step.status is not Status.PENDING or step.type not in STEP_MODULES:
        return Change(), None
    return step_started(plan, step, now=now), step


def step_started(plan: Plan, step: Step, *, now: dt.datetime) -> Change:
    """A step begins (one more attempt). Steps with side effects are audited: their start
    is written ahead of the call."""
    advance_step(step, Status.RUNNING, now=now)
    if step.type in LOCAL_STEPS:
        return Change()
    return Change(audit=(note(plan, f"step_started:{step.type}", module=module_of(step.type),
                              reason=f"step_{step.index}"),))


def step_done(plan: Plan, step: Step, *, result: dict[str, Any], attempts: int,
              status_code: int | None, now: dt.datetime) -> Change:
    """A step answered: its result is kept, and the attempts its call took counted."""
    step.attempts += max(0, attempts - 1)
    step.status_code = status_code or None
    advance_step(step, Status.DONE, now=now, result=result)
    if step.type in LOCAL_STEPS:
        return Change()
    return Change(audit=(note(plan, f"step_done:{step.type}", module=module_of(step.type),
                              reason=f"step_{step.index}",
                              detail={"duration_ms": step_ms(step), "attempts": step.attempts}),))


def step_failed(plan: Plan, step: Step, *, reason: str, attempts: int,
                status_code: int | None, now: dt.datetime) -> tuple[Change, bool]:
    """A step failed after its retries. Returns the change and whether the plan goes on (an
    optional step only leaves a warning); when it does not, `fail` ends the plan next."""
    # The call's own retries are attempts of this step too: the plan detail shows how often
    # a step was tried and the last status code it got.
    step.attempts += max(0, attempts - 1)
    step.status_code = status_code
    advance_step(step, Status.ERROR, now=now, error=reason)
    change = Change(audit=(note(plan, f"step_failed:{step.type}", module=module_of(step.type),
                                reason=reason,
                                detail={"duration_ms": step_ms(step), "attempts": step.attempts,
                                        "status_code": step.status_code}),))
    if step.optional:
        plan.warnings.append(f"optional_step_failed:{step.type}")
        return change, True
    return change, False


def wait_for_job(plan: Plan, step: Step, *, now: dt.datetime) -> Change:
    """A SPAWNER_REQUEST step: a job is requested from the Spawner and the plan WAITs for its
    report (a step already WAITING after a restart requests nothing again)."""
    job = None
    audit: tuple[AuditRow, ...] = ()
    if step.status is Status.PENDING:
        advance_step(step, Status.WAITING, now=now)
        job = JobRequest(step_id=step.step_id,
                         task_type=str(step.payload.get("task_type", "job")),
                         description=step.payload.get("description"),
                         params=dict(step.payload.get("params", {})))
        audit = (note(plan, "daughter_task_requested", module="spawner",
                      reason=f"step_{step.index}"),)
    return Change(audit=audit, job=job).then(_park(plan, WaitReason.SPAWNER_JOB, now))


def wait_for_confirmation(plan: Plan, step: Step, *, now: dt.datetime) -> Change:
    """The plan reached a confirmation gate while running: it WAITs for a human."""
    if step.status is Status.PENDING:
        advance_step(step, Status.WAITING, now=now)
    return _park(plan, WaitReason.CONFIRMATION, now)


def _park(plan: Plan, why: WaitReason, now: dt.datetime) -> Change:
    advance(plan, Status.WAITING, now=now, wait_reason=why)
    return Change(audit=(note(plan, "plan_waiting", reason=why.value),),
                  close=_close(plan, "waiting", why.value))


# --------------------------------------------------------------------------- from outside


def confirm(plan: Plan, *, actor: str, now: dt.datetime) -> Change:
    """A human confirmed: the gate is passed and the plan RUNs again."""
    gate_step = plan.next_step
    if gate_step is not None and gate_step.is_confirmation_gate:
        advance_step(gate_step, Status.DONE, now=now, result={"confirmed_at": now.isoformat()})
    advance(plan, Status.RUNNING, now=now)
    return Change(audit=(note(plan, "plan_confirmed", reason=f"plan_id:{plan.plan_id}",
                              actor=actor),),
                  close=_close(plan, "running", "confirmed"), confirmed_at=now)


def approve(plan: Plan, approval: Approval, *, have: int, need: int) -> Change:
    """A principal approved the plan's content (`have` of the `need` approvals it needs,
    this one counted). The plan stays WAITING; `confirm` follows when it has enough."""
    plan.approvals.append(approval)
    plan.updated_at = approval.at
    return Change(audit=(note(
        plan, "plan_approved", reason=f"{have} of {need}", actor=approval.by,
        detail={"have": have, "need": need, "plan_digest": approval.plan_digest,
                "via": approval.via, **({"comment": approval.comment} if approval.comment
                                        else {})}),))


def reject(plan: Plan, *, reason: str, actor: str, now: dt.datetime) -> Change:
    """A human said no: nothing of the plan runs; it ends in ERROR (`rejected: <reason>`)."""
    why = f"rejected: {reason}"[:500]
    _end_in_error(plan, why, step_error="rejected", now=now)
    return Change(audit=(note(plan, "plan_rejected", reason=why, actor=actor),),
                  close=_close(plan, "error", why))


def job_done(plan: Plan, step: Step, *, result: dict[str, Any], actor: str,
             now: dt.datetime) -> Change:
    """The Spawner reported the job a step waited for as finished: the plan RUNs again."""
    advance_step(step, Status.DONE, now=now, result=result)
    advance(plan, Status.RUNNING, now=now)
    daughter = result.get("daughter_task_id")
    return Change(audit=(note(plan, "job_completed", module="spawner", actor=actor,
                              reason=f"daughter_task {daughter}",
                              detail={"daughter_task_id": daughter, "ok": True}),),
                  close=_close(plan, "running", "job completed"))


def job_failed(plan: Plan, step: Step, *, result: dict[str, Any], why: str, actor: str,
               now: dt.datetime) -> Change:
    """The Spawner reported the job as failed: the step and the plan end in ERROR."""
    advance_step(step, Status.ERROR, now=now, result=result, error=why)
    _end_in_error(plan, f"step {step.index} ({step.type}) failed: {why}", now=now)
    return Change(audit=(note(plan, "job_failed", module="spawner", actor=actor, reason=why,
                              detail={"daughter_task_id": result.get("daughter_task_id"),
                                      "ok": False}),),
                  close=_close(plan, "error", why))


# --------------------------------------------------------------------------- endings


def finish(plan: Plan, *, now: dt.datetime) -> Change:
    """Every step is done: the plan is DONE."""
    advance(plan, Status.DONE, now=now)
    return Change(audit=(note(plan, "plan_done", reason=f"{len(plan.steps)} steps"),),
                  close=_close(plan, "done", f"Plan {plan.plan_id} executed"))


def fail(plan: Plan, reason: str, *, now: dt.datetime, step: Step | None = None) -> Change:
    """A required step failed, or `step` cannot run at all (it ends in ERROR too): the plan
    ends in ERROR with `reason`."""
    if step is not None and step.status not in (Status.DONE, Status.ERROR):
        advance_step(step, Status.ERROR, now=now, error=reason)
    _end_in_error(plan, reason, now=now)
    return Change(audit=(note(plan, "plan_error", reason=reason),),
                  close=_close(plan, "error", reason))


def cancel(plan: Plan, *, reason: str | None, actor: str, now: dt.datetime,
           claimed_by: str | None = None) -> Change:
    """Someone cancelled the plan: whatever state it was in, it ends in ERROR (`cancelled`).
    `claimed_by`, whom the caller says it acts for, is only a note: `actor` is who asked."""
    why = ("cancelled" + (f": {reason}" if reason else ""))[:500]
    _end_in_error(plan, why, step_error="cancelled", now=now)
    return Change(audit=(note(plan, "plan_cancelled", reason=why, actor=actor,
                              detail={"claimed_by": claimed_by} if claimed_by else None),),
                  close=_close(plan, "error", why))


def expire(plan: Plan, *, actor: str, now: dt.datetime) -> Change:
    """Nobody confirmed in time: the plan ends in ERROR (`confirmation_expired`)."""
    _end_in_error(plan, "confirmation_expired", now=now)
    return Change(audit=(note(plan, "confirmation_expired", reason="token expired",
                              actor=actor),),
                  close=_close(plan, "error", "confirmation_expired"))


def give_up(plan: Plan, *, error: str, now: dt.datetime) -> Change:
    """The plan's actor crashed too often: the plan ends in ERROR (`supervisor_gave_up`)."""
    reason = f"supervisor_gave_up: {error}"[:500]
    _end_in_error(plan, reason, step_error="supervisor_gave_up", now=now)
    return Change(audit=(note(plan, "supervisor_gave_up", reason=error, actor="supervisor"),),
                  close=_close(plan, "error", reason))


def suspend(plan: Plan) -> Change:
    """Madre is stopping: the plan stays where it is (RUNNING, its next step not started)
    and the next start goes on from there. Only recorded."""
    return Change(audit=(note(plan, "plan_suspended", reason="madre is stopping"),))


def _end_in_error(plan: Plan, reason: str, *, now: dt.datetime,
                  step_error: str | None = None) -> None:
    """The one way a plan ends in ERROR: its unfinished steps end with it (with `step_error`,
    or the reason itself), then the plan."""
    for step in plan.steps:
        if step.status in UNFINISHED_STEP:
            advance_step(step, Status.ERROR, now=now, error=step_error or reason)
    advance(plan, Status.ERROR, now=now, reason=reason)


def needs_human(risk: Risk) -> bool:
    """MED and HIGH plans wait for a human before anything with side effects runs."""
    return risk in (Risk.MED, Risk.HIGH)


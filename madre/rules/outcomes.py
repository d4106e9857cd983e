"""What a command does to a plan that no actor is running: pure decisions over the stored
plan and the facts of the request.

Each `decide_*` looks at the plan as read (and what else it needs: the stored confirmation,
the job's step), picks the outcome, applies the named transition when there is one, and
returns a verdict with the `Change` to write. The command handler (`madre.commands`) saves
plan and change conditionally on the version it read; if someone moved the plan meanwhile,
it reads again and decides again. Nothing here reads a clock, the database or a lock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

from madre.model import FINAL_STATUSES, Plan, Status, WaitReason
from madre.records import AuditRow, Change, Confirmation
from madre.rules import lifecycle
from madre.rules.tokens import token_matches


class Verdict(enum.StrEnum):
    """How a command on a plan turned out."""

    CONFIRMED = "confirmed"  # the plan runs again
    INVALID_TOKEN = "invalid_token"  # the token is not this plan's
    EXPIRED = "expired"  # the token's time ran out: the plan ended ERROR
    NOT_WAITING = "not_waiting"  # the plan does not wait for a confirmation
    RESUMED = "resumed"  # a job's success: the plan runs again
    JOB_FAILED = "job_failed"  # a job's failure: the plan ended ERROR
    DUPLICATE = "duplicate"  # a job report that changes nothing
    CANCELLED = "cancelled"  # the plan ended ERROR (cancelled)
    ALREADY_ENDED = "already_ended"  # nothing left to cancel
    GAVE_UP = "gave_up"  # the plan ended ERROR (supervisor_gave_up)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A verdict, the change to save with the plan (None: the plan stays as it was, only
    `audit` is appended), and a sentence for people."""

    verdict: Verdict
    change: Change | None = None
    audit: tuple[AuditRow, ...] = ()
    detail: str = ""

    @property
    def moves_plan(self) -> bool:
        return self.change is not None


def decide_confirmation(plan: Plan, confirmation: Confirmation | None, token: str, *,
                        actor: str, now: dt.datetime) -> Outcome:
    """A confirm with `token`: it wins only while the plan waits for a confirmation, the
    token matches the stored hash and it has not expired (an expired one ends the plan)."""
    refused = lifecycle.note(plan, "confirmation_rejected", actor=actor)
    if plan.status is not Status.WAITING or plan.wait_reason is not WaitReason.CONFIRMATION:
        return Outcome(Verdict.NOT_WAITING,
                       audit=(dataclasses.replace(refused, reason="not_waiting"),),
                       detail=f"plan {plan.plan_id} is {plan.status}, not waiting for a "
                              "confirmation")
    if confirmation is None or not token_matches(token, confirmation.token_hash):
        return Outcome(Verdict.INVALID_TOKEN,
                       audit=(dataclasses.replace(refused, reason="invalid_token"),),
                       detail="the confirmation token does not match this plan")
    if now >= _aware(confirmation.expires_at):
        return Outcome(Verdict.EXPIRED, change=lifecycle.expire(plan, actor=actor, now=now),
                       detail="the confirmation token expired")
    return Outcome(Verdict.CONFIRMED, change=lifecycle.confirm(plan, actor=actor, now=now))


def decide_job_report(plan: Plan, step_id: str, *, daughter_task_id: int, ok: bool,
                      result: dict[str, Any] | None, error: str | None, actor: str,
                      now: dt.datetime) -> Outcome:
    """A Spawner's report that job `daughter_task_id` (of step `step_id`) ended. Only a
    report for a step still waiting moves the plan; any other (a duplicate, a late one after
    a cancel) changes nothing but an audit row saying it was ignored."""
    step = next(s for s in plan.steps if s.step_id == step_id)
    waiting = (plan.status is Status.WAITING and plan.wait_reason is WaitReason.SPAWNER_JOB
               and step.status is Status.WAITING)
    if not waiting:
        detail = (f"job {daughter_task_id} was already reported: its step is {step.status} "
                  f"and the plan {plan.status}; nothing changed")
        return Outcome(Verdict.DUPLICATE, detail=detail, audit=(lifecycle.note(
            plan, "job_report_ignored", module="spawner", actor=actor, reason=detail,
            detail={"daughter_task_id": daughter_task_id, "ok": ok}),))
    job_result = {"daughter_task_id": daughter_task_id, "status": "ok" if ok else "error",
                  "result": result or {}}
    if ok:
        return Outcome(Verdict.RESUMED, change=lifecycle.job_done(
            plan, step, result=job_result, actor=actor, now=now))
    why = f"Spawner job {daughter_task_id} failed: {error or 'no reason given'}"[:500]
    return Outcome(Verdict.JOB_FAILED, change=lifecycle.job_failed(
        plan, step, result=job_result, why=why, actor=actor, now=now))


def decide_cancel(plan: Plan, *, reason: str | None, actor: str, now: dt.datetime) -> Outcome:
    """A cancel ends any plan that has not ended yet; an ended one stays as it is."""
    if plan.status in FINAL_STATUSES:
        return Outcome(Verdict.ALREADY_ENDED,
                       detail=f"plan {plan.plan_id} already ended {plan.status}")
    return Outcome(Verdict.CANCELLED,
                   change=lifecycle.cancel(plan, reason=reason, actor=actor, now=now))


def decide_expiry(plan: Plan, *, now: dt.datetime, deadline: dt.datetime | None) -> Outcome | None:
    """The timer's look at a plan whose confirmation deadline passed: it expires if it
    still waits for that confirmation; None when there is nothing to do (confirmed or
    cancelled meanwhile)."""
    if plan.status is not Status.WAITING or plan.wait_reason is not WaitReason.CONFIRMATION:
        return None
    if deadline is not None and now < _aware(deadline):
        return None
    return Outcome(Verdict.EXPIRED, change=lifecycle.expire(plan, actor="timer", now=now))


def decide_give_up(plan: Plan, *, error: str, now: dt.datetime) -> Outcome | None:
    """The Supervisor gives up on a plan whose actor kept crashing; None if it had ended."""
    if plan.status in FINAL_STATUSES:
        return None
    return Outcome(Verdict.GAVE_UP, change=lifecycle.give_up(plan, error=error, now=now))


def _aware(moment: dt.datetime) -> dt.datetime:
    # Some databases hand back naive datetimes; ours are always UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)

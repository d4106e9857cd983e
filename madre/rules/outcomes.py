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

from madre.model import FINAL_STATUSES, Approval, Plan, Status, WaitReason
from madre.records import AuditRow, Change, Confirmation
from madre.rules import lifecycle
from madre.rules.approvals import ApprovalRules, approvals_needed, counted
from madre.rules.tokens import token_matches

EXPIRED_REASON = "confirmation_expired"
NO_RULES = ApprovalRules()


class Verdict(enum.StrEnum):
    """How a command on a plan turned out."""

    CONFIRMED = "confirmed"  # approved enough: the plan runs again
    APPROVED = "approved"  # an approval recorded; the plan waits for more
    INVALID_TOKEN = "invalid_token"  # the token is not this plan's
    EXPIRED = "expired"  # the time to confirm ran out: the plan ended (or ends now) ERROR
    NOT_WAITING = "not_waiting"  # the plan does not wait for a confirmation
    PLAN_CHANGED = "plan_changed"  # the digest given is not the plan's
    SELF_APPROVAL = "self_approval"  # four eyes: who asked may not approve
    ALREADY_APPROVED = "already_approved"  # this principal (or the token) approved already
    NOT_ALLOWED = "not_allowed"  # a reject by someone neither approver nor token holder
    REJECTED = "rejected"  # the plan ended ERROR (rejected)
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
    digest: str | None = None  # an approval's: the digest of the content it judged

    @property
    def moves_plan(self) -> bool:
        return self.change is not None


def decide_confirmation(plan: Plan, confirmation: Confirmation | None, token: str, *,
                        actor: str, now: dt.datetime, rules: ApprovalRules = NO_RULES,
                        plan_digest: str | None = None) -> Outcome:
    """A confirm with `token` by `actor`: an approval, through the token, of the plan's
    content (of `plan_digest`, when given). It counts only while the plan waits for a
    confirmation, the token matches the stored hash and has not expired (an expired one
    ends the plan, and still answers expired after the timer ended it)."""
    refused = lifecycle.note(plan, "confirmation_rejected", actor=actor)
    matches = confirmation is not None and token_matches(token, confirmation.token_hash)
    if _ended_by_expiry(plan) and matches:
        return Outcome(Verdict.EXPIRED, detail="the confirmation token expired")
    if plan.status is not Status.WAITING or plan.wait_reason is not WaitReason.CONFIRMATION:
        return Outcome(Verdict.NOT_WAITING,
                       audit=(dataclasses.replace(refused, reason="not_waiting"),),
                       detail=f"plan {plan.plan_id} is {plan.status}, not waiting for a "
                              "confirmation")
    if confirmation is None or not matches:
        return Outcome(Verdict.INVALID_TOKEN,
                       audit=(dataclasses.replace(refused, reason="invalid_token"),),
                       detail="the confirmation token does not match this plan")
    if now >= _aware(confirmation.expires_at):
        return Outcome(Verdict.EXPIRED, change=lifecycle.expire(plan, actor=actor, now=now),
                       detail="the confirmation token expired")
    current = rules.digest(plan)  # once: the JSON of what will run is the costly part
    if confirmation.plan_digest and confirmation.plan_digest != current:
        return _refused(refused, Verdict.PLAN_CHANGED, "the plan changed since this token "
                        "was issued: it is not what was shown; read it again and approve it")
    if any(a.via == "token" for a in plan.approvals):
        return _refused(refused, Verdict.ALREADY_APPROVED, "this plan's confirm token was "
                        "used already; more approvals go through POST /approve")
    return _approve(plan, refused, by=actor, via="token", given=plan_digest, comment=None,
                    rules=rules, now=now, current=current)


def decide_approval(plan: Plan, confirmation: Confirmation | None, *, by: str,
                    plan_digest: str, comment: str | None, rules: ApprovalRules,
                    now: dt.datetime) -> Outcome:
    """An approval of the content `plan_digest` by principal `by` (no token): recorded
    while the plan waits for a confirmation and its time has not run out; the plan runs
    once it has the approvals it needs, by distinct principals."""
    refused = lifecycle.note(plan, "approval_refused", actor=by)
    if _ended_by_expiry(plan):
        return Outcome(Verdict.EXPIRED, detail="the time to approve this plan ran out")
    if plan.status is not Status.WAITING or plan.wait_reason is not WaitReason.CONFIRMATION:
        return _refused(refused, Verdict.NOT_WAITING,
                        f"plan {plan.plan_id} is {plan.status}, not waiting for approval")
    if confirmation is not None and now >= _aware(confirmation.expires_at):
        return Outcome(Verdict.EXPIRED, change=lifecycle.expire(plan, actor=by, now=now),
                       detail="the time to approve this plan ran out")
    return _approve(plan, refused, by=by, via="approve", given=plan_digest, comment=comment,
                    rules=rules, now=now)


def _approve(plan: Plan, refused: AuditRow, *, by: str, via: str, given: str | None,
             comment: str | None, rules: ApprovalRules, now: dt.datetime,
             current: str | None = None) -> Outcome:
    current = current or rules.digest(plan)
    if given is not None and given != current:
        return _refused(refused, Verdict.PLAN_CHANGED, "the plan_digest given is not this "
                        "plan's: what was shown is not what would run; read the plan again")
    if rules.four_eyes_apply(plan.risk) and plan.submitted_by == by:
        return _refused(refused, Verdict.SELF_APPROVAL, f"{by} asked for this {plan.risk} "
                        "plan and may not approve it too (four eyes): another approver must")
    have = counted(plan, current)
    if any(a.by == by for a in have):
        return _refused(refused, Verdict.ALREADY_APPROVED,
                        f"{by} approved this plan already; it needs another approver")
    need = approvals_needed(plan)
    approval = Approval(by=by, at=now, comment=comment, plan_digest=current, via=via)
    change = lifecycle.approve(plan, approval, have=len(have) + 1, need=need)
    if len(have) + 1 < need:
        return Outcome(Verdict.APPROVED, change=change,
                       detail=f"{len(have) + 1} of {need} approvals", digest=current)
    return Outcome(Verdict.CONFIRMED,
                   change=change.then(lifecycle.confirm(plan, actor=by, now=now)),
                   digest=current)


def decide_reject(plan: Plan, confirmation: Confirmation | None, *, by: str,
                  may_approve: bool, token: str | None, reason: str,
                  now: dt.datetime) -> Outcome:
    """A rejection by `by`, an approver (`may_approve`) or whoever holds the plan's
    `token`: a plan still waiting for a confirmation ends in ERROR and nothing of it runs."""
    refused = lifecycle.note(plan, "approval_refused", actor=by)
    if _ended_by_expiry(plan):
        return Outcome(Verdict.EXPIRED, detail="the time to approve or reject this plan ran "
                                               "out; it ended in ERROR (confirmation_expired)")
    if plan.status is not Status.WAITING or plan.wait_reason is not WaitReason.CONFIRMATION:
        return _refused(refused, Verdict.NOT_WAITING,
                        f"plan {plan.plan_id} is {plan.status}, not waiting for approval")
    if token is not None:
        if confirmation is None or not token_matches(token, confirmation.token_hash):
            return _refused(refused, Verdict.INVALID_TOKEN,
                            "the confirmation token does not match this plan")
    elif not may_approve:
        return _refused(refused, Verdict.NOT_ALLOWED, f"{by} may not reject this plan: that "
                        "needs the approver role, or the plan's confirm_token")
    if confirmation is not None and now >= _aware(confirmation.expires_at):
        return Outcome(Verdict.EXPIRED, change=lifecycle.expire(plan, actor=by, now=now),
                       detail="the time to approve or reject this plan ran out")
    return Outcome(Verdict.REJECTED,
                   change=lifecycle.reject(plan, reason=reason, actor=by, now=now))


def _refused(row: AuditRow, verdict: Verdict, detail: str) -> Outcome:
    return Outcome(verdict, audit=(dataclasses.replace(row, reason=verdict.value),),
                   detail=detail)


def _ended_by_expiry(plan: Plan) -> bool:
    """The timer (or a late confirm) ended this plan because nobody confirmed in time."""
    return plan.status is Status.ERROR and plan.reason == EXPIRED_REASON


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


def decide_cancel(plan: Plan, *, reason: str | None, actor: str, now: dt.datetime,
                  claimed_by: str | None = None) -> Outcome:
    """A cancel ends any plan that has not ended yet; an ended one stays as it is."""
    if plan.status in FINAL_STATUSES:
        return Outcome(Verdict.ALREADY_ENDED,
                       detail=f"plan {plan.plan_id} already ended {plan.status}")
    return Outcome(Verdict.CANCELLED, change=lifecycle.cancel(
        plan, reason=reason, actor=actor, now=now, claimed_by=claimed_by))


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

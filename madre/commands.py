"""Commands on plans that exist: confirm, cancel, job reports, expiry, giving up, waiting.

A live plan's state belongs to its Plan actor, so a command for one goes to that actor (a
cancel). A passive plan (WAITING, queued, backing off, or whose actor crashed) has no owner
but this handler: it reads the plan, lets the pure rules decide (`madre.rules.outcomes`),
and saves plan and change in one conditional write. When someone moved the plan between
the read and the write, nothing is written; it reads again and decides again. That write
is the one place a passive plan changes, whoever asks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pykka

from madre.actors.plan_messages import Cancel
from madre.actors.store_client import StoreClient
from madre.actors.supervisor import SupervisorClient
from madre.contracts.commands import (
    ApprovalCount,
    ApproveResponse,
    CancelResponse,
    ConfirmResponse,
    JobReportResponse,
    RejectResponse,
)
from madre.errors import (
    AlreadyApproved,
    ApprovalExpired,
    ConfirmationError,
    InvalidToken,
    NotAllowed,
    NotCancellable,
    NotFound,
    NotWaiting,
    PlanChanged,
    SelfApproval,
    StaleWrite,
    TokenExpired,
)
from madre.model import Plan, Status
from madre.principals import OWNER, Principal, Role
from madre.rules import lifecycle, outcomes
from madre.rules.approvals import ApprovalRules, approvals_needed, counted
from madre.rules.outcomes import Outcome, Verdict
from madre.store.repository import Repository
from madre.store.unreadable import UnreadablePlan
from madre.watch import Watchers

log = logging.getLogger("madre.commands")

ATTEMPTS = 5  # reads and decisions per command before giving up on a plan that keeps moving


@dataclasses.dataclass(frozen=True)
class Applied:
    """What a command did: its outcome and the plan as it stands after it."""

    outcome: Outcome
    plan: Plan
    written_ahead: str | None = None  # a step of a woken plan its write started: call it


class PlanCommands:
    """The commands, over the repository (reads), the store (writes), the Supervisor and the
    watchers; `clock` gives the moment each decision is taken at."""

    def __init__(self, *, repo: Repository, store: StoreClient, supervisor: SupervisorClient,
                 watchers: Watchers, clock: Callable[[], Any], chat_wait: float,
                 rules: ApprovalRules | None = None, instance_id: str | None = None) -> None:
        self._me = instance_id
        self._repo = repo
        self._store = store
        self._supervisor = supervisor
        self._watchers = watchers
        self._now = clock
        self._chat_wait = chat_wait
        self._rules = rules or ApprovalRules()

    # ------------------------------------------------------------------ the commands

    def confirm(self, plan_id: str, token: str, *, principal: Principal = OWNER,
                plan_digest: str | None = None, wait: float | None = None) -> ConfirmResponse:
        """Confirm a waiting plan with its token: the principal's approval through the token
        (of `plan_digest`, when given). With the approvals it needs the plan resumes, and
        this waits for it.

        Raises NotFound (404), NotAllowed, InvalidToken, SelfApproval (403), TokenExpired
        (410), NotWaiting, PlanChanged, AlreadyApproved (409).
        """
        principal.require(Role.APPROVER, doing="confirm plans")
        if not isinstance(token, str) or not token:
            raise InvalidToken("give the confirm_token this plan was issued", plan_id=plan_id)
        applied, settled = self._decide_and_run(plan_id, lambda plan: (
            outcomes.decide_confirmation(
                plan, self._repo.confirmation(plan_id), token, actor=principal.name,
                now=self._now(), rules=self._rules, plan_digest=plan_digest)),
            wait=wait, expired=lambda: TokenExpired(
                "the confirmation token expired; the plan ended in ERROR "
                "(confirmation_expired); submit the request again", plan_id=plan_id))
        return ConfirmResponse(plan_id=plan_id, plan_status=settled.status,
                               approvals=self._count(applied))

    def approve(self, plan_id: str, plan_digest: str, *, principal: Principal = OWNER,
                comment: str | None = None, wait: float | None = None) -> ApproveResponse:
        """Approve the content `plan_digest` of a waiting plan, as `principal` (no token).
        With the approvals it needs the plan resumes, and this waits for it.

        Raises NotFound (404), NotAllowed, SelfApproval (403), ApprovalExpired (410),
        NotWaiting, PlanChanged, AlreadyApproved (409).
        """
        principal.require(Role.APPROVER, doing="approve plans")
        applied, settled = self._decide_and_run(plan_id, lambda plan: outcomes.decide_approval(
            plan, self._repo.confirmation(plan_id), by=principal.name, plan_digest=plan_digest,
            comment=comment, rules=self._rules, now=self._now()),
            wait=wait, expired=lambda: ApprovalExpired(
                "the time to approve this plan ran out; it ended in ERROR "
                "(confirmation_expired); submit the request again", plan_id=plan_id))
        return ApproveResponse(plan_id=plan_id, plan_status=settled.status,
                               approvals=self._count(applied))

    def reject(self, plan_id: str, reason: str, *, principal: Principal = OWNER,
               token: str | None = None) -> RejectResponse:
        """Reject a waiting plan (an approver, or whoever holds its confirm token): it ends
        in ERROR with the reason `rejected: <reason>` and nothing of it runs.

        Raises NotFound (404), NotAllowed, InvalidToken (403), ApprovalExpired (410),
        NotWaiting (409).
        """
        applied = self._apply(plan_id, lambda plan: outcomes.decide_reject(
            plan, self._repo.confirmation(plan_id), by=principal.name,
            may_approve=principal.may(Role.APPROVER), token=token or None, reason=reason,
            now=self._now()))
        self._raise_refusal(applied.outcome, plan_id, expired=lambda: ApprovalExpired(
            "the time to approve or reject this plan ran out; it ended in ERROR "
            "(confirmation_expired)", plan_id=plan_id))
        return RejectResponse(plan_id=plan_id, plan_status=applied.plan.status,
                              reason=applied.plan.reason or "")

    def _decide_and_run(self, plan_id: str, decide: Callable[[Plan], Outcome], *,
                        wait: float | None, expired: Callable[[], ConfirmationError]
                        ) -> tuple[Applied, Plan]:
        """Apply an approval's decision; when it confirmed the plan, start it and wait up to
        `wait` (default MADRE_CHAT_WAIT_SECONDS) for it to settle."""
        with self._watchers.watch(plan_id) as watch:
            applied = self._apply(plan_id, decide)
            self._raise_refusal(applied.outcome, plan_id, expired=expired)
            if applied.outcome.verdict is not Verdict.CONFIRMED:
                return applied, applied.plan  # approved, waiting for more approvals
            self._supervisor.spawn(applied.plan,  # the plan as saved: no need to reload
                                   written_ahead=applied.written_ahead)
            settled = watch.wait(self._chat_wait if wait is None else wait)
        return applied, settled or applied.plan.model_copy(update={"status": Status.RUNNING})

    @staticmethod
    def _raise_refusal(outcome: Outcome, plan_id: str, *,
                       expired: Callable[[], ConfirmationError]) -> None:
        refusals: dict[Verdict, type[Exception]] = {
            Verdict.NOT_WAITING: NotWaiting, Verdict.INVALID_TOKEN: InvalidToken,
            Verdict.PLAN_CHANGED: PlanChanged, Verdict.SELF_APPROVAL: SelfApproval,
            Verdict.ALREADY_APPROVED: AlreadyApproved,
        }
        if outcome.verdict is Verdict.EXPIRED:
            raise expired()
        if outcome.verdict is Verdict.NOT_ALLOWED:
            raise NotAllowed(outcome.detail)
        if outcome.verdict in refusals:
            raise refusals[outcome.verdict](outcome.detail, plan_id=plan_id)  # type: ignore[call-arg]

    def _count(self, applied: Applied) -> ApprovalCount:
        """The approvals of the plan's current content, and how many it needs (the digest
        of that content as the decision computed it: what will run did not change since)."""
        plan = applied.plan
        digest = applied.outcome.digest or self._rules.digest(plan)
        return ApprovalCount(have=len(counted(plan, digest)), need=approvals_needed(plan))

    def job_finished(self, daughter_task_id: int, *, ok: bool,
                     result: dict[str, Any] | None = None, error: str | None = None,
                     actor: str = "spawner") -> JobReportResponse:
        """A Spawner reports that a job ended: the waiting plan resumes (ok) or ends in ERROR.

        The report is written before the plan is woken. A duplicate or late report changes
        nothing and says so (`status: "duplicate"`). Raises NotFound for an unknown job.
        """
        job = self._repo.job(daughter_task_id)
        if job is None:
            raise NotFound(f"no job {daughter_task_id} (daughter_tasks id)")

        def decide(plan: Plan) -> Outcome:
            if not any(s.step_id == job.step_id for s in plan.steps):
                raise NotFound(f"no job {daughter_task_id} (daughter_tasks id)")
            return outcomes.decide_job_report(
                plan, job.step_id, daughter_task_id=daughter_task_id, ok=ok, result=result,
                error=error, actor=actor, now=self._now())

        applied = self._apply(job.plan_id, decide)
        if applied.outcome.verdict is Verdict.RESUMED:
            self._supervisor.spawn(applied.plan, written_ahead=applied.written_ahead)
        return JobReportResponse(
            status="duplicate" if applied.outcome.verdict is Verdict.DUPLICATE else "accepted",
            daughter_task_id=daughter_task_id, plan_id=applied.plan.plan_id,
            plan_status=applied.plan.status, detail=applied.outcome.detail or None,
        )

    def cancel(self, plan_id: str, *, principal: Principal = OWNER, reason: str | None = None,
               claimed_by: str | None = None) -> CancelResponse:
        """End a plan that has not finished in ERROR with reason `cancelled`, audited with
        the principal that asked (`claimed_by`, whom it says it acts for, as a note). A
        running plan is cancelled by its own actor (its call in flight is let go); any other
        in one conditional write. Raises NotFound, or NotCancellable (409)."""
        principal.require(Role.OPERATOR, doing="cancel plans")
        actor = principal.name
        for _ in range(ATTEMPTS):
            live = self._cancel_live(plan_id, Cancel(reason, actor, claimed_by))
            if live is not None:
                verdict, plan = live
                break
            try:
                applied = self._apply(plan_id, lambda plan: outcomes.decide_cancel(
                    plan, reason=reason, actor=actor, now=self._now(),
                    claimed_by=claimed_by), once=True)
            except StaleWrite:
                continue  # it came alive meanwhile: ask its actor
            verdict, plan = applied.outcome.verdict, applied.plan
            break
        else:
            raise StaleWrite(plan_id, -1)
        if verdict is Verdict.ALREADY_ENDED:
            raise NotCancellable(f"plan {plan_id} already ended {plan.status}")
        return CancelResponse(plan_id=plan_id, plan_status=plan.status, reason=plan.reason)

    def expire_due(self, now: dt.datetime | None = None) -> list[Plan]:
        """End (ERROR, `confirmation_expired`) every plan whose confirmation ran out. Each
        expiry happens once: a plan confirmed, cancelled or expired by someone else meanwhile
        is left as it is. A plan whose JSON cannot be read ends by its columns, so one bad
        row never stops the others. `now` is the clock's unless given (tests)."""
        now = now or self._now()
        expired = []
        for plan_id, deadline in self._repo.due_confirmations(now=now):
            try:
                applied = self._apply(plan_id, lambda plan, d=deadline: outcomes.decide_expiry(
                    plan, now=now, deadline=d))
            except (NotFound, StaleWrite):
                continue
            if applied.outcome.verdict is Verdict.EXPIRED:
                log.info("confirmation expired", extra={"plan_id": plan_id})
                expired.append(applied.plan)
        return expired

    def give_up(self, plan_id: str, error: str) -> Plan | None:
        """End a plan whose actor kept crashing (the Supervisor's last word on it)."""
        try:
            applied = self._apply(plan_id, lambda plan: outcomes.decide_give_up(
                plan, error=error, now=self._now()))
        except NotFound:
            return None
        return applied.plan

    def wait_for_plan(self, plan_id: str, timeout: float, *, final: bool = False) -> Plan | None:
        """The plan once it settles (WAITING, DONE, ERROR), or None after `timeout` seconds.
        With `final`, WAITING does not count: wait until the plan is DONE or ERROR."""
        ended = self._watchers.ended(plan_id)
        if ended is not None:  # it ended here lately: an end is final, no read needed
            return ended.detached()  # a plan of its own, as a read would give
        running = self._watchers.watch_running(plan_id, final=final)
        if running is not None:  # its actor here publishes it when it settles: no read
            return running.wait(timeout)
        watch = self._watchers.watch(plan_id, final=final)
        current = self._repo.readable_plan(plan_id)
        if current is None:
            self._watchers.forget(watch)
            raise NotFound(f"no plan {plan_id}")
        if current.status in watch.accept:
            self._watchers.forget(watch)
            return current
        return watch.wait(timeout)

    # ------------------------------------------------------------------ passive plans

    def _apply(self, plan_id: str, decide: Callable[[Plan], Outcome | None], *,
               once: bool = False) -> Applied:
        """Read the plan, decide, write plan and change conditionally on the version read;
        on a stale write read and decide again (or, `once`, let the StaleWrite out).
        Publishes the plan to its watchers when the change settled it."""
        for _ in range(ATTEMPTS):
            plan, unreadable = self._read(plan_id)
            outcome = decide(plan)
            if outcome is None:
                return Applied(Outcome(Verdict.DUPLICATE), plan)
            if outcome.audit:  # a refusal leaves its trace even though the plan stays
                self._store.append_audit(outcome.audit)
            if outcome.change is None:
                return Applied(outcome, plan)
            read_epoch, woken = plan.epoch, plan.active
            change, ahead = outcome.change, None
            if woken:  # it runs again: here, so this instance takes it (a new epoch)
                plan.owner, plan.epoch = self._me, read_epoch + 1
                if self._supervisor.has_room():  # it starts now: its first call's write too
                    more, ahead = lifecycle.write_ahead(plan, now=self._now())
                    change = change.then(more)
            try:
                saved = self._store.save_plan(plan, change, keep_stored_json=unreadable,
                                              expected_epoch=read_epoch, claim=woken)
            except StaleWrite:
                if once:
                    raise
                continue
            self._watchers.publish(saved)
            return Applied(outcome, saved, ahead.step_id if ahead is not None else None)
        raise StaleWrite(plan_id, -1)

    def _read(self, plan_id: str) -> tuple[Plan, bool]:
        try:
            plan = self._repo.load_plan(plan_id)
        except UnreadablePlan as exc:
            return exc.plan, True
        if plan is None:
            raise NotFound(f"no plan {plan_id}")
        return plan, False

    def _cancel_live(self, plan_id: str, message: Cancel) -> tuple[Verdict, Plan] | None:
        """Cancel through the plan's actor when it has one; None when it has none (or it
        stopped before it could answer)."""
        ref = self._supervisor.live_actor(plan_id)
        if ref is None:
            return None
        try:
            return ref.ask(message, timeout=30)  # type: ignore[no-any-return]
        except pykka.ActorDeadError:
            return None

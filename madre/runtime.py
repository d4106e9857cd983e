"""`Madre`: the in-process runtime. Start it, talk to it, stop it.

    with Madre(Settings(database_url="sqlite:///tmp/madre.db")) as madre:
        answer = madre.chat(ChatRequest(message="mix these 3 stems"))

How its parts are built and stopped lives in `madre.assembly`; this is the API over them.
What it does with requests lives apart too: `Intake` (chat, control, intent) and
`PlanCommands` (confirm, cancel, job reports, expiry, waiting). The HTTP app
(`create_app`) is a thin layer over one running `Madre`; tests and other programs may use
it directly.

Collaborators tests want to replace are passed in: the clock, a wrapper of the step runner
(to make steps crash or count them), the recovery run on start.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from madre.assembly import Assembly
from madre.contracts.commands import (
    ApproveResponse,
    CancelResponse,
    ConfirmResponse,
    JobReportResponse,
    RejectResponse,
)
from madre.contracts.health import HealthResponse, InstanceList, Readiness
from madre.contracts.intake import (
    ChatRequest,
    ChatResponse,
    ControlRequest,
    ControlResponse,
    IntentRequest,
    IntentResponse,
)
from madre.contracts.plans import PendingPlan, PlanDetail
from madre.errors import NotFound
from madre.idempotency import Answered, IdempotencyKey
from madre.links import console_url
from madre.model import Plan, Status
from madre.principals import OWNER, Principal
from madre.store.queries import PlanPage
from madre.vitals import health_answer, instance_list, readiness_answer


class Madre(Assembly):
    """One Madre runtime: actors, store, clients. Use as a context manager.

    Args:
        settings: what to run with (the environment's, by default).
        clock: the wall and monotonic clocks the rules and the breaker read.
        step_runner: wraps the step executor Madre builds (tests make steps crash).
        recovery: run once on start, after every part is up (`madre.recovery.recover`).
    """

    # ------------------------------------------------------------------ intake

    def chat(self, request: ChatRequest, *, principal: Principal = OWNER,
             wait: float | None = None, request_id: str | None = None) -> ChatResponse:
        """Understand a message, decide, plan, run; answer with the plan's outcome (waiting
        up to `wait`, default MADRE_CHAT_WAIT_SECONDS, for it to settle)."""
        return self.take(request, principal=principal, wait=wait, request_id=request_id).answer

    def control(self, request: ControlRequest, *, principal: Principal = OWNER,
                request_id: str | None = None) -> ControlResponse:
        """A structured order for one module; MED/HIGH wait for confirmation, some are denied."""
        return self.take(request, principal=principal, request_id=request_id).answer

    def submit_intent(self, request: IntentRequest, *, principal: Principal = OWNER,
                      request_id: str | None = None) -> IntentResponse:
        """Structured intake (Operator, Hormiguero, webhooks, CLI). Does not wait for the plan."""
        return self.take(request, principal=principal, request_id=request_id).answer

    def take(self, request: ChatRequest | ControlRequest | IntentRequest, *,
             principal: Principal = OWNER, key: IdempotencyKey | None = None,
             wait: float | None = None, request_id: str | None = None) -> Answered[Any]:
        """Any intake request, by its type; with `key` (an Idempotency-Key, or a webhook's
        id) a retry gets the first answer again, marked `replayed`. `request_id` (the HTTP
        request's X-Request-ID) goes into the plan's log lines and its calls."""
        self._check_open()
        if isinstance(request, ChatRequest):
            return self.intake.chat(request, principal=principal, wait=wait, key=key,
                                    request_id=request_id)
        if isinstance(request, ControlRequest):
            return self.intake.control(request, principal=principal, key=key,
                                       request_id=request_id)
        return self.intake.intent(request, principal=principal, key=key,
                                  request_id=request_id)

    def webhook(self, source: str, message_id: str, request: IntentRequest
                ) -> Answered[IntentResponse]:
        """A webhook whose signature was checked: an intent of `source`, once per message."""
        self._check_open()
        return self.intake.webhook(source, message_id, request)

    # ------------------------------------------------------------------ plans

    def confirm(self, plan_id: str, token: str, *, principal: Principal = OWNER,
                plan_digest: str | None = None, wait: float | None = None) -> ConfirmResponse:
        """Confirm a waiting plan with its token; the plan resumes and this waits for it."""
        self._check_open()
        return self.commands.confirm(plan_id, token, principal=principal,
                                     plan_digest=plan_digest, wait=wait)

    def approve(self, plan_id: str, plan_digest: str, *, principal: Principal = OWNER,
                comment: str | None = None, wait: float | None = None) -> ApproveResponse:
        """Approve the content `plan_digest` of a waiting plan; with the approvals it needs,
        by distinct principals, it resumes and this waits for it."""
        self._check_open()
        return self.commands.approve(plan_id, plan_digest, principal=principal,
                                     comment=comment, wait=wait)

    def reject(self, plan_id: str, reason: str, *, principal: Principal = OWNER,
               token: str | None = None) -> RejectResponse:
        """Reject a waiting plan: it ends in ERROR (`rejected: <reason>`), nothing of it runs."""
        self._check_open()
        return self.commands.reject(plan_id, reason, principal=principal, token=token)

    def job_finished(self, daughter_task_id: int, *, ok: bool,
                     result: dict[str, Any] | None = None, error: str | None = None,
                     actor: str = "spawner") -> JobReportResponse:
        """A Spawner reports that a job ended: the waiting plan resumes (ok) or ends ERROR."""
        self._check_open()
        return self.commands.job_finished(daughter_task_id, ok=ok, result=result, error=error,
                                          actor=actor)

    def cancel(self, plan_id: str, *, principal: Principal = OWNER, reason: str | None = None,
               claimed_by: str | None = None) -> CancelResponse:
        """End a plan that has not finished in ERROR (`cancelled`), audited with who asked."""
        self._check_open()
        return self.commands.cancel(plan_id, principal=principal, reason=reason,
                                    claimed_by=claimed_by)

    def tick(self, now: dt.datetime | None = None) -> list[Plan]:
        """One round of the timed work: expire the confirmations whose time ran out.
        Driven by the scheduler every MADRE_TICK_SECONDS; tests call it with `now`."""
        return self.commands.expire_due(now)

    def wait_for_plan(self, plan_id: str, timeout: float, *, final: bool = False) -> Plan | None:
        """The plan once it settles (WAITING, DONE, ERROR), or None after `timeout` seconds.
        With `final`, WAITING does not count: wait until the plan is DONE or ERROR."""
        return self.commands.wait_for_plan(plan_id, timeout, final=final)

    def list_plans(self, *, status: Status | None = None, session_id: str | None = None,
                   limit: int = 50, before: int | None = None) -> PlanPage:
        """Plans newest first; `before` (a page's `next_before`) continues a listing."""
        return self.queries.list_plans(status=status, session_id=session_id, limit=limit,
                                       before=before)

    def get_plan(self, plan_id: str) -> PlanDetail:
        detail = self.queries.plan_detail(plan_id)
        if detail is None:
            raise NotFound(f"no plan {plan_id}")
        link = console_url(self.settings.public_url, plan_id)
        return detail.model_copy(update={"console_url": link}) if link else detail

    def pending(self, plan_id: str | None = None) -> list[PendingPlan]:
        """The plans waiting for a human (or only `plan_id`), the soonest to expire first."""
        return self.queries.pending(plan_id=plan_id)

    def active_plan_actors(self) -> int:
        """Plan actors alive now (waiting plans have none)."""
        return self.supervisor.count()

    # ------------------------------------------------------------------ health and figures

    def health(self) -> HealthResponse:
        """From the cache the prober keeps: never waits on a module or the database."""
        return health_answer(self.board, now=self.clock.now(), instances=self.instances())

    def instances(self) -> InstanceList:
        """The instances alive on this database, as of this one's last round (no query)."""
        return instance_list(self.instance_id, self.membership.alive())

    def readiness(self) -> Readiness:
        """Whether a load balancer should send work here, from cached state (never waits)."""
        trail = self.trail_status.get() if hasattr(self, "trail_status") else None
        return readiness_answer(self.board, trail, started=self._started,
                                stopping=self._stopping.is_set())


__all__ = ["Madre"]

"""`Madre`: the in-process runtime. Start it, talk to it, stop it.

    with Madre(Settings(database_url="sqlite:///tmp/madre.db")) as madre:
        answer = madre.chat(ChatRequest(message="mix these 3 stems"))

It starts the actors in dependency order (Store, Policy, Planner, Parsers, Supervisor) and
the health prober, recovers unfinished plans, and stops everything in reverse order on
`stop()` — whatever happened — so no thread outlives it. The HTTP app (`create_app`) is a
thin layer over one running `Madre`; tests and other programs may use it directly.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
from typing import Any, NamedTuple

import peewee
import pykka

from madre.rules import lifecycle
from madre.actors.parser import ParserActor
from madre.actors.plan import PlanActor
from madre.actors.planner import PlannerActor
from madre.actors.policy import PolicyActor
from madre.actors.store import StoreActor, StoreClient
from madre.actors.supervisor import (
    Activate,
    Count,
    Queued,
    RestartPolicy,
    Spawn,
    Supervisor,
)
from madre.delegation.breaker import CircuitBreaker
from madre.contracts import (
    DSL,
    CancelResponse,
    ChatRequest,
    ChatResponse,
    ConfirmResponse,
    ControlRequest,
    ControlResponse,
    ControlStatus,
    Decision,
    DependencyCheck,
    HealthResponse,
    Intent,
    IntentRequest,
    IntentResponse,
    JobReportResponse,
    Mode,
    Plan,
    PlanDetail,
    PlanList,
    Provider,
    Risk,
    Status,
    WaitReason,
    new_id,
    utcnow,
)
from madre.delegation.client import ConnectionPools, ModuleClient
from madre.errors import (
    InvalidToken,
    MadreError,
    NotCancellable,
    NotFound,
    NotWaiting,
    ShuttingDown,
    StoreUnavailable,
    TokenExpired,
)
from madre.event_feed import EventFeed
from madre.forensics import ForensicTrail, ForensicWriter
from madre.delegation.health import HealthBoard, HealthProber
from madre.metrics import Metrics
from madre.rules.parsing import mode_for
from madre.rules.tokens import IssuedToken
from madre.answers import describe, step_results
from madre.settings import MODULES, Settings, load_settings
from madre.watch import SettleHub
from madre.delegation.executor import CALL_MODULES, StepExecutor
from madre.store.db import connection, open_database
from madre.scheduler import Timers
from madre.store.migrations import ensure_schema
from madre.store.models import build_models
from madre.store.repository import AuditRow, Confirmation, IntentClose, Repository
from madre.version import __version__

log = logging.getLogger("madre")

ASK_TIMEOUT = 30.0


class IntentRecordRequest(NamedTuple):
    """An intents_log row to write together with the first write of its intent."""

    intent_id: str
    source: str
    payload: dict[str, Any]
    session_id: str | None


class Madre:
    """One Madre runtime: actors, store, clients. Use as a context manager."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self._started = False
        self._stopping = threading.Event()
        self._stack: list[tuple[str, Any]] = []
        self._parser_cycle: itertools.cycle[Any] | None = None
        self._cycle_lock = threading.Lock()
        self.hub = SettleHub()
        self.events = EventFeed()
        self.board = HealthBoard(MODULES)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Madre:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Madre:
        """Start everything in dependency order; on any failure stop what started, re-raise."""
        if self._started:
            return self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def _start(self) -> None:
        s = self.settings
        self.database: peewee.Database = open_database(s.database_url)
        self._stack.append(("database", self.database))
        self.models = build_models(self.database)
        ensure_schema(self.database, self.models)
        self.repo = Repository(self.database, self.models)
        # Enough kept-alive connections per module for every active plan and parser at once.
        self.pools = ConnectionPools(maxsize=s.max_active_plans + s.parser_actors + 2)
        self._stack.append(("pools", self.pools))
        token = s.token.get_secret_value()
        self.clients = {
            m: ModuleClient(
                m, s.module_url(m), token=token, pools=self.pools,
                connect_timeout=s.connect_timeout_seconds, read_timeout=s.step_timeout_seconds,
                retries=s.step_retries, backoff=s.retry_backoff_seconds,
            )
            for m in MODULES
        }
        self.switch_breaker = CircuitBreaker(
            "switch", failures=s.breaker_failures, reset_seconds=s.breaker_reset_seconds
        )
        parse_client = ModuleClient(
            "switch", s.switch_url, token=token, pools=self.pools,
            connect_timeout=min(s.connect_timeout_seconds, s.parse_timeout_seconds),
            read_timeout=s.parse_timeout_seconds,
        )
        routes = {
            "switch": s.switch_parse_route, "hermes": s.hermes_route,
            "hormiguero": s.hormiguero_route, "manifestator": s.manifestator_route,
            "shub": s.shub_route,
        }
        self.executor = StepExecutor(
            {m: self.clients[m] for m in CALL_MODULES.values()}, routes, self.board
        )

        self.trail = ForensicTrail(s.forensic_dir)
        self.forensic_writer = ForensicWriter.start(self.trail)
        self._stack.append(("actor", self.forensic_writer))
        self.metrics = Metrics(self._live_figures)
        store_ref = StoreActor.start(self.repo, on_commit=self._committed)
        self._stack.append(("actor", store_ref))
        self.store = StoreClient(store_ref, self.repo)
        self.policy = self._start_actor(PolicyActor, confirm_ttl_seconds=s.confirm_ttl_seconds)
        self.planner = self._start_actor(PlannerActor)
        self.parsers = [
            self._start_actor(ParserActor, parse_client, s.switch_parse_route, self.switch_breaker)
            for _ in range(s.parser_actors)
        ]
        self._parser_cycle = itertools.cycle(self.parsers)
        self.timers = Timers().start()
        self._stack.append(("timers", self.timers))
        supervisor_ref = Supervisor.start(
            make_child=self._make_plan_actor, store=self.store, publish=self.hub.publish,
            timers=self.timers, max_active=s.max_active_plans,
            policy=RestartPolicy(max_restarts=s.restart_max, period=s.restart_period_seconds,
                                 min_backoff=s.restart_backoff_seconds),
        )
        self._stack.append(("actor", supervisor_ref))
        self.supervisor = supervisor_ref

        self.prober = HealthProber(
            self.board, self.clients, check_db=self._check_db,
            interval=s.health_interval_seconds,
        )
        self.prober.start()
        self._stack.append(("prober", self.prober))
        self._recover()
        self.timers.every(s.tick_seconds, self.tick)

    def _start_actor(self, cls: type[pykka.ThreadingActor], *args: Any, **kwargs: Any) -> Any:
        ref = cls.start(*args, **kwargs)
        self._stack.append(("actor", ref))
        return ref.proxy()

    def _make_plan_actor(self, plan_id: str, *, plan: Plan | None, incarnation: int,
                         supervisor: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        return PlanActor.start(
            plan_id, plan=plan, incarnation=incarnation, store=self.store,
            executor=self.executor, hub=self.hub, supervisor=supervisor,
            draining=self._stopping,
        )

    def _recover(self) -> None:
        """Pick up what a previous run left: close intents that never got a plan, end the
        confirmations that expired meanwhile, resume every plan left PENDING or RUNNING (a
        step that was in flight runs again with the same Idempotency-Key). WAITING plans
        stay passive: a confirmation or a job report wakes them."""
        started = utcnow()
        closed = self.store.call(lambda repo: repo.close_orphan_intents(before=started))
        if closed:
            log.warning("closed %d intents left without a plan", closed)
        self.tick(now=started)
        unfinished = self.repo.unfinished_plan_ids()
        for plan_id in unfinished:
            self.supervisor.tell(Activate(plan_id))
        if unfinished:
            log.info("recovering %d unfinished plans", len(unfinished))

    def tick(self, now: dt.datetime | None = None) -> list[Plan]:
        """One round of the timed work: expire the confirmations whose time ran out.
        Driven by the timer every MADRE_TICK_SECONDS; tests call it with `now`."""
        moment = now or utcnow()
        expired = self.store.call(lambda repo: repo.expire_due_confirmations(now=moment))
        for plan in expired:
            log.info("confirmation expired", extra={"plan_id": plan.plan_id})
            self.hub.publish(plan)
        return expired

    def stop(self) -> None:
        """Stop intake, then every component in reverse start order. Safe to call twice."""
        self._stopping.set()
        while self._stack:
            kind, thing = self._stack.pop()
            try:
                if kind == "actor":
                    thing.stop(block=True, timeout=60)
                elif kind in ("prober", "timers"):
                    thing.stop()
                elif kind == "pools":
                    thing.close()
                elif kind == "database":
                    thing.close_all() if hasattr(thing, "close_all") else thing.close()
            except Exception:  # keep stopping the rest whatever one part does
                log.exception("error while stopping %s", kind)
        self._started = False

    @property
    def running(self) -> bool:
        return self._started and not self._stopping.is_set()

    def _check_open(self) -> None:
        if not self.running:
            raise ShuttingDown("Madre is not running (stopping or not started); try again later")

    def _check_db(self) -> None:
        with connection(self.database):
            self.database.execute_sql("SELECT 1")

    def active_plan_actors(self) -> int:
        """Plan actors alive now (waiting plans have none)."""
        return int(self.supervisor.ask(Count(), timeout=ASK_TIMEOUT))

    def _committed(self, records: list[dict[str, Any]]) -> None:
        """After every commit (Store actor thread): trail, event streams, metrics."""
        if records:
            self.forensic_writer.tell(records)
        self.events.notify()
        self.metrics.observe(records)

    def _live_figures(self) -> dict[str, Any]:
        """Gauges for /metrics, read when scraped."""
        breaker = {"closed": 0.0, "half_open": 0.5, "open": 1.0}
        return {
            "active": self.supervisor.ask(Count(), timeout=ASK_TIMEOUT),
            "queued": self.supervisor.ask(Queued(), timeout=ASK_TIMEOUT),
            "waiting": self.repo.count_plans(Status.WAITING),
            "breakers": {"switch": breaker[self.switch_breaker.state.value]},
        }

    def begin_drain(self) -> None:
        """Take no new work (503) and let running plans stop after their current step."""
        self._stopping.set()
        self.events.notify()  # event streams see Madre stopping and end

    # ------------------------------------------------------------------ intake

    def chat(self, request: ChatRequest, *, wait: float | None = None) -> ChatResponse:
        """Understand a message, decide, plan, run; answer with the plan's outcome.

        Waits up to `wait` (default MADRE_CHAT_WAIT_SECONDS) for the plan to settle; a plan
        still going after that is answered RUNNING and goes on.
        """
        self._check_open()
        session_id = request.session_id or new_id()
        intent_id = new_id()
        # The intents_log row is written in the same transaction as the plan (or the denial):
        # durable before the answer, one commit fewer per chat.
        record = IntentRecordRequest(intent_id, "operator", {
            "message": request.message, "session_id": session_id,
            "context": request.context or {}, "dry_run": request.dry_run,
        }, session_id)
        # A session minted just now has no history to read.
        session_mode = (self.repo.session_mode(session_id) if request.session_id else None
                        ) or Mode.MADRE
        parsed = self._parser().parse(
            request.message, session_mode, session_id=session_id, intent_id=intent_id
        ).get(timeout=ASK_TIMEOUT)
        mode = mode_for(parsed.dsl, session_mode)
        decision = self.policy.classify_dsl(parsed.dsl).get(timeout=ASK_TIMEOUT)
        intent = Intent(
            intent_id=intent_id, source="operator", session_id=session_id, mode=mode,
            dsl=parsed.dsl, provider=parsed.provider, decision=decision,
            targets=[parsed.dsl.target] if parsed.dsl.target else [],
            warnings=parsed.warnings,
        )
        if decision.denied:
            self._deny(intent, request_kind="chat", record=record)
            return self._chat_answer(intent, None, decision, waited=0)
        plan = self.planner.plan(intent).get(timeout=ASK_TIMEOUT)
        if request.dry_run:
            self._close(intent_id, "dry_run", "planned only (dry_run)", record=record)
            return self._chat_answer(intent, plan, decision, waited=0, persisted=False)
        plan, issued, _ = self._persist(intent, plan, record=record)
        budget = self.settings.chat_wait_seconds if wait is None else wait
        settled = plan if plan.status is Status.WAITING else self._run(plan, budget)
        return self._chat_answer(intent, settled, decision, waited=budget, issued=issued,
                                 plan_id=plan.plan_id)

    def control(self, request: ControlRequest, *, actor: str = "api") -> ControlResponse:
        """A structured order for one module; MED/HIGH wait for confirmation, some are denied.

        With `confirm_token` (and optionally `plan_id`) it confirms the plan the token was
        issued for, as the original clients do.
        """
        self._check_open()
        decision = self.policy.classify(request.target, request.action).get(timeout=ASK_TIMEOUT)
        if request.confirm_token:
            return self._control_confirm(request, decision, actor=actor)
        intent_id = new_id()
        session_id = request.session_id or new_id()
        record = IntentRecordRequest(intent_id, "control", {
            "target": request.target, "action": request.action, "params": request.params or {},
        }, session_id)
        dsl = DSL(domain=request.target.lower(), action=request.action.lower(),
                  target=request.target.lower(), parameters=request.params or {},
                  confidence=1.0, original_text=f"{request.action} {request.target}")
        intent = Intent(intent_id=intent_id, source="control", session_id=session_id,
                        mode=Mode.MADRE, dsl=dsl, provider=Provider.STRUCTURED,
                        decision=decision, targets=[dsl.domain])
        if decision.denied:
            action_id = self._deny(intent, request_kind="control", record=record)
            return ControlResponse(status=ControlStatus.DENIED, plan_id=None, risk=decision.risk,
                                   reason=decision.reason, action_id=action_id,
                                   intent_id=intent_id)
        plan = self.planner.plan(intent).get(timeout=ASK_TIMEOUT)
        plan, issued, action_id = self._persist(intent, plan, record=record)
        if issued is not None:
            return ControlResponse(
                status=ControlStatus.PENDING_CONFIRMATION, plan_id=plan.plan_id,
                intent_id=intent_id,
                risk=decision.risk, confirm_token=issued.token, expires_at=issued.expires_at,
                reason=f"Risk {decision.risk}: {decision.reason}. Confirm with this token.",
                action_id=action_id, plan_status=plan.status,
            )
        self.supervisor.tell(Spawn(plan))
        return ControlResponse(status=ControlStatus.ACCEPTED, plan_id=plan.plan_id,
                               intent_id=intent_id, risk=decision.risk, reason=decision.reason,
                               action_id=action_id, plan_status=plan.status)

    def submit_intent(self, request: IntentRequest) -> IntentResponse:
        """Structured intake (Operator, Hormiguero, webhooks, CLI). Does not wait for the plan.

        A `correlation_id` becomes the intent id, so a caller that retries the same intent
        gets the first answer back (`duplicate: true`) instead of a second plan.
        """
        self._check_open()
        intent_id = request.correlation_id or new_id()
        session_id = request.session_id or new_id()
        payload = request.model_dump(exclude_none=True, exclude={"payload", "type"})
        if not self._record_intent(intent_id, request.source, payload, session_id,
                                   duplicate_ok=True):
            return self._duplicate_answer(intent_id)
        if request.action is not None:
            target = (request.target or request.domain or "madre").lower()
            dsl = DSL(domain=(request.domain or target).lower(), action=request.action.lower(),
                      target=request.target.lower() if request.target else None,
                      parameters=request.params or {}, confidence=1.0,
                      original_text=request.text or f"{request.action} {target}")
            provider, warnings = Provider.STRUCTURED, []
            decision = self.policy.classify(dsl.target or dsl.domain, dsl.action).get(
                timeout=ASK_TIMEOUT)
            mode = Mode.AUDIO_ENGINEER if dsl.domain == "audio" else Mode.MADRE
        else:
            assert request.text is not None
            session_mode = self.repo.session_mode(session_id) or Mode.MADRE
            parsed = self._parser().parse(request.text, session_mode, session_id=session_id,
                                          intent_id=intent_id).get(timeout=ASK_TIMEOUT)
            dsl, provider, warnings = parsed.dsl, parsed.provider, parsed.warnings
            if request.params:
                dsl.parameters.update(request.params)
            decision = self.policy.classify_dsl(dsl).get(timeout=ASK_TIMEOUT)
            mode = mode_for(dsl, session_mode)
        intent = Intent(intent_id=intent_id, source=request.source, session_id=session_id,
                        mode=mode, dsl=dsl, provider=provider, decision=decision,
                        targets=[dsl.target] if dsl.target else [], warnings=warnings,
                        correlation_id=request.correlation_id)
        if decision.denied:
            self._deny(intent, request_kind="intent")
            return IntentResponse(intent_id=intent_id, plan_id=None, task_id=None,
                                  status=Status.ERROR, risk=decision.risk,
                                  requires_confirmation=False)
        plan = self.planner.plan(intent).get(timeout=ASK_TIMEOUT)
        plan, issued, _ = self._persist(intent, plan)
        if plan.status is not Status.WAITING:
            self.supervisor.tell(Spawn(plan))
        return IntentResponse(
            intent_id=intent_id, plan_id=plan.plan_id, task_id=plan.plan_id, status=plan.status,
            risk=decision.risk, requires_confirmation=decision.requires_confirmation,
            confirm_token=issued.token if issued else None,
            expires_at=issued.expires_at if issued else None,
        )

    # ------------------------------------------------------------------ plans

    def list_plans(self, *, status: Status | None = None, session_id: str | None = None,
                   limit: int = 50, cursor: str | None = None) -> PlanList:
        return self.repo.list_plans(status=status, session_id=session_id, limit=limit,
                                    cursor=cursor)

    def get_plan(self, plan_id: str) -> PlanDetail:
        detail = self.repo.plan_detail(plan_id)
        if detail is None:
            raise NotFound(f"no plan {plan_id}")
        return detail

    def confirm(self, plan_id: str, token: str, *, actor: str = "api",
                wait: float | None = None) -> ConfirmResponse:
        """Confirm a waiting plan with its token; the plan resumes and this waits for it.

        Raises NotFound (404), InvalidToken (403), TokenExpired (410), NotWaiting (409).
        """
        self._check_open()
        if not isinstance(token, str) or not token:
            raise InvalidToken("give the confirm_token this plan was issued", plan_id=plan_id)
        watch = self.hub.watch(plan_id)
        try:
            outcome = self.store.call(lambda repo: repo.consume_confirmation(
                plan_id=plan_id, token=token, now=utcnow(), actor=actor))
            if outcome.verdict == "unknown":
                raise NotFound(f"no plan {plan_id}")
            if outcome.verdict == "not_waiting":
                raise NotWaiting(outcome.detail, plan_id=plan_id)
            if outcome.verdict == "invalid":
                raise InvalidToken("the confirmation token does not match this plan",
                                   plan_id=plan_id)
            if outcome.verdict == "expired":
                if outcome.plan is not None:
                    self.hub.publish(outcome.plan)
                raise TokenExpired("the confirmation token expired; the plan ended in ERROR "
                                   "(confirmation_expired); submit the request again",
                                   plan_id=plan_id)
            self.supervisor.tell(Spawn(outcome.plan))  # the plan as saved: no need to reload
            budget = self.settings.chat_wait_seconds if wait is None else wait
            settled = watch.wait(budget)
        finally:
            self.hub.forget(watch)
        return ConfirmResponse(plan_id=plan_id,
                               plan_status=settled.status if settled else Status.RUNNING)

    def job_finished(self, daughter_task_id: int, *, ok: bool,
                     result: dict[str, Any] | None = None, error: str | None = None,
                     actor: str = "spawner") -> JobReportResponse:
        """A Spawner reports that a job ended: the waiting plan resumes (ok) or ends in ERROR.

        The report is written before the plan is woken. A duplicate or late report changes
        nothing and says so (`status: "duplicate"`). Raises NotFound for an unknown job.
        """
        self._check_open()
        outcome = self.store.call(lambda repo: repo.finish_job(
            daughter_task_id=daughter_task_id, ok=ok, result=result, error=error,
            now=utcnow(), actor=actor))
        if outcome.verdict == "unknown":
            raise NotFound(f"no job {daughter_task_id} (daughter_tasks id)")
        plan = outcome.plan
        assert plan is not None
        if outcome.verdict == "resumed":
            self.supervisor.tell(Spawn(plan))
        elif outcome.verdict == "failed":
            self.hub.publish(plan)
        return JobReportResponse(
            status="duplicate" if outcome.verdict == "duplicate" else "accepted",
            daughter_task_id=daughter_task_id, plan_id=plan.plan_id, plan_status=plan.status,
            detail=outcome.detail or None,
        )

    def cancel(self, plan_id: str, *, actor: str = "api", reason: str | None = None
               ) -> CancelResponse:
        """End a plan that has not finished in ERROR with reason `cancelled`, audited with
        who asked. Raises NotFound, or NotCancellable (409) for a plan already ended."""
        self._check_open()
        outcome = self.store.call(lambda repo: repo.cancel_plan(plan_id=plan_id, actor=actor,
                                                                reason=reason))
        if outcome.verdict == "unknown":
            raise NotFound(f"no plan {plan_id}")
        assert outcome.plan is not None
        if outcome.verdict == "final":
            raise NotCancellable(outcome.detail)
        self.hub.publish(outcome.plan)
        return CancelResponse(plan_id=plan_id, plan_status=outcome.plan.status,
                              reason=outcome.plan.reason)

    def wait_for_plan(self, plan_id: str, timeout: float, *, final: bool = False) -> Plan | None:
        """The plan once it settles (WAITING, DONE, ERROR), or None after `timeout` seconds.
        With `final`, WAITING does not count: wait until the plan is DONE or ERROR."""
        watch = self.hub.watch(plan_id, final=final)
        current = self.repo.get_plan(plan_id)
        if current is None:
            self.hub.forget(watch)
            raise NotFound(f"no plan {plan_id}")
        if current.status in watch.accept:
            self.hub.forget(watch)
            return current
        return watch.wait(timeout)

    def health(self) -> HealthResponse:
        """From the cache the prober keeps: never waits on a module or the database."""
        states = self.board.deps()
        deps = {name: state.state for name, state in states.items()}
        db = self.board.db()
        db_state = "down" if db.state == "down" else "ok"
        degraded = db_state == "down" or any(v == "down" for v in deps.values())
        checks = {
            name: DependencyCheck(state=s.state, checked_at=s.checked_at, error=s.error)
            for name, s in {**states, "db": db}.items()
        }
        return HealthResponse(status="degraded" if degraded else "ok", version=__version__,
                              time=utcnow(), deps=deps, db=db_state, checks=checks)

    # ------------------------------------------------------------------ internals

    def _parser(self) -> Any:
        with self._cycle_lock:
            assert self._parser_cycle is not None
            return next(self._parser_cycle)

    def _record_intent(self, intent_id: str, source: str, payload: dict[str, Any],
                       session_id: str | None, *, duplicate_ok: bool = False) -> bool:
        """Write the intents_log row before anything else; False if the id exists already."""
        try:
            self.store.call(lambda repo: repo.record_intent(
                intent_id=intent_id, source=source, payload=payload, session_id=session_id))
        except peewee.IntegrityError:
            if duplicate_ok:
                return False
            raise
        return True

    def _duplicate_answer(self, intent_id: str) -> IntentResponse:
        """The answer an intent got the first time (without its token, which is shown once)."""
        record = self.repo.find_intent(intent_id)
        plan = self.repo.get_plan(record.plan_id) if record and record.plan_id else None
        if plan is None:  # denied, or still being planned by the first request
            denied = record is not None and record.result_status == "denied"
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
            duplicate=True,
        )

    def _persist(self, intent: Intent, plan: Plan, *, record: IntentRecordRequest | None = None
                 ) -> tuple[Plan, IssuedToken | None, int]:
        """Save a new plan (WAITING behind its gate when it needs a confirmation)."""
        decision = intent.decision
        issued: IssuedToken | None = None
        confirmation = None
        audit = [AuditRow(
            action=f"decision:{decision.risk}", reason=decision.reason[:255],
            module=intent.dsl.target or "madre", plan_id=plan.plan_id, intent_id=intent.intent_id,
            session_id=intent.session_id, actor=intent.source,
            detail={"domain": intent.dsl.domain, "action": intent.dsl.action,
                    "provider": intent.provider.value},
        )]
        close = None
        if decision.requires_confirmation:
            issued = self.policy.issue_token(utcnow()).get(timeout=ASK_TIMEOUT)
            confirmation = Confirmation(issued.token_hash, issued.expires_at)
            gate = plan.steps[0]
            lifecycle.advance_step(gate, Status.WAITING)
            lifecycle.advance(plan, Status.WAITING, wait_reason=WaitReason.CONFIRMATION)
            audit.append(AuditRow(
                action=f"confirmation_required:{decision.risk}", reason=f"action_{intent.dsl.action}"[:255],
                plan_id=plan.plan_id, intent_id=intent.intent_id, session_id=intent.session_id,
                actor="policy", detail={"expires_at": issued.expires_at.isoformat()},
            ))
            close = IntentClose(intent.intent_id, "waiting", "waiting for confirmation")
        audit.append(AuditRow(action="plan_created", reason=f"{len(plan.steps)} steps",
                              plan_id=plan.plan_id, intent_id=intent.intent_id,
                              session_id=intent.session_id, actor="planner"))

        def create(repo: Repository) -> tuple[Plan, int]:
            if record is not None:
                repo.record_intent(**record._asdict())
            action_id = repo.append_audit_returning_id(audit[0])
            repo.create_plan(plan, confirmation=confirmation, audit=audit[1:], close=close)
            return plan, action_id

        saved, action_id = self.store.call(create)
        return saved, issued, action_id

    def _run(self, plan: Plan, budget: float) -> Plan | None:
        watch = self.hub.watch(plan.plan_id)
        self.supervisor.tell(Spawn(plan))
        return watch.wait(budget)

    def _deny(self, intent: Intent, *, request_kind: str,
              record: IntentRecordRequest | None = None) -> int:
        row = AuditRow(action="denied", reason=intent.decision.reason[:255],
                       module=intent.dsl.target or "madre", intent_id=intent.intent_id,
                       session_id=intent.session_id, actor=intent.source,
                       detail={"request": request_kind, "action": intent.dsl.action})
        close = IntentClose(intent.intent_id, "denied", intent.decision.reason[:500])

        def deny(repo: Repository) -> int:
            if record is not None:
                repo.record_intent(**record._asdict())
            repo.close_intent(close)
            return repo.append_audit_returning_id(row)

        return int(self.store.call(deny))

    def _close(self, intent_id: str, status: str, notes: str, *,
               record: IntentRecordRequest | None = None) -> None:
        def close(repo: Repository) -> None:
            if record is not None:
                repo.record_intent(**record._asdict())
            repo.close_intent(IntentClose(intent_id, status, notes))

        self.store.call(close)

    def _control_confirm(self, request: ControlRequest, decision: Decision, *,
                         actor: str) -> ControlResponse:
        token = request.confirm_token or ""
        plan_id = request.plan_id or self.repo.find_plan_by_token(token)
        if plan_id is None:
            raise InvalidToken("no plan waits for this confirmation token")
        confirmed = self.confirm(plan_id, token, actor=actor, wait=0)
        plan = self.repo.get_plan(plan_id)
        return ControlResponse(status=ControlStatus.ACCEPTED, plan_id=plan_id, risk=decision.risk,
                               intent_id=plan.intent_id if plan else None,
                               reason="confirmed", plan_status=confirmed.plan_status)

    def _chat_answer(self, intent: Intent, plan: Plan | None, decision: Decision, *,
                     waited: float, issued: IssuedToken | None = None,
                     plan_id: str | None = None, persisted: bool = True) -> ChatResponse:
        warnings = list(intent.warnings)
        if plan is not None:
            warnings += [w for w in plan.warnings if w not in warnings]
        if decision.denied:
            status = Status.ERROR
        elif plan is None:
            status = Status.RUNNING
        else:
            status = plan.status if persisted else Status.PENDING
        return ChatResponse(
            response=describe(plan if persisted else None, plan_id=plan_id, decision=decision,
                              waited=waited, expires_at=issued.expires_at if issued else None)
            if persisted else f"Dry run: would run {', '.join(s.type for s in plan.steps)}.",
            session_id=intent.session_id, intent_id=intent.intent_id,
            plan_id=plan_id if persisted else None, status=status, mode=intent.mode,
            risk=decision.risk, requires_confirmation=decision.requires_confirmation,
            confirm_token=issued.token if issued and status is Status.WAITING else None,
            expires_at=issued.expires_at if issued and status is Status.WAITING else None,
            provider=intent.provider, warnings=warnings, targets=intent.targets,
            actions=step_results(plan) if plan is not None else [],
        )


__all__ = ["Madre", "MadreError", "StoreUnavailable"]

"""`Madre`: the in-process runtime. Start it, talk to it, stop it.

    with Madre(Settings(database_url="sqlite:///tmp/madre.db")) as madre:
        answer = madre.chat(ChatRequest(message="mix these 3 stems"))

It wires the parts in dependency order (database, delegation, the Store, Policy, Planner
and Parser actors, the Supervisor, the health prober), runs the recovery, and stops
everything in reverse order on `stop()` — whatever happened — so no thread outlives it.
What it does with requests lives apart: `Intake` (chat, control, intent) and
`PlanCommands` (confirm, cancel, job reports, expiry, waiting). The HTTP app
(`create_app`) is a thin layer over one running `Madre`; tests and other programs may use
it directly.

Collaborators tests want to replace are passed in: the clock, a wrapper of the step runner
(to make steps crash or count them), the recovery run on start.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import logging
import time
import threading
from collections.abc import Callable
from typing import Any

import peewee
import pykka

from madre.actors.parser import ParserActor, ParserPool
from madre.actors.plan import PlanActor
from madre.actors.planner import PlannerActor
from madre.actors.policy import PolicyActor
from madre.actors.store import StoreActor
from madre.actors.store_client import StoreClient
from madre.actors.supervisor import RestartPolicy, Supervisor, SupervisorClient
from madre.actors.trail import Doorbell, TrailClient, TrailStatus, TrailWriter
from madre.clock import SYSTEM_CLOCK, Clock
from madre.commands import PlanCommands
from madre.contracts.commands import (
    ApproveResponse,
    CancelResponse,
    ConfirmResponse,
    JobReportResponse,
    RejectResponse,
)
from madre.contracts.health import (
    DependencyCheck,
    HealthResponse,
    InstanceList,
    InstanceView,
    Readiness,
)
from madre.contracts.intake import (
    ChatRequest,
    ChatResponse,
    ControlRequest,
    ControlResponse,
    IntentRequest,
    IntentResponse,
)
from madre.contracts.plans import PendingPlan, PlanDetail
from madre.delegation.breaker import CircuitBreaker
from madre.delegation.client import ConnectionPools, ModuleClient
from madre.delegation.executor import StepExecutor, StepRunner
from madre.delegation.health import DependencyState, HealthBoard, HealthProber
from madre.errors import NotFound, ShuttingDown
from madre.event_hub import EventHub
from madre.forensics import ForensicTrail
from madre.idempotency import Answered, IdempotencyKey
from madre.instances import FileLock, new_instance_id, this_instance
from madre.intake import Intake
from madre.links import console_url
from madre.membership import EveryOtherIsDead, Membership
from madre.presence import Presence
from madre.metrics import Metrics
from madre.model import Plan, Status, utcnow
from madre.modules import MODULE_NAMES, STEP_MODULES
from madre.notify import Notifier
from madre.principals import OWNER, Principal
from madre.recovery import recover
from madre.rules.approvals import ApprovalRules
from madre.rules.policy_file import load_policy_file
from madre.rules.tables import DEFAULT_TABLES
from madre.scheduler import Scheduler
from madre.settings import Settings, load_settings
from madre.store.db import connection, is_sqlite, open_database
from madre.store.failures import DbFailure
from madre.store.feed import TrailSource
from madre.store.migrations import ensure_schema
from madre.store.models import build_models
from madre.store.queries import PlanPage, Queries
from madre.store.repository import Repository
from madre.version import __version__
from madre.watch import Watchers

log = logging.getLogger("madre")

ASK_TIMEOUT = 30.0


class Madre:
    """One Madre runtime: actors, store, clients. Use as a context manager.

    Args:
        settings: what to run with (the environment's, by default).
        clock: the wall and monotonic clocks the rules and the breaker read.
        step_runner: wraps the step executor Madre builds (tests make steps crash).
        recovery: run once on start, after every part is up (`madre.recovery.recover`).
    """

    def __init__(self, settings: Settings | None = None, *, clock: Clock = SYSTEM_CLOCK,
                 step_runner: Callable[[StepExecutor], StepRunner] | None = None,
                 recovery: Callable[[Madre], None] = recover) -> None:
        self.settings = settings or load_settings()
        self.clock = clock
        self.instance_id = self.settings.instance_id or new_instance_id()
        self._wrap_runner = step_runner
        self._recovery = recovery
        self._started = False
        self._stopping = threading.Event()
        self._stack: list[Callable[[], None]] = []  # how to stop what started, in order
        self.watchers = Watchers()
        self.board = HealthBoard(MODULE_NAMES)
        # Ready before start, so an app can be built over a Madre still starting (its
        # /readyz says so): who may do what, and the metrics' registry.
        self.principals = self.settings.principals()
        self.metrics = Metrics(self._live_figures)
        self.notifier: Notifier | None = None

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
        self.me = this_instance(self.instance_id, self.clock.now())
        self.database: peewee.Database = open_database(
            s.database_url, idle_transaction_seconds=s.lease_seconds)
        self._on_stop(self._close_database)
        self._claim_database()
        self.models = build_models(self.database)
        ensure_schema(self.database, self.models, allow_migrate=s.migrate == "auto")
        self.repo = Repository(self.database, self.models, instance_id=self.instance_id)
        # How many approvals of what content a plan needs.
        called = sorted(set(STEP_MODULES.values()))
        self.rules = ApprovalRules(four_eyes=s.four_eyes_mode, high_approvals=s.high_approvals,
                                   routes={m: s.module_route(m) for m in called})
        self.queries = Queries(self.database, self.models, self.rules)
        self.events = EventHub(self.queries.published_after, self.queries.last_event_id,
                               poll_seconds=s.tick_seconds,
                               max_pending=s.events_max_lag).start()
        self._on_stop(self.events.stop)
        self._start_delegation()

        self.trail_status = TrailStatus()
        doorbell = Doorbell()
        self.trail = TrailClient(self._actor(TrailWriter.start(
            ForensicTrail(s.forensic_dir), TrailSource(self.database), self.trail_status,
            doorbell)), doorbell)
        self._catch_up_trail()
        self.board.set_db_write(DependencyState("up", utcnow()))  # the schema was just written
        self.store = StoreClient(self._actor(StoreActor.start(
            self.repo, on_commit=self._committed, on_outcome=self._write_outcome,
            lease_seconds=s.lease_seconds, clock=self.clock.now,
            notify=not is_sqlite(self.database))))
        # Let the plans still held go once every plan actor has stopped (popped after the
        # Supervisor's stop): another instance takes them at once.
        self._on_stop(self._release_plans)
        # The risk tables, with what an operator's policy file adds (a bad file already
        # stopped load_settings, naming its line).
        self.tables = load_policy_file(s.policy_file) if s.policy_file else DEFAULT_TABLES
        self.policy = self._actor(PolicyActor.start(
            confirm_ttl_seconds=s.confirm_ttl_seconds, tables=self.tables)).proxy()
        self.planner = self._actor(PlannerActor.start()).proxy()
        self.parsers = ParserPool([
            self._actor(ParserActor.start(self._parse_client, s.switch_parse_route,
                                          self.switch_breaker, tables=self.tables)).proxy()
            for _ in range(s.parser_actors)
        ], timeout=ASK_TIMEOUT)
        self.scheduler = Scheduler().start()
        self._on_stop(self.scheduler.stop)
        self.notifier = Notifier.from_settings(s, scheduler=self.scheduler,
                                               audit=self.store.append_audit,
                                               clock=self.clock.now)
        if self.notifier is not None:
            self._on_stop(self.notifier.stop)  # before the store its audit rows go to
        # Each live plan has at most one call in flight: one pool thread per place is enough.
        self._calls = concurrent.futures.ThreadPoolExecutor(
            max_workers=s.max_active_plans, thread_name_prefix="madre-call")
        self._on_stop(lambda: self._calls.shutdown(wait=True))
        self.supervisor = SupervisorClient(self._actor(Supervisor.start(
            make_child=self._make_plan_actor,
            audit=lambda rows: self.store.append_audit(rows, wait=False),
            give_up=lambda plan_id, error: self.commands.give_up(plan_id, error),
            scheduler=self.scheduler, max_active=s.max_active_plans,
            policy=RestartPolicy(max_restarts=s.restart_max, period=s.restart_period_seconds,
                                 min_backoff=s.restart_backoff_seconds),
            clock=self.clock.monotonic,
        )), timeout=ASK_TIMEOUT)
        self.commands = PlanCommands(
            repo=self.repo, store=self.store, supervisor=self.supervisor,
            watchers=self.watchers, clock=self.clock.now, chat_wait=s.chat_wait_seconds,
            rules=self.rules, instance_id=self.instance_id)
        self.intake = Intake(
            repo=self.repo, store=self.store, parsers=self.parsers, policy=self.policy,
            planner=self.planner, supervisor=self.supervisor, watchers=self.watchers,
            clock=self.clock.now, chat_wait=s.chat_wait_seconds, confirm=self.commands.confirm,
            rules=self.rules, instance_id=self.instance_id)
        self.membership = Membership(
            me=self.me, store=self.store, repo=self.repo, supervisor=self.supervisor,
            liveness=self._presence or EveryOtherIsDead(), clock=self.clock.now,
            # Leases run in real time whatever a test does with the clock: its rounds do.
            lease=s.lease_seconds, monotonic=time.monotonic)

        self.prober = HealthProber(self.board, self.clients, check_db=self._check_db,
                                   interval=s.health_interval_seconds)
        self.prober.start()
        self._on_stop(self.prober.stop)
        self.board.set_db(DependencyState("up", utcnow()))  # it answered: the schema is there
        self._recovery(self)
        self.membership.start()
        self._on_stop(self.membership.stop_rounds)
        self.scheduler.every(s.tick_seconds, self.tick)
        self.scheduler.every(s.tick_seconds, self.trail.wake)  # retries, other instances' rows

    def _start_delegation(self) -> None:
        """The module clients (sharing keep-alive pools), the Switch breaker, the executor."""
        s = self.settings
        # Enough kept-alive connections per module for every active plan and parser at once.
        self.pools = ConnectionPools(maxsize=s.max_active_plans + s.parser_actors + 2)
        self._on_stop(self.pools.close)
        token = s.token.get_secret_value()
        self.clients = {
            m: ModuleClient(
                m, s.module_url(m), token=token, pools=self.pools,
                connect_timeout=s.connect_timeout_seconds, read_timeout=s.step_timeout_seconds,
                retries=s.module_retries(m), backoff=s.retry_backoff_seconds,
                retry_after_max=s.retry_after_max_seconds, instance_id=self.instance_id,
            )
            for m in MODULE_NAMES
        }
        self.switch_breaker = CircuitBreaker(
            "switch", failures=s.breaker_failures, reset_seconds=s.breaker_reset_seconds,
            clock=self.clock.monotonic,
        )
        self._parse_client = ModuleClient(
            "switch", s.switch_url, token=token, pools=self.pools,
            connect_timeout=min(s.connect_timeout_seconds, s.parse_timeout_seconds),
            read_timeout=s.parse_timeout_seconds,
        )
        # The routes steps post to are those the approval digest names.
        executor = StepExecutor({m: self.clients[m] for m in self.rules.routes},
                                dict(self.rules.routes), self.board)
        self.executor: StepRunner = (self._wrap_runner(executor) if self._wrap_runner
                                     else executor)

    def _claim_database(self) -> None:
        """Make this instance known to the database before anything else uses it: on SQLite
        the file's lock (a second instance refuses to start, naming the holder), on
        PostgreSQL its own session with its advisory lock and its LISTEN."""
        self._presence: Presence | None = None
        if is_sqlite(self.database):
            lock = FileLock(self.database.database)
            lock.acquire(self.me)
            self._on_stop(lock.release)
            return
        self._presence = Presence(self.settings.database_url, self.instance_id,
                                  self._heard).start()
        self._on_stop(self._presence.stop)

    def _release_plans(self) -> None:
        membership = getattr(self, "membership", None)
        if membership is not None:
            membership.release()

    def _heard(self, payload: str) -> None:
        """A notice from another instance's commit (presence thread): wake the event streams;
        a plan that came to rest there stops here if an actor still runs it, and whoever
        waits for it here hears of it."""
        try:
            notice = json.loads(payload)
        except ValueError:
            return
        if notice.get("from") == self.instance_id or not self._started:
            return
        self.events.notify()
        self.trail.wake()
        settled = [p for p in notice.get("settled", []) if isinstance(p, str)]
        if settled:
            self.supervisor.fence(settled)
        for plan_id in settled:
            if self.watchers.watching(plan_id):
                plan = self.repo.readable_plan(plan_id)
                if plan is not None:
                    self.watchers.publish(plan)

    def _actor(self, ref: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        self._on_stop(lambda: ref.stop(block=True, timeout=60))
        return ref

    def _on_stop(self, stop: Callable[[], None]) -> None:
        self._stack.append(stop)

    def _make_plan_actor(self, plan_id: str, *, plan: Plan | None, incarnation: int,
                         supervisor: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        return PlanActor.start(
            plan_id, plan=plan, incarnation=incarnation, repo=self.repo, store=self.store,
            runner=self.executor, calls=self._calls, watchers=self.watchers,
            supervisor=supervisor, clock=self.clock.now, draining=self._stopping,
            instance_id=self.instance_id, holds_leases=self.membership.holds_leases,
        )

    def stop(self) -> None:
        """Stop intake, then every component in reverse start order. Safe to call twice."""
        self._stopping.set()
        while self._stack:
            stop = self._stack.pop()
            try:
                stop()
            except Exception:  # keep stopping the rest whatever one part does
                log.exception("error while stopping %s", getattr(stop, "__qualname__", stop))
        self._started = False

    def _close_database(self) -> None:
        close_all = getattr(self.database, "close_all", None)
        (close_all or self.database.close)()

    @property
    def running(self) -> bool:
        return self._started and not self._stopping.is_set()

    def _check_open(self) -> None:
        if not self.running:
            raise ShuttingDown("Madre is not running (stopping or not started); try again later")

    def begin_drain(self) -> None:
        """Take no new work (503) and let running plans stop after their current step."""
        self._stopping.set()
        if hasattr(self, "events"):
            self.events.ring_all()  # event streams see Madre stopping and end

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
                              time=self.clock.now(), deps=deps, db=db_state, checks=checks,
                              instance=self.instance_id, instances=self.instances().instances)

    def instances(self) -> InstanceList:
        """The instances alive on this database, as of this one's last round (no query)."""
        return InstanceList(instance_id=self.instance_id, instances=[
            InstanceView(instance_id=i.instance_id, host=i.host, pid=i.pid,
                         started_at=i.started_at, heartbeat_at=i.heartbeat_at)
            for i in self.membership.alive()])

    def readiness(self) -> Readiness:
        """Whether a load balancer should send work here, from cached state (never waits)."""
        db = self.board.db()
        trail = self.trail_status.get() if hasattr(self, "trail_status") else None
        db_state = {"up": "ok", "down": "down"}.get(db.state, "unknown")

        def answer(status: str, detail: str) -> Readiness:
            return Readiness(status=status, detail=detail, db=db_state,
                             trail=trail.state if trail else "starting",
                             trail_behind=trail.behind if trail else None)

        if self._stopping.is_set():
            return answer("draining", "Madre is stopping and takes no new work")
        if not self._started:
            return answer("starting", "Madre is starting")
        if db.state == "down":
            return answer("db_down", db.error or "the database does not answer")
        if db.state != "up":
            return answer("starting", "the database has not been checked yet")
        return answer("ready", "Madre takes work")

    def _check_db(self) -> None:
        with connection(self.database):
            self.database.execute_sql("SELECT 1")
        if self.board.db_write().state == "down":
            self.store.probe_write()  # reports its outcome to the board itself

    def _write_outcome(self, failure: DbFailure | None) -> None:
        """The Store's report after each batch: the last write's outcome is the db's state."""
        if failure is None:
            if self.board.db_write().state != "up":
                self.board.set_db_write(DependencyState("up", utcnow()))
        else:
            self.board.set_db_write(DependencyState("down", utcnow(), failure.sentence()))

    def _catch_up_trail(self) -> None:
        """Copy into the trail what the last run committed and did not copy (a kill, a full
        disk) before taking work; a trail that cannot be written does not stop the start."""
        try:
            self.trail.catch_up(timeout=ASK_TIMEOUT)
        except pykka.Timeout:
            log.warning("the forensic trail is still catching up with the database")

    def _committed(self, records: list[dict[str, Any]]) -> None:
        """After every commit (Store actor thread): trail, event streams, metrics."""
        self.trail.wake()
        if records and self.notifier is not None:
            self.notifier.offer(records)
        self.events.notify()
        self.metrics.observe(records)

    def _live_figures(self) -> dict[str, Any]:
        """Gauges for /metrics, read when scraped."""
        trail = self.trail_status.get()
        return {
            "trail_behind": -1 if trail.behind is None else trail.behind,
            "trail_failures": self.trail_status.failures,
            "active": self.supervisor.count(),
            "queued": self.supervisor.queued(),
            "waiting": self.repo.count_plans(Status.WAITING),
            "breakers": {"switch": self.switch_breaker.state.value},
        }


__all__ = ["Madre"]

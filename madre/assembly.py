"""How a Madre is put together: its parts built in dependency order, stopped in reverse.

`Assembly` opens the database (and claims it for this instance), builds delegation, the
Store and trail actors, the parser, the Supervisor and its plan threads, the commands, the
intake, the membership rounds and the health prober, runs the recovery, and on `stop()`
stops everything in reverse order — whatever happened — so no thread outlives it. It also
holds the callbacks the parts report to (a commit, a write's outcome, another instance's
notice). `madre.runtime.Madre` is what callers use: this plus the API over these parts.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

import peewee
import pykka

from madre.actors.checkpointer import CheckpointClient, Checkpointer
from madre.actors.doorbell import Doorbell
from madre.actors.plan import PlanActor
from madre.actors.recycled import ThreadCache
from madre.actors.store import StoreActor
from madre.actors.store_client import StoreClient
from madre.actors.supervisor import (
    DirectLine,
    Places,
    RestartPolicy,
    Supervisor,
    SupervisorClient,
)
from madre.actors.trail import TrailClient, TrailStatus, TrailWriter
from madre.clock import SYSTEM_CLOCK, Clock
from madre.commands import PlanCommands
from madre.delegation.executor import StepExecutor, StepRunner
from madre.delegation.health import DependencyState, HealthBoard, HealthProber
from madre.delegation.wiring import build_delegation
from madre.errors import ShuttingDown
from madre.event_hub import EventHub
from madre.forensics import ForensicTrail
from madre.instances import FileLock, new_instance_id, this_instance
from madre.intake import Intake
from madre.membership import EveryOtherIsDead, Membership
from madre.metrics import Metrics
from madre.model import FINAL_STATUSES, Plan, Status, utcnow
from madre.modules import MODULE_NAMES, STEP_MODULES
from madre.notify import Notifier
from madre.parsing import SwitchParser
from madre.presence import Presence
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
from madre.store.queries import Queries
from madre.store.repository import Repository
from madre.watch import Watchers

if TYPE_CHECKING:
    from madre.runtime import Madre

log = logging.getLogger("madre")

ASK_TIMEOUT = 30.0


class Assembly:
    """The parts of one Madre, started and stopped together (see `madre.runtime.Madre`).

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
        self.checkpoints: CheckpointClient | None = None  # SQLite's, once started

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Self:
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
            notify=not is_sqlite(self.database), on_rest=self.watchers.publish)))
        # Let the plans still held go once every plan actor has stopped (popped after the
        # Supervisor's stop): another instance takes them at once.
        self._on_stop(self._release_plans)
        # The risk tables, with what an operator's policy file adds (a bad file already
        # stopped load_settings, naming its line).
        self.tables = load_policy_file(s.policy_file) if s.policy_file else DEFAULT_TABLES
        # Parsing, risk and planning are plain functions called on the request's thread: they
        # own no state an actor would guard (the breaker is thread-safe), so a hop buys nothing.
        self.parser = SwitchParser(self._parse_client, s.switch_parse_route, self.switch_breaker,
                                   tables=self.tables, at_once=s.parses_at_once,
                                   wait=s.parse_timeout_seconds)
        self.scheduler = Scheduler().start()
        self._on_stop(self.scheduler.stop)
        if is_sqlite(self.database):  # the log moves into the file off the writer's thread
            ring = Doorbell()
            self.checkpoints = CheckpointClient(self._actor(Checkpointer.start(
                self.database, ring)), ring, self.scheduler.call_later)
        self.notifier = Notifier.from_settings(s, scheduler=self.scheduler,
                                               audit=self.store.append_audit,
                                               clock=self.clock.now)
        if self.notifier is not None:
            self._on_stop(self.notifier.stop)  # before the store its audit rows go to
        # Each live plan has at most one call in flight: one pool thread per place is enough.
        self._calls = concurrent.futures.ThreadPoolExecutor(
            max_workers=s.max_active_plans, thread_name_prefix="madre-call")
        self._on_stop(lambda: self._calls.shutdown(wait=True))
        # Plan actors run on reused threads (each live one has its own): closed once the
        # Supervisor stopped them all.
        self.plan_threads = ThreadCache(name="madre-plan", keep_idle=min(s.max_active_plans, 32))
        self._on_stop(self.plan_threads.close)
        places, direct = Places(s.max_active_plans), DirectLine()
        self.supervisor = SupervisorClient(self._actor(Supervisor.start(
            make_child=self._make_plan_actor,
            audit=lambda rows: self.store.append_audit(rows, wait=False),
            give_up=lambda plan_id, error: self.commands.give_up(plan_id, error),
            scheduler=self.scheduler, max_active=s.max_active_plans,
            policy=RestartPolicy(max_restarts=s.restart_max, period=s.restart_period_seconds,
                                 min_backoff=s.restart_backoff_seconds),
            clock=self.clock.monotonic, places=places, direct=direct,
        )), timeout=ASK_TIMEOUT, places=places, direct=direct)
        self.commands = PlanCommands(
            repo=self.repo, store=self.store, supervisor=self.supervisor,
            watchers=self.watchers, clock=self.clock.now, chat_wait=s.chat_wait_seconds,
            rules=self.rules, instance_id=self.instance_id)
        self.intake = Intake(
            repo=self.repo, store=self.store, parser=self.parser, tables=self.tables,
            confirm_ttl_seconds=s.confirm_ttl_seconds, supervisor=self.supervisor,
            watchers=self.watchers, clock=self.clock.now, chat_wait=s.chat_wait_seconds,
            confirm=self.commands.confirm,
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
        # The timed work (`Madre.tick`): expire the confirmations whose time ran out.
        self.scheduler.every(s.tick_seconds, lambda: self.commands.expire_due(None))
        self.scheduler.every(s.tick_seconds, self.trail.wake)  # retries, other instances' rows
        if self._presence is not None:  # several instances: a notice may be lost
            self.scheduler.every(s.tick_seconds, self._recheck_watched)

    def _start_delegation(self) -> None:
        """The module clients (sharing keep-alive pools), the Switch breaker, the executor."""
        wired = build_delegation(self.settings, board=self.board, routes=self.rules.routes,
                                 clock=self.clock, instance_id=self.instance_id)
        self.pools, self.clients = wired.pools, wired.clients
        self._on_stop(self.pools.close)
        self.switch_breaker, self._parse_client = wired.switch_breaker, wired.parse_client
        self.executor: StepRunner = (self._wrap_runner(wired.executor) if self._wrap_runner
                                     else wired.executor)

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

    def _recheck_watched(self) -> None:
        """The polling behind the notices (every tick, PostgreSQL): a plan someone waits for
        here that another instance ended is published to its waiters even if that
        instance's notice never came (a dropped LISTEN connection, a reconnect). Only an
        ended plan (DONE, ERROR) is published from the database: that never changes again,
        whereas a WAITING read could be older than a confirmation being written here."""
        # One status query for all of them; only the plans that ended are read whole.
        for plan_id in self.repo.ended_among(self.watchers.watched()):
            plan = self.repo.readable_plan(plan_id)
            if plan is not None and plan.status in FINAL_STATUSES:
                self.watchers.publish(plan)

    def _actor(self, ref: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        self._on_stop(lambda: ref.stop(block=True, timeout=60))
        return ref

    def _on_stop(self, stop: Callable[[], None]) -> None:
        self._stack.append(stop)

    def _make_plan_actor(self, plan_id: str, *, plan: Plan | None, incarnation: int,
                         supervisor: pykka.ActorRef[Any], written_ahead: str | None = None,
                         created: pykka.Future[Any] | None = None) -> pykka.ActorRef[Any]:
        return PlanActor.start(
            plan_id, plan=plan, incarnation=incarnation, written_ahead=written_ahead,
            created=created,
            threads=self.plan_threads, repo=self.repo, store=self.store,
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
        """After every commit (Store actor thread): trail, event streams, metrics, and the
        checkpointer."""
        self.trail.wake()
        if self.checkpoints is not None:
            self.checkpoints.wake()
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



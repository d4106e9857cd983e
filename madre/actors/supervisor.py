"""The Supervisor: the only holder of `plan_id → Plan actor`, restarting the ones that crash.

Messages (all `tell`):
- `Spawn(plan)`: start an actor for a plan just created or just woken (its state, as saved,
  is in the message, so the actor need not read it back).
- `Activate(plan_id)`: start an actor that loads the plan from the database (confirm, a
  job's completion, recovery on boot). If the plan's previous actor is still stopping, the
  activation is remembered and done when it has stopped, so nothing is lost in between.
- `ChildFailed` / `ChildStopped`: reports from Plan actors, matched by incarnation so a stale
  report from an older actor of the same plan is ignored.
- `RestartDue(plan_id, incarnation)`: a crashed plan's backoff has passed.
- `LiveActor(plan_id)` (ask): the plan's running actor, if it has one now (a cancel goes
  to it: a live plan's state has one owner).

The common path takes no thread hop: a fresh plan's start (`SupervisorClient.spawn`) and a
Plan actor's clean stop run the same code on the caller's thread, under the Supervisor's lock
(`DirectLine`), as the messages do on the Supervisor's own. The registry still has one owner,
the Supervisor object; the lock only lets its two busiest doors be opened from outside.
Crashes, restarts, timers and the asks still go through its mailbox.

At most `max_active` Plan actors live at once (each is a thread); further activations wait
in a FIFO queue and start as others stop, so a thousand plans recovered at boot never mean a
thousand threads.

Restart intensity as in OTP, with backoff as in Akka: a crashed plan restarts after
`min_backoff · 2ⁿ` (capped, with jitter); a plan that crashes more than `max_restarts` times
in `period` seconds is given up on and ends in ERROR with reason `supervisor_gave_up` (the
`give_up` command does that, as for any plan without an actor). One plan's crashes never
touch another plan. `SupervisorClient` is how the rest of Madre talks to it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import pykka

from madre.actors.plan_messages import ChildFailed, ChildStopped, Fenced
from madre.model import Plan
from madre.records import AuditRow

log = logging.getLogger("madre.supervisor")


class Spawn(NamedTuple):
    plan: Plan
    written_ahead: str | None = None  # the step whose write-ahead its creation carried
    created: pykka.Future[Any] | None = None  # the creation's commit, when still going


class Activate(NamedTuple):
    plan_id: str


class RestartDue(NamedTuple):
    plan_id: str
    incarnation: int


class Count(NamedTuple):
    """Ask: how many Plan actors are alive now."""


class Queued(NamedTuple):
    """Ask: how many activations wait for a free place."""


class LiveActor(NamedTuple):
    """Ask: the ActorRef running this plan now, or None."""

    plan_id: str


class LivePlans(NamedTuple):
    """Ask: the ids of the plans an actor runs now."""


class Fence(NamedTuple):
    """These plans are someone else's now (another owner, or ended elsewhere): their actors
    stop without writing, and no activation waiting for them starts."""

    plan_ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 3  # per plan within `period` (OTP MaxR)
    period: float = 60.0  # seconds (OTP MaxT)
    min_backoff: float = 0.1
    max_backoff: float = 5.0
    random_factor: float = 0.2

    def backoff(self, attempt: int) -> float:
        """Akka's restartWithBackoff delay: min·2ⁿ capped at max, plus up to 20% jitter."""
        base = min(self.max_backoff, self.min_backoff * 2 ** min(attempt, 30))
        return base * (1.0 + random.random() * self.random_factor)  # noqa: S311


@dataclasses.dataclass
class _Child:
    incarnation: int
    ref: pykka.ActorRef[Any] | None = None
    plan: Plan | None = None  # state to start from instead of loading it (a fresh Spawn)
    written_ahead: str | None = None  # with `plan`: its step written ahead, not yet called
    # A fresh plan's creation, maybe still committing: its actor waits for it before acting
    # (kept when the start is queued: the plan it then loads must be there).
    created: pykka.Future[Any] | None = None
    restarts: deque[float] = dataclasses.field(default_factory=deque)
    activate_again: bool = False
    queued: bool = False
    backing_off: bool = False


class Places:
    """How many Plan actors run now, of how many may: written by the Supervisor only, read
    from any thread without a message (intake asks whether a new plan would start at once,
    to write it started with its creation; a plan that would queue is written PENDING)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    @property
    def free(self) -> bool:
        return self.taken < self.limit


class DirectLine:
    """The Supervisor's doors that need no message: start a fresh plan, hear a clean stop.

    Handed to the Supervisor when it starts (it plugs itself in) and to whoever spawns plans
    and reports stops; both doors run the Supervisor's own code under its lock, on the
    caller's thread, so a short plan crosses two thread hops fewer (one to start its actor,
    one to report its end)."""

    def __init__(self) -> None:
        self._supervisor: Supervisor | None = None

    def plug(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def spawn(self, message: Spawn) -> None:
        if self._supervisor is None:
            raise pykka.ActorDeadError("the supervisor has not started")
        self._supervisor.spawn_now(message)

    def stopped(self, report: ChildStopped) -> None:
        if self._supervisor is not None:
            self._supervisor.stopped_now(report)


class _ChildReports:
    """What a Plan actor reports to (it calls `tell`): a clean stop straight through the
    direct line, anything else (a crash) to the Supervisor's mailbox."""

    def __init__(self, ref: pykka.ActorRef[Any], line: DirectLine) -> None:
        self._ref = ref
        self._line = line

    def tell(self, message: Any) -> None:
        if isinstance(message, ChildStopped):
            self._line.stopped(message)
        else:
            self._ref.tell(message)


class Supervisor(pykka.ThreadingActor):
    """Starts, restarts and counts Plan actors; the only holder of plan id → actor."""

    def __init__(
        self,
        *,
        make_child: Callable[..., pykka.ActorRef[Any]],
        audit: Callable[[list[AuditRow]], None],
        give_up: Callable[[str, str], object],
        scheduler: Any,
        policy: RestartPolicy,
        max_active: int,
        clock: Callable[[], float] = time.monotonic,
        places: Places | None = None,
        direct: DirectLine | None = None,
    ) -> None:
        super().__init__()
        # Held by every handler: the mailbox's and the direct line's (any thread).
        self._lock = threading.RLock()
        self._stopping = False
        self._make_child = make_child
        self._audit = audit
        self._give_up_on = give_up
        self._scheduler = scheduler
        self._policy = policy
        self._max_active = max_active
        self._clock = clock
        self._children: dict[str, _Child] = {}
        self._queue: deque[str] = deque()
        self._places = places or Places(max_active)
        # What children report to: their clean stops through the direct line, if any.
        self._reports: Any = (self.actor_ref if direct is None
                              else _ChildReports(self.actor_ref, direct))
        if direct is not None:
            direct.plug(self)

    # ------------------------------------------------------------------ the direct line

    def spawn_now(self, message: Spawn) -> None:
        """`Spawn`, on the caller's thread."""
        with self._lock:
            # As a tell to a dead actor would: a supervisor that stopped (or crashed, so no
            # restart could ever be heard) starts nothing more.
            if self._stopping or self.actor_stopped.is_set():
                raise pykka.ActorDeadError("the supervisor is stopping")
            self._spawn(message)

    def stopped_now(self, report: ChildStopped) -> None:
        """`ChildStopped`, on the stopping child's thread."""
        with self._lock:
            self._child_stopped(report)

    # ------------------------------------------------------------------ the mailbox

    def on_receive(self, message: Any) -> Any:
        with self._lock:
            return self._handle(message)

    def _handle(self, message: Any) -> Any:
        if isinstance(message, Spawn):
            self._spawn(message)
        elif isinstance(message, Activate):
            self._want(message.plan_id, plan=None)
        elif isinstance(message, ChildFailed):
            self._child_failed(message)
        elif isinstance(message, ChildStopped):
            self._child_stopped(message)
        elif isinstance(message, RestartDue):
            self._restart_due(message)
        elif isinstance(message, Count):
            return self._places.taken
        elif isinstance(message, Queued):
            return len(self._queue)
        elif isinstance(message, LiveActor):
            child = self._children.get(message.plan_id)
            return child.ref if child is not None else None
        elif isinstance(message, LivePlans):
            return [plan_id for plan_id, c in self._children.items() if c.ref is not None]
        elif isinstance(message, Fence):
            self._fence(message.plan_ids)
        else:
            return super().on_receive(message)
        return None

    def on_stop(self) -> None:
        with self._lock:  # not held while waiting: stopping children report through it
            self._stopping = True
            self._queue.clear()
            refs = [c.ref for c in self._children.values() if c.ref is not None]
        for ref in refs:
            ref.stop(block=False)
        for ref in refs:
            try:
                ref.stop(block=True, timeout=60)
            except pykka.Timeout:
                log.error("a plan actor did not stop within 60 s")

    # ------------------------------------------------------------------ starting children

    def _spawn(self, message: Spawn) -> None:
        self._want(message.plan.plan_id, plan=message.plan,
                   written_ahead=message.written_ahead, created=message.created)

    def _want(self, plan_id: str, *, plan: Plan | None, written_ahead: str | None = None,
              created: pykka.Future[Any] | None = None) -> None:
        """A plan should run: start it now, after its current actor, or when there is room."""
        child = self._children.get(plan_id)
        if child is None:
            child = self._children[plan_id] = _Child(incarnation=0, plan=plan,
                                                     written_ahead=written_ahead,
                                                     created=created)
        elif child.ref is not None:
            child.activate_again = True  # the current actor is finishing; go again after it
            return
        elif child.queued or child.backing_off:
            child.plan = child.written_ahead = None  # it will start anyway: it loads the newest
            return
        else:
            child.plan, child.written_ahead = plan, written_ahead
        self._start_or_queue(plan_id, child)

    def _start_or_queue(self, plan_id: str, child: _Child) -> None:
        if self._places.taken >= self._max_active:
            child.queued = True
            # The state carried by a Spawn is stale by the time a place frees up (a cancel
            # may have ended the plan meanwhile, and the actor's first call goes out before
            # its write-ahead is checked): a queued plan loads the newest state when it starts.
            child.plan = child.written_ahead = None
            self._queue.append(plan_id)
            return
        child.queued = False
        child.activate_again = False
        child.incarnation += 1
        plan, child.plan = child.plan, None
        written_ahead, child.written_ahead = child.written_ahead, None
        created, child.created = child.created, None
        self._places.taken += 1
        try:
            # Only a fresh Spawn's step was written ahead with no call made yet: a plan
            # loaded from the database may have made that call, so it starts the step anew.
            child.ref = self._make_child(
                plan_id, plan=plan, incarnation=child.incarnation, supervisor=self._reports,
                written_ahead=written_ahead if plan is not None else None, created=created)
        except Exception:
            self._places.taken -= 1
            raise

    def _start_next_queued(self) -> None:
        while self._queue and self._places.taken < self._max_active:
            plan_id = self._queue.popleft()
            child = self._children.get(plan_id)
            if child is not None and child.queued:
                self._start_or_queue(plan_id, child)

    def _fence(self, plan_ids: tuple[str, ...]) -> None:
        for plan_id in plan_ids:
            child = self._children.get(plan_id)
            if child is None:
                continue
            # One not started yet (queued, backing off) loads the stored plan when its turn
            # comes, which says whose it is: only a running actor must be told.
            child.activate_again = False
            if child.ref is not None:
                _tell(child.ref, Fenced())

    # ------------------------------------------------------------------ reports

    def _child_stopped(self, report: ChildStopped) -> None:
        child = self._children.get(report.plan_id)
        if child is None or child.incarnation != report.incarnation or child.ref is None:
            return
        child.ref = None
        self._places.taken -= 1
        if self._stopping:  # nothing starts any more
            del self._children[report.plan_id]
            return
        if child.activate_again:
            self._start_or_queue(report.plan_id, child)
        else:
            del self._children[report.plan_id]
        self._start_next_queued()

    def _child_failed(self, report: ChildFailed) -> None:
        child = self._children.get(report.plan_id)
        if child is None or child.incarnation != report.incarnation or child.ref is None:
            return
        child.ref = None
        self._places.taken -= 1
        now = self._clock()
        child.restarts.append(now)
        while child.restarts and now - child.restarts[0] > self._policy.period:
            child.restarts.popleft()
        attempt = len(child.restarts)
        log.warning("plan actor crashed (%s); restart %d", report.error, attempt,
                    extra={"plan_id": report.plan_id})
        if attempt > self._policy.max_restarts:
            del self._children[report.plan_id]
            self._give_up(report)
        else:
            delay = self._policy.backoff(attempt - 1)
            self._audit([AuditRow(
                action="plan_actor_restarted", reason=report.error[:255], plan_id=report.plan_id,
                actor="supervisor", detail={"restart": attempt, "backoff_s": round(delay, 3)},
            )])
            child.backing_off = True
            ref, due = self.actor_ref, RestartDue(report.plan_id, child.incarnation)
            self._scheduler.call_later(delay, lambda: _tell(ref, due))
        self._start_next_queued()

    def _restart_due(self, due: RestartDue) -> None:
        child = self._children.get(due.plan_id)
        if child is None or child.incarnation != due.incarnation or not child.backing_off:
            return
        child.backing_off = False
        self._start_or_queue(due.plan_id, child)

    def _give_up(self, report: ChildFailed) -> None:
        log.error("giving up on plan after repeated crashes", extra={"plan_id": report.plan_id})
        try:
            self._give_up_on(report.plan_id, report.error)
        except Exception:  # the Supervisor must outlive any one plan: log, keep supervising
            log.exception("could not end the plan given up on; it stays as stored",
                          extra={"plan_id": report.plan_id})


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        pass  # the supervisor stopped meanwhile: nothing is left to restart


class SupervisorClient:
    """The Supervisor's messages as methods (`spawn`, `activate`, `live_actor`, counts)."""

    def __init__(self, ref: pykka.ActorRef[Supervisor], *, timeout: float = 30.0,
                 places: Places | None = None, direct: DirectLine | None = None) -> None:
        self.ref = ref
        self._timeout = timeout
        self._places = places
        self._direct = direct

    def has_room(self) -> bool:
        """Whether a plan spawned now would most likely start at once (not queue): a hint
        read without a message, so a race can still queue it."""
        return self._places is None or self._places.free

    def spawn(self, plan: Plan, *, written_ahead: str | None = None,
              created: pykka.Future[Any] | None = None) -> None:
        """Run `plan` (just created or woken) from the state given, without reading it;
        `written_ahead` names a step started by the write that created the plan (its call is
        the actor's first move); `created` is that write's commit when it may still run.
        Through the direct line when there is one: the actor starts from this thread."""
        message = Spawn(plan, written_ahead, created)
        if self._direct is not None:
            self._direct.spawn(message)
        else:
            self.ref.tell(message)

    def activate(self, plan_id: str) -> None:
        """Run the plan from its stored state (recovery, a restart)."""
        self.ref.tell(Activate(plan_id))

    def live_actor(self, plan_id: str) -> pykka.ActorRef[Any] | None:
        return self.ref.ask(LiveActor(plan_id), timeout=self._timeout)  # type: ignore[no-any-return]

    def count(self) -> int:
        """Plan actors alive now (waiting plans have none)."""
        return int(self.ref.ask(Count(), timeout=self._timeout))

    def queued(self) -> int:
        """Activations waiting for a free place."""
        return int(self.ref.ask(Queued(), timeout=self._timeout))

    def live_plans(self) -> list[str]:
        """The plans an actor of this instance runs now."""
        return list(self.ref.ask(LivePlans(), timeout=self._timeout))

    def fence(self, plan_ids: list[str] | tuple[str, ...]) -> None:
        """Stop the actors of plans this instance no longer owns, without a write."""
        if plan_ids:
            self.ref.tell(Fence(tuple(plan_ids)))

    def stop(self, *, timeout: float = 60) -> None:
        self.ref.stop(block=True, timeout=timeout)

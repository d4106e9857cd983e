"""The Supervisor: the only holder of `plan_id → Plan actor`, restarting the ones that crash.

Messages (all `tell`):
- `Spawn(plan)`: start an actor for a plan just created (its state is in the message).
- `Activate(plan_id)`: start an actor that loads the plan from the database (confirm, a
  job's completion, recovery on boot). If the plan's previous actor is still stopping, the
  activation is remembered and done when it has stopped, so nothing is lost in between.
- `ChildFailed` / `ChildStopped`: reports from Plan actors, matched by incarnation so a stale
  report from an older actor of the same plan is ignored.

Restart intensity as in OTP: a plan whose actor crashes more than `max_restarts` times in
`period` seconds is given up on: it ends in ERROR with reason `supervisor_gave_up`. One
plan's crashes never touch another plan.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import pykka

from madre import lifecycle
from madre.actors.plan import ChildFailed, ChildStopped, PlanActor
from madre.contracts import FINAL_STATUSES, Plan, Status
from madre.store.repository import AuditRow, IntentClose, Repository

log = logging.getLogger("madre.supervisor")


class Spawn(NamedTuple):
    plan: Plan


class Activate(NamedTuple):
    plan_id: str


class Count(NamedTuple):
    pass


@dataclasses.dataclass
class _Child:
    ref: pykka.ActorRef[Any] | None
    incarnation: int
    restarts: deque[float] = dataclasses.field(default_factory=deque)
    activate_again: bool = False


class Supervisor(pykka.ThreadingActor):
    def __init__(
        self,
        *,
        make_child: Callable[..., pykka.ActorRef[Any]],
        store: Any,
        publish: Callable[[Plan], None],
        max_restarts: int,
        period: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._make_child = make_child
        self._store = store
        self._publish = publish
        self._max_restarts = max_restarts
        self._period = period
        self._clock = clock
        self._children: dict[str, _Child] = {}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Spawn):
            self._start(message.plan.plan_id, plan=message.plan)
        elif isinstance(message, Activate):
            self._activate(message.plan_id)
        elif isinstance(message, ChildFailed):
            self._child_failed(message)
        elif isinstance(message, ChildStopped):
            self._child_stopped(message)
        elif isinstance(message, Count):
            return len(self._children)
        else:
            return super().on_receive(message)
        return None

    def on_stop(self) -> None:
        refs = [c.ref for c in self._children.values() if c.ref is not None]
        for ref in refs:
            ref.stop(block=False)
        for ref in refs:
            try:
                ref.stop(block=True, timeout=30)
            except pykka.Timeout:
                log.error("a plan actor did not stop within 30 s")

    # ------------------------------------------------------------------ lifecycle of children

    def _start(self, plan_id: str, *, plan: Plan | None) -> None:
        child = self._children.get(plan_id)
        if child is not None and child.ref is not None:
            child.activate_again = True  # the current actor is finishing; go again after it
            return
        incarnation = child.incarnation + 1 if child else 1
        if child is None:
            child = self._children[plan_id] = _Child(ref=None, incarnation=incarnation)
        child.incarnation = incarnation
        child.activate_again = False
        child.ref = self._make_child(
            plan_id, plan=plan, incarnation=incarnation, supervisor=self.actor_ref
        )

    def _activate(self, plan_id: str) -> None:
        self._start(plan_id, plan=None)

    def _child_stopped(self, report: ChildStopped) -> None:
        child = self._children.get(report.plan_id)
        if child is None or child.incarnation != report.incarnation:
            return
        child.ref = None
        if child.activate_again:
            self._start(report.plan_id, plan=None)
        else:
            del self._children[report.plan_id]

    def _child_failed(self, report: ChildFailed) -> None:
        child = self._children.get(report.plan_id)
        if child is None or child.incarnation != report.incarnation:
            return
        child.ref = None
        now = self._clock()
        child.restarts.append(now)
        while child.restarts and now - child.restarts[0] > self._period:
            child.restarts.popleft()
        log.warning(
            "plan actor crashed (%s); restart %d", report.error, len(child.restarts),
            extra={"plan_id": report.plan_id},
        )
        if len(child.restarts) > self._max_restarts:
            del self._children[report.plan_id]
            self._give_up(report)
            return
        self._store.submit(
            lambda repo: repo.append_audit(
                [AuditRow(action="plan_actor_restarted", reason=report.error[:255],
                          plan_id=report.plan_id, actor="supervisor")]
            )
        )
        self._start(report.plan_id, plan=None)

    def _give_up(self, report: ChildFailed) -> None:
        log.error("giving up on plan after repeated crashes", extra={"plan_id": report.plan_id})
        reason = f"supervisor_gave_up: {report.error}"[:500]

        def end_plan(repo: Repository) -> Plan | None:
            plan = repo.load_plan(report.plan_id)
            if plan is None or plan.status in FINAL_STATUSES:
                return plan
            for step in plan.steps:
                if step.status in (Status.RUNNING, Status.WAITING):
                    lifecycle.advance_step(step, Status.ERROR, error="supervisor_gave_up")
            lifecycle.advance(plan, Status.ERROR, reason=reason)
            return repo.save_plan(
                plan,
                audit=[AuditRow(action="supervisor_gave_up", reason=report.error[:255],
                                plan_id=plan.plan_id, intent_id=plan.intent_id,
                                session_id=plan.session_id, actor="supervisor")],
                close=IntentClose(plan.intent_id, "error", reason),
            )

        plan = self._store.submit(end_plan).get(timeout=30)
        if plan is not None:
            self._publish(plan)

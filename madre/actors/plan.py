"""The Plan actor: one per active plan, owning its state machine and running its steps.

It is a thin shell: the transitions are `lifecycle.advance*`, the calls are `StepExecutor`,
the writes go to the Store actor. Order of work for a step with side effects:

1. write-ahead: the step is saved RUNNING (attempts + 1) before the call is made;
2. the call, with the step id as Idempotency-Key;
3. the outcome is saved with the next write-ahead or the final save.

A plan that must WAIT (a confirmation gate, a Spawner job) is saved WAITING and the actor
stops (passivation): waiting plans hold no thread. Confirm or a job's completion starts a
new actor from the database. Only `tell` reaches this actor, so any exception ends in
`on_failure` and the Supervisor hears of it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, NamedTuple

import pykka

from madre.rules import lifecycle
from madre.contracts import FINAL_STATUSES, Plan, Status, Step, StepType, WaitReason
from madre.errors import DownstreamError, IllegalTransition
from madre.watch import SettleHub
from madre.delegation.executor import LOCAL_STEPS, StepExecutor, UnknownStepType
from madre.store.repository import AuditRow, IntentClose

log = logging.getLogger("madre.plan")


class Run(NamedTuple):
    pass


class ChildFailed(NamedTuple):
    plan_id: str
    incarnation: int
    error: str


class ChildStopped(NamedTuple):
    plan_id: str
    incarnation: int
    reason: str  # done | error | passivated | gone


class PlanActor(pykka.ThreadingActor):
    def __init__(
        self,
        plan_id: str,
        *,
        plan: Plan | None,
        incarnation: int,
        store: Any,
        executor: StepExecutor,
        hub: SettleHub,
        supervisor: pykka.ActorRef[Any],
        draining: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self._draining = draining or threading.Event()
        self.plan_id = plan_id
        self.incarnation = incarnation
        self._plan = plan
        self._store = store
        self._executor = executor
        self._hub = hub
        self._supervisor = supervisor
        self._audit: list[AuditRow] = []
        self._stop_reason = "gone"
        self._unconfirmed: Any = None  # the future of a write-ahead not waited for yet

    # ------------------------------------------------------------------ pykka hooks

    def on_start(self) -> None:
        # pykka does not call on_failure when on_start raises: report it ourselves.
        try:
            if self._plan is None:
                self._plan = self._store.call(lambda repo: repo.load_plan(self.plan_id))
            self.actor_ref.tell(Run())
        except Exception as exc:
            log.exception("plan actor could not start", extra={"plan_id": self.plan_id})
            self._report_failure(exc)
            self.stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Run):
            try:
                self._run()
            except _Superseded:
                pass
            return None
        return super().on_receive(message)

    def on_failure(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._report_failure(exc)

    def on_stop(self) -> None:
        try:
            self._supervisor.tell(ChildStopped(self.plan_id, self.incarnation, self._stop_reason))
        except pykka.ActorDeadError:
            pass

    # ------------------------------------------------------------------ the plan

    def _run(self) -> None:
        plan = self._plan
        if plan is None or plan.status in FINAL_STATUSES or plan.status is Status.WAITING:
            # Nothing to do: already settled (a duplicate activation) or gone.
            if plan is not None:
                self._hub.publish(plan)
            self._stop_reason = "gone"
            self.stop()
            return
        if plan.status is Status.PENDING:
            lifecycle.advance(plan, Status.RUNNING)
            self._note("plan_started")
        while (step := plan.next_step) is not None:
            if self._draining.is_set():
                self._suspend()
                return
            if step.is_confirmation_gate or step.type == StepType.SPAWNER_REQUEST:
                if step.status is Status.WAITING or step.status is Status.PENDING:
                    self._wait_on(step)
                    return
            if not self._executor.is_known(step.type):
                self._fail(step, f"unknown step type {step.type!r}; this Madre cannot run it")
                return
            if not self._run_step(step):
                return
        self._finish()

    def _run_step(self, step: Step) -> bool:
        """Run one step; False when the plan ended because of it."""
        plan = self._plan
        assert plan is not None
        lifecycle.advance_step(step, Status.RUNNING)
        module = self._executor.module_of(step)
        if step.type not in LOCAL_STEPS:
            self._note(f"step_started:{step.type}", module=module, reason=f"step_{step.index}")
            # Write-ahead of the attempt, not waited for: the step's Idempotency-Key was made
            # durable with the plan, so a crash before this commits re-runs the call with the
            # same key either way. The next save checks that this one succeeded.
            self._save(wait=False)
        try:
            answer = self._executor.run(step, plan)
        except (DownstreamError, UnknownStepType) as exc:
            reason = str(exc)
            # The call's own retries are attempts of this step too: GET /madre/plans/{id}
            # shows how often a step was tried and the last status code it got.
            step.attempts += max(0, getattr(exc, "attempts", 1) - 1)
            step.status_code = getattr(exc, "status_code", None)
            lifecycle.advance_step(step, Status.ERROR, error=reason)
            duration = self._step_ms(step)
            self._note(f"step_failed:{step.type}", module=module, reason=reason,
                       detail={"duration_ms": duration, "attempts": step.attempts,
                               "status_code": step.status_code})
            log.warning("step failed: %s", reason, extra={**self._context(), "step": step.type,
                                                          "duration_ms": duration})
            if step.optional:
                plan.warnings.append(f"optional_step_failed:{step.type}")
                return True
            self._fail(step, f"step {step.index} ({step.type}) failed: {reason}", already=True)
            return False
        step.attempts += answer.attempts - 1
        step.status_code = answer.status_code or None
        lifecycle.advance_step(step, Status.DONE, result=answer.body)
        if step.type not in LOCAL_STEPS:
            duration = self._step_ms(step)
            self._note(f"step_done:{step.type}", module=module, reason=f"step_{step.index}",
                       detail={"duration_ms": duration, "attempts": step.attempts})
            log.debug("step done", extra={**self._context(), "step": step.type,
                                          "duration_ms": duration})
        return True

    @staticmethod
    def _step_ms(step: Step) -> float:
        if step.started_at is None or step.finished_at is None:
            return 0.0
        return round((step.finished_at - step.started_at).total_seconds() * 1000, 3)

    def _context(self) -> dict[str, Any]:
        """The ids every log line of this plan carries."""
        plan = self._plan
        assert plan is not None
        return {"plan_id": plan.plan_id, "intent_id": plan.intent_id,
                "session_id": plan.session_id}

    def _wait_on(self, step: Step) -> None:
        plan = self._plan
        assert plan is not None
        daughter = None
        if step.type == StepType.SPAWNER_REQUEST:
            reason = WaitReason.SPAWNER_JOB
            if step.status is Status.PENDING:
                lifecycle.advance_step(step, Status.WAITING)
                daughter = {
                    "step_id": step.step_id,
                    "task_type": step.payload.get("task_type", "job"),
                    "description": step.payload.get("description"),
                    "params": step.payload.get("params", {}),
                }
                self._note("daughter_task_requested", module="spawner",
                           reason=f"step_{step.index}")
        else:
            reason = WaitReason.CONFIRMATION
            if step.status is Status.PENDING:
                lifecycle.advance_step(step, Status.WAITING)
        lifecycle.advance(plan, Status.WAITING, wait_reason=reason)
        self._note("plan_waiting", reason=reason.value)
        self._save(close=IntentClose(plan.intent_id, "waiting", reason.value), daughter=daughter)
        self._settle("passivated")

    def _suspend(self) -> None:
        """Madre is stopping: persist where the plan is (RUNNING, its next step not started)
        and stop; recovery on the next start goes on from here."""
        plan = self._plan
        assert plan is not None
        self._note("plan_suspended", reason="madre is stopping")
        self._save()
        self._hub.release(plan)
        self._stop_reason = "suspended"
        self.stop()

    def _fail(self, step: Step, reason: str, *, already: bool = False) -> None:
        plan = self._plan
        assert plan is not None
        if not already:
            if step.status in (Status.PENDING, Status.RUNNING, Status.WAITING):
                lifecycle.advance_step(step, Status.ERROR, error=reason)
        lifecycle.advance(plan, Status.ERROR, reason=reason)
        self._note("plan_error", reason=reason)
        self._save(close=IntentClose(plan.intent_id, "error", reason[:500]))
        self._settle("error")

    def _finish(self) -> None:
        plan = self._plan
        assert plan is not None
        lifecycle.advance(plan, Status.DONE)
        self._note("plan_done", reason=f"{len(plan.steps)} steps")
        self._save(close=IntentClose(plan.intent_id, "done", f"Plan {plan.plan_id} executed"))
        self._settle("done")

    # ------------------------------------------------------------------ helpers

    def _note(self, action: str, *, module: str = "madre", reason: str = "",
              detail: dict[str, Any] | None = None) -> None:
        plan = self._plan
        assert plan is not None
        self._audit.append(
            AuditRow(action=action, reason=reason, module=module, plan_id=plan.plan_id,
                     intent_id=plan.intent_id, session_id=plan.session_id, actor="plan",
                     detail=detail)
        )

    def _save(self, *, close: IntentClose | None = None, daughter: dict[str, Any] | None = None,
              wait: bool = True) -> None:
        plan = self._plan
        assert plan is not None
        audit, self._audit = self._audit, []
        # What the store writes must not change under it while this actor goes on: copy the
        # parts this actor mutates (steps, warnings); the rest is only ever reassigned.
        snapshot = plan.model_copy(update={"steps": [s.model_copy() for s in plan.steps],
                                           "warnings": list(plan.warnings)})

        def op(repo: Any) -> Plan:
            return repo.save_plan(snapshot, audit=audit, close=close, daughter=daughter)

        try:
            if self._unconfirmed is not None:
                pending, self._unconfirmed = self._unconfirmed, None
                pending.get(timeout=self._store.timeout)
            if wait:
                self._plan = self._store.call(op)
            else:
                self._unconfirmed = self._store.submit(op)
                plan.version += 1  # what the store will have once the write commits
        except IllegalTransition:
            # Someone else moved the plan (a cancel, another instance): theirs wins.
            log.warning("plan changed under its actor; stopping", extra={"plan_id": plan.plan_id})
            self._plan = self._store.call(lambda repo: repo.load_plan(plan.plan_id))
            if self._plan is not None:
                self._hub.publish(self._plan)
            self._stop_reason = "gone"
            self.stop()
            raise _Superseded from None

    def _settle(self, reason: str) -> None:
        plan = self._plan
        assert plan is not None
        took = round((plan.updated_at - plan.created_at).total_seconds() * 1000, 1)
        log.info("plan %s", plan.status, extra={**self._context(), "status": plan.status.value,
                                                "reason": plan.reason, "duration_ms": took})
        self._hub.publish(plan)
        self._stop_reason = reason
        self.stop()

    def _report_failure(self, exc: BaseException | None) -> None:
        try:
            self._supervisor.tell(
                ChildFailed(self.plan_id, self.incarnation, f"{type(exc).__name__}: {exc}")
            )
        except pykka.ActorDeadError:
            pass


class _Superseded(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised out of a save when the stored plan moved on; ends the current message."""

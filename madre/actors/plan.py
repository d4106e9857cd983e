"""The Plan actor: one per live plan, the only owner of that plan's state while it lives.

It is a thin shell over the named transitions (`madre.rules.lifecycle`): it applies them,
saves plan and change together through the Store actor (conditionally on the version it
holds), and hands each call to the delegation pool, so its own thread is never blocked on a
module and it stays free to take a `Cancel`. Order of work for a step with side effects:

1. write-ahead: the step is saved RUNNING (attempts + 1) before the call is made;
2. the call, with the step id as Idempotency-Key, on a pool thread; its answer comes back
   to this actor as a `StepAnswered` message;
3. the outcome is saved with the next write-ahead or the final save.

A plan that must WAIT (a confirmation gate, a Spawner job) is saved WAITING and the actor
stops (passivation): waiting plans hold no thread. Confirm or a job's completion starts a
new actor from the database. An exception other than a module's failure (a bug, a crash)
ends in `on_failure`, and the Supervisor restarts the plan from what was saved.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

import pykka

from madre.actors.plan_messages import (
    Cancel,
    ChildFailed,
    ChildStopped,
    Fenced,
    Run,
    StepAnswered,
)
from madre.actors.recycled import RecycledThreadActor, ThreadCache
from madre.delegation.client import Answer
from madre.delegation.executor import StepRunner
from madre.errors import DownstreamError, StaleWrite
from madre.model import FINAL_STATUSES, SETTLED_STATUSES, Plan, Status, Step, StepType
from madre.modules import LOCAL_STEPS
from madre.records import NO_CHANGE, Change
from madre.rules import lifecycle
from madre.rules.outcomes import Verdict
from madre.store.repository import Repository
from madre.watch import Watchers

log = logging.getLogger("madre.plan")


class PlanActor(RecycledThreadActor):
    """Runs one plan's steps; the plan's state lives here while the actor does."""

    def __init__(
        self,
        plan_id: str,
        *,
        plan: Plan | None,
        incarnation: int,
        repo: Repository,
        store: Any,  # StoreClient (typed Any: tests pass stand-ins of it)
        runner: StepRunner,
        calls: concurrent.futures.Executor,
        watchers: Watchers,
        supervisor: pykka.ActorRef[Any],
        clock: Callable[[], Any],
        draining: threading.Event,
        instance_id: str | None = None,
        holds_leases: Callable[[], bool] = lambda: True,
        written_ahead: str | None = None,
        created: pykka.Future[Any] | None = None,
        threads: ThreadCache | None = None,
    ) -> None:
        super().__init__(threads=threads)
        self._created = created  # the plan's creation, maybe still committing
        # A step the plan's creation started (`lifecycle.begin`): durable, not called yet.
        self._written_ahead = written_ahead
        self._me = instance_id
        self._holds_leases = holds_leases
        self.plan_id = plan_id
        self.incarnation = incarnation
        self._plan = plan
        self._repo = repo
        self._store = store
        self._runner = runner
        self._calls = calls
        self._watchers = watchers
        self._supervisor = supervisor
        self._now = clock
        self._draining = draining
        self._change: Change = NO_CHANGE  # what the next save writes with the plan
        self._unconfirmed: pykka.Future[Plan] | None = None  # a write-ahead not waited for
        self._in_flight: tuple[str, concurrent.futures.Future[Answer]] | None = None
        self._stop_reason = "gone"
        self._failed = False  # a crash was reported: the Supervisor hears nothing more

    # ------------------------------------------------------------------ pykka hooks

    def on_start(self) -> None:
        # pykka does not call on_failure when on_start raises: report it ourselves.
        try:
            if self._created is not None and not self._was_created():
                self._end("gone")
                return
            if self._plan is None:
                self._plan = self._repo.load_plan(self.plan_id)
            self.actor_ref.tell(Run())
        except Exception as exc:
            log.exception("plan actor could not start", extra={"plan_id": self.plan_id})
            self._report_failure(exc)
            self.stop()

    def on_receive(self, message: Any) -> Any:
        try:
            if isinstance(message, Run):
                self._run()
            elif isinstance(message, StepAnswered):
                self._answered(message)
            elif isinstance(message, Cancel):
                return self._cancel(message)
            elif isinstance(message, Fenced):
                self._fenced()
            else:
                return super().on_receive(message)
        except _Superseded:
            return None
        return None

    def on_failure(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._report_failure(exc)

    def on_stop(self) -> None:
        self._settle_in_flight_call()
        self._watchers.unexpect(self.plan_id)  # whatever it did not publish, a read tells
        if self._failed:  # its restart is the Supervisor's now: a stop report would race it
            return
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
                self._watchers.publish(plan)
            self._end("gone")
            return
        if self._me is not None and plan.owner != self._me:
            # Another instance took it over before this actor started: it is theirs.
            log.info("plan owned by %s; not running it here", plan.owner,
                     extra={"plan_id": plan.plan_id})
            self._end("not_ours")
            return
        if plan.status is Status.PENDING:
            self._record(lifecycle.start(plan, now=self._now()))
            self._written_ahead = None
        self._go_on()

    def _go_on(self) -> None:
        """Run steps until one must be waited for (a call, a gate, a job) or none is left."""
        plan = self._plan
        assert plan is not None
        while (step := plan.next_step) is not None:
            if self._draining.is_set():
                self._suspend()
                return
            if step.is_confirmation_gate or step.type == StepType.SPAWNER_REQUEST:
                if step.status is Status.WAITING or step.status is Status.PENDING:
                    self._wait_on(step)
                    return
            if not self._runner.is_known(step.type):
                self._fail(f"unknown step type {step.type!r}; this Madre cannot run it", step)
                return
            if not self._holds_leases():
                # No heartbeat for most of a lease: another instance may own it by now.
                self._end("fenced")
                return
            if step.step_id == self._written_ahead and step.status is Status.RUNNING:
                self._written_ahead = None  # its write-ahead went with the plan's creation
                self._call(step)
                return
            self._record(lifecycle.step_started(plan, step, now=self._now()))
            if step.type in LOCAL_STEPS:
                try:
                    answer = self._runner.run(step, plan)
                except DownstreamError as exc:
                    if not self._step_failed(step, exc):
                        return
                    continue
                self._step_done(step, answer)
                continue
            # Write-ahead of the attempt, not waited for: the step's Idempotency-Key was made
            # durable with the plan, so a crash before this commits re-runs the call with the
            # same key either way. The next save checks that this one succeeded.
            self._save(wait=False)
            self._call(step)
            return
        self._settle(lifecycle.finish(plan, now=self._now()), "done")

    def _call(self, step: Step) -> None:
        """Hand the call to the pool; its answer comes back as a StepAnswered message."""
        plan = self._plan
        assert plan is not None
        call = (step.model_copy(), plan.model_copy(update={"steps": []}))
        future = self._calls.submit(self._runner.run, *call)
        self._in_flight = (step.step_id, future)
        ref, step_id = self.actor_ref, step.step_id

        def answered(done: concurrent.futures.Future[Answer]) -> None:
            error = done.exception()
            message = StepAnswered(step_id, None if error else done.result(), error)
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass  # the plan was cancelled or Madre stopped: its answer is ignored

        future.add_done_callback(answered)

    def _answered(self, message: StepAnswered) -> None:
        if self._in_flight is None or self._in_flight[0] != message.step_id:
            return  # the answer of a call this actor no longer waits for
        self._in_flight = None
        plan = self._plan
        assert plan is not None
        step = next(s for s in plan.steps if s.step_id == message.step_id)
        if message.error is not None:
            if not isinstance(message.error, DownstreamError):
                raise message.error  # a crash, not a module's failure: the Supervisor restarts
            if not self._step_failed(step, message.error):
                return
        else:
            assert message.answer is not None
            self._step_done(step, message.answer)
        self._go_on()

    def _step_done(self, step: Step, answer: Answer) -> None:
        plan = self._plan
        assert plan is not None
        self._record(lifecycle.step_done(plan, step, result=answer.body, attempts=answer.attempts,
                                         status_code=answer.status_code, now=self._now()))
        if step.type not in LOCAL_STEPS:
            log.debug("step done", extra={**self._context(), "step": step.type,
                                          "duration_ms": lifecycle.step_ms(step)})

    def _step_failed(self, step: Step, exc: DownstreamError) -> bool:
        """Record a failed step; False when the plan ended because of it."""
        plan = self._plan
        assert plan is not None
        reason = str(exc)
        change, goes_on = lifecycle.step_failed(
            plan, step, reason=reason, attempts=exc.attempts, status_code=exc.status_code,
            now=self._now())
        self._record(change)
        log.warning("step failed: %s", reason, extra={**self._context(), "step": step.type,
                                                      "duration_ms": lifecycle.step_ms(step)})
        if not goes_on:
            self._fail(f"step {step.index} ({step.type}) failed: {reason}")
        return goes_on

    def _wait_on(self, step: Step) -> None:
        plan = self._plan
        assert plan is not None
        now = self._now()
        if step.type == StepType.SPAWNER_REQUEST:
            change = lifecycle.wait_for_job(plan, step, now=now)
        else:
            change = lifecycle.wait_for_confirmation(plan, step, now=now)
        self._settle(change, "passivated")

    def _suspend(self) -> None:
        """Madre is stopping: persist where the plan is (RUNNING, its next step not started)
        and stop; recovery on the next start goes on from here."""
        plan = self._plan
        assert plan is not None
        self._record(lifecycle.suspend(plan))
        self._save()
        self._watchers.release(plan)
        self._end("suspended")

    def _fail(self, reason: str, step: Step | None = None) -> None:
        plan = self._plan
        assert plan is not None
        self._settle(lifecycle.fail(plan, reason, now=self._now(), step=step), "error")

    def _fenced(self) -> None:
        """The heartbeat found this plan's lease gone: taken over, or ended elsewhere. A plan
        this actor brought to rest itself has no lease either (its last save committed before
        the heartbeat read the leases and it is stopping now): nothing was lost, no warning."""
        plan = self._plan
        if plan is not None and plan.status in SETTLED_STATUSES:
            log.debug("fenced after it came to rest", extra={"plan_id": self.plan_id})
        else:
            log.warning("plan no longer ours; stopping", extra={"plan_id": self.plan_id})
        self._in_flight = None
        self._end("fenced")

    def _cancel(self, message: Cancel) -> tuple[Verdict, Plan] | None:
        plan = self._plan
        if plan is None or plan.status is Status.WAITING:
            return None  # passivating: the stored plan is the one to cancel
        if plan.status in FINAL_STATUSES:
            return Verdict.ALREADY_ENDED, plan
        self._in_flight = None  # whatever the call answers now is ignored
        change = lifecycle.cancel(plan, reason=message.reason, actor=message.actor,
                                  now=self._now(), claimed_by=message.claimed_by)
        self._settle(change, "error")
        assert self._plan is not None
        return Verdict.CANCELLED, self._plan

    # ------------------------------------------------------------------ saving

    def _record(self, change: Change) -> None:
        self._change = self._change.then(change)

    def _save(self, *, wait: bool = True) -> None:
        plan = self._plan
        assert plan is not None
        change, self._change = self._change, NO_CHANGE
        # What the store writes must not change under it while this actor goes on.
        snapshot = plan.detached()
        try:
            if self._unconfirmed is not None:
                pending, self._unconfirmed = self._unconfirmed, None
                self._store.wait(pending)
            if wait:
                self._plan = self._store.save_plan(snapshot, change)
            else:
                self._unconfirmed = self._store.save_plan_later(snapshot, change)
                plan.version += 1  # what the store will have once the write commits
        except StaleWrite:
            # Someone else moved the plan (a cancel, another owner): theirs wins.
            log.warning("plan changed under its actor; stopping", extra={"plan_id": plan.plan_id})
            self._plan = self._repo.readable_plan(plan.plan_id)
            if self._plan is not None:
                self._watchers.publish(self._plan)
            self._in_flight = None
            self._end("gone")
            raise _Superseded from None

    def _settle(self, change: Change, reason: str) -> None:
        """Save the plan where it rests (WAITING, DONE or ERROR), tell whoever waits, stop."""
        self._record(change)
        self._save()
        plan = self._plan
        assert plan is not None
        took = round((plan.updated_at - plan.created_at).total_seconds() * 1000, 1)
        log.info("plan %s", plan.status, extra={**self._context(), "status": plan.status.value,
                                                "reason": plan.reason, "duration_ms": took})
        self._watchers.publish(plan)
        self._end(reason)

    def _end(self, reason: str) -> None:
        self._stop_reason = reason
        self.stop()

    def _settle_in_flight_call(self) -> None:
        """Stopping with a call in flight (Madre is stopping): wait for its answer and save it,
        so the next start goes on after that step instead of calling it again."""
        if self._in_flight is None or self._plan is None:
            return
        step_id, future = self._in_flight
        try:
            answer = future.result()
        except Exception:  # noqa: BLE001 - the step stays RUNNING: recovery calls it again
            return
        self._in_flight = None
        try:
            step = next(s for s in self._plan.steps if s.step_id == step_id)
            self._step_done(step, answer)
            self._record(lifecycle.suspend(self._plan))
            self._save()
            self._watchers.release(self._plan)
            self._stop_reason = "suspended"
        except Exception:  # noqa: BLE001 - stopping: what is saved is what the restart sees
            log.exception("could not save the last answer of a stopping plan",
                          extra={"plan_id": self.plan_id})

    # ------------------------------------------------------------------ helpers

    def _context(self) -> dict[str, Any]:
        """The ids every log line of this plan carries, with the request id that created
        it (this actor's thread has no request context of its own)."""
        plan = self._plan
        assert plan is not None
        ids = {"plan_id": plan.plan_id, "intent_id": plan.intent_id,
               "session_id": plan.session_id}
        return {**ids, "request_id": plan.request_id} if plan.request_id else ids

    def _was_created(self) -> bool:
        """Wait for the plan's creation to commit: False when it did not (the intake that
        wrote it tells its caller why; there is nothing to run)."""
        assert self._created is not None
        created, self._created = self._created, None
        try:
            self._store.wait(created)
        except Exception:  # noqa: BLE001 - the writer's caller gets the error
            self._plan = None
            return False
        return True

    def _report_failure(self, exc: BaseException | None) -> None:
        self._failed = True
        try:
            self._supervisor.tell(
                ChildFailed(self.plan_id, self.incarnation, f"{type(exc).__name__}: {exc}")
            )
        except pykka.ActorDeadError:
            pass


class _Superseded(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised out of a save when the stored plan moved on; ends the current message."""

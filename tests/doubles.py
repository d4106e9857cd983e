"""Test doubles passed into a Madre (`Madre(step_runner=...)`): the real step executor,
wrapped to crash, to count how many steps run at once, or to fail its healthcheck.

    madre = start_madre(step_runner=lambda real: CrashingRunner(real, times=1))
    ...
    assert madre.executor.crashes == 1

Each wraps the executor Madre built (real calls to the loopback stand-ins), so a test sees
exactly what a crash in the middle of real work does.
"""

from __future__ import annotations

import threading

from madre.delegation.client import Answer
from madre.delegation.executor import StepRunner
from madre.errors import DownstreamError
from madre.model import Plan, Step, StepType

WAIT = 10.0


class Wrapping:
    """A StepRunner that passes everything to the real one."""

    def __init__(self, real: StepRunner) -> None:
        self.real = real

    def is_known(self, step_type: str) -> bool:
        return self.real.is_known(step_type)

    def run(self, step: Step, plan: Plan) -> Answer:
        return self.real.run(step, plan)


class CrashingRunner(Wrapping):
    """The real runner, except for steps whose payload params say `crash`: each such step
    raises RuntimeError `times` times (None: always), after its call was made, or before it
    when `gate` is given (then it first sets `entered` and waits for `gate`)."""

    def __init__(self, real: StepRunner, *, times: int | None,
                 gate: threading.Event | None = None) -> None:
        super().__init__(real)
        self._lock = threading.Lock()
        self._left: dict[str, int] = {}
        self._times = times
        self._gate = gate
        self.entered = threading.Event()
        self.crashes = 0

    def run(self, step: Step, plan: Plan) -> Answer:
        if not step.payload.get("params", {}).get("crash"):
            return self.real.run(step, plan)
        with self._lock:
            left = self._left.setdefault(step.step_id, -1 if self._times is None else self._times)
            crash = left != 0
            if crash:
                self._left[step.step_id] = left - 1
                self.crashes += 1
        if crash and self._gate is not None:
            self.entered.set()
            assert self._gate.wait(WAIT), "the test never opened the gate"
            raise RuntimeError("the executor crashed on purpose (before the call)")
        answer = self.real.run(step, plan)
        if crash:
            raise RuntimeError("the executor crashed on purpose")
        return answer


class ConcurrencyMeter(Wrapping):
    """The real runner, counting how many steps run at the same moment (the peak). The
    first `together` steps wait for each other at a barrier: they must all be in flight at
    once, so the peak reaches `together` whatever the machine's speed."""

    def __init__(self, real: StepRunner, *, together: int) -> None:
        super().__init__(real)
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(together)
        self._together = together
        self._entered = 0
        self._running = 0
        self.peak = 0

    def run(self, step: Step, plan: Plan) -> Answer:
        with self._lock:
            self._entered += 1
            first = self._entered <= self._together
            self._running += 1
            self.peak = max(self.peak, self._running)
        try:
            if first:
                self._barrier.wait(timeout=WAIT)
            return self.real.run(step, plan)
        finally:
            with self._lock:
                self._running -= 1


class FailingHealthcheck(Wrapping):
    """The real runner, whose SYSTEM_HEALTHCHECK fails as a module call would."""

    def run(self, step: Step, plan: Plan) -> Answer:
        if step.type == StepType.SYSTEM_HEALTHCHECK:
            raise DownstreamError("madre", "the health board could not be read", attempts=1)
        return self.real.run(step, plan)


class FakeClock:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

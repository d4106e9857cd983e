"""The scheduler (pykka has no timers): one thread, a heap of calls due later.

Only volatile timers live here (a restart's backoff, the periodic tick). Deadlines that must
survive a crash, like a confirmation's expiry, live in the database and the tick finds them:
a timer lost in a crash is simply set again, a deadline is never lost.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("madre.scheduler")


class Scheduler:
    """`call_later(delay, fn)` runs `fn` on the timer thread after `delay` seconds. `fn` must
    be quick (typically an actor `tell`); an exception in it is logged, never raised."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="madre-scheduler", daemon=False)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (self._clock() + max(delay, 0.0), next(self._seq), fn))
            self._cond.notify()

    def every(self, interval: float, fn: Callable[[], None]) -> None:
        """Run `fn` every `interval` seconds until stopped (the next run is set after this
        one ends, so a slow `fn` never piles up)."""

        def tick() -> None:
            try:
                fn()
            finally:
                self.call_later(interval, tick)

        self.call_later(interval, tick)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def run_due(self) -> int:
        """Run, on the calling thread, every call whose time has come by the clock; how many
        ran. The scheduler's thread does this whenever one is due; tests with a fake clock
        call it themselves instead of starting the thread."""
        ran = 0
        while True:
            with self._cond:
                if self._stopped or not self._heap or self._heap[0][0] > self._clock():
                    return ran
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:  # a timer must never kill the timer thread
                log.exception("timer callback failed")
            ran += 1

    @property
    def pending(self) -> int:
        """Calls waiting for their time."""
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (
                    not self._heap or self._heap[0][0] > self._clock()
                ):
                    timeout = self._heap[0][0] - self._clock() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
            self.run_due()

"""A circuit breaker: stop paying a dead module's timeout on every request.

    CLOSED ──(N failures in a row)──► OPEN ──(reset period passed)──► HALF_OPEN
       ▲                                ▲                                 │
       └────────(probe succeeds)────────┼─────────(probe fails)───────────┘

A timeout opens it at once (that is the cost it exists to avoid paying twice); other failures,
which come back fast (connection refused, a 500), open it after N in a row.
While OPEN, `allow()` answers False at once and callers take their fallback. After the
reset period one caller at a time is let through as a probe; its outcome closes or reopens.
Thread-safe; the clock is passed in so tests drive time without sleeping.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failures: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._threshold = failures
        self._reset = reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._reset:
                return BreakerState.HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May a call go through now? In HALF_OPEN only one probe at a time may."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if self._clock() - self._opened_at < self._reset:
                    return False
                self._state = BreakerState.HALF_OPEN
            if self._probing:
                return False
            self._probing = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._probing = False

    def record_failure(self, *, open_now: bool = False) -> None:
        """Count a failure; `open_now` (a timeout: the expensive kind) opens at once."""
        with self._lock:
            self._probing = False
            self._failures += 1
            if (open_now or self._state is BreakerState.HALF_OPEN
                    or self._failures >= self._threshold):
                self._state = BreakerState.OPEN
                self._opened_at = self._clock()

"""What the stand-ins received (and the callbacks they sent): a `Recorder` a test can read
and block on until a condition holds, woken by each arrival (a `threading.Condition`, no
polling)."""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Received:
    """One request as a stand-in received it (recorded before auth and misbehaviour are applied)."""

    module: str
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # the parsed JSON body, or None when absent or not JSON
    time: float  # time.monotonic() at arrival: subtract two to measure a retry's backoff

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    @property
    def token(self) -> str | None:
        return self.headers.get("x-vx11-token")


@dataclasses.dataclass(frozen=True)
class CallbackAttempt:
    """One callback a stand-in sent on its own (the Spawner's job-finished notification)."""

    module: str
    url: str
    body: dict[str, Any]
    status_code: int | None  # None when the request itself failed
    error: str | None  # the exception, as text, when it failed
    time: float


class Recorder:
    """Thread-safe log of everything the stand-ins received and sent; shared by a whole cluster."""

    def __init__(self) -> None:
        self._cond = threading.Condition()  # an RLock inside: predicates may call the read methods
        self._received: list[Received] = []
        self._callbacks: list[CallbackAttempt] = []

    def record(self, received: Received) -> None:
        with self._cond:
            self._received.append(received)
            self._cond.notify_all()

    def record_callback(self, attempt: CallbackAttempt) -> None:
        with self._cond:
            self._callbacks.append(attempt)
            self._cond.notify_all()

    def requests(self, module: str | None = None) -> list[Received]:
        """Every request received, oldest first; only `module`'s when given."""
        with self._cond:
            return [r for r in self._received if module is None or r.module == module]

    def calls(self, module: str | None = None) -> list[Received]:
        """Like `requests` without the `GET /health` probes."""
        return [r for r in self.requests(module) if r.path != "/health"]

    def callbacks(self, module: str | None = None) -> list[CallbackAttempt]:
        with self._cond:
            return [c for c in self._callbacks if module is None or c.module == module]

    def idempotency_counts(self, module: str | None = None) -> collections.Counter[str]:
        """Idempotency-Key → how many times it arrived (every arrival counts, replays included)."""
        return collections.Counter(
            r.idempotency_key for r in self.requests(module) if r.idempotency_key is not None
        )

    def clear(self) -> None:
        with self._cond:
            self._received.clear()
            self._callbacks.clear()
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float) -> bool:
        """Block until `predicate(recorder)` is true, re-checked on every arrival; False after `timeout` s.

        Example: ``recorder.wait_for(lambda r: len(r.calls("shub")) >= 3, timeout=5)``.
        """
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_for_calls(self, module: str, count: int, timeout: float) -> bool:
        """Block until `module` received at least `count` calls (health probes not counted)."""
        return self.wait_for(lambda r: len(r.calls(module)) >= count, timeout)

"""How one stand-in is told, at run time, to misbehave."""

from __future__ import annotations

import threading
from typing import Literal

BehaviourMode = Literal["ok", "fail", "hang", "slow", "html", "garbage", "close", "unauthorized",
                        "busy", "unavailable", "not_implemented"]
MODES: tuple[str, ...] = ("ok", "fail", "hang", "slow", "html", "garbage", "close", "unauthorized",
                          "busy", "unavailable", "not_implemented")
FAILING_MODES = frozenset({"fail", "busy", "unavailable", "not_implemented", "html", "garbage",
                           "close", "unauthorized"})
"""The modes `fail_times` can apply to the next calls."""


class Behaviour:
    """How one stand-in answers, changeable at run time from any thread.

    Modes: "ok"; "fail" (500 JSON error); "hang" (no answer until `release_all()` or `hang_max` s, then the
    normal answer); "slow" (the normal answer after `delay` s; `release_all()` cuts it short); "html"
    (200 text/html); "garbage" (200 application/json that is not JSON); "close" (the connection drops in the
    middle of the answer); "unauthorized" (401 whatever the token); "busy" (429 with `Retry-After:
    retry_after`); "unavailable" (503, with `Retry-After` when `retry_after` is set); "not_implemented"
    (501). `fail_times(n)` makes the next n calls answer 500 whatever the mode (`fail_times(n, "busy")`:
    429, and so on), then the mode applies again. `/health` follows the mode but neither "unauthorized"
    nor `fail_times`.
    Spawner only: `complete_after` (seconds before the job callback) and `spawn_outcome` ("ok" | "error").
    """

    def __init__(
        self,
        mode: BehaviourMode = "ok",
        *,
        delay: float = 0.5,
        hang_max: float = 30.0,
        complete_after: float = 0.2,
        spawn_outcome: Literal["ok", "error"] = "ok",
        retry_after: int | None = 1,
    ) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._pending_failures = 0
        self._failure_mode = "fail"
        self.retry_after = retry_after  # whole seconds: Retry-After of "busy" and "unavailable"
        self._mode: str = "ok"
        self.set(mode, delay=delay)
        self.hang_max = hang_max
        self.complete_after = complete_after
        self.spawn_outcome = spawn_outcome

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    @mode.setter
    def mode(self, mode: BehaviourMode) -> None:
        self.set(mode)

    def set(self, mode: BehaviourMode, *, delay: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown stand-in mode {mode!r}; use one of {', '.join(MODES)}")
        with self._lock:
            self._mode = mode
            if delay is not None:
                self.delay = delay

    def fail_times(self, n: int, mode: BehaviourMode = "fail") -> None:
        """Answer the next `n` calls as `mode` says (500 for "fail"), then behave per the mode again."""
        if n < 0:
            raise ValueError("fail_times needs n >= 0")
        if mode not in FAILING_MODES:
            raise ValueError(f"fail_times takes a failing mode: one of {', '.join(sorted(FAILING_MODES))}")
        with self._lock:
            self._pending_failures = n
            self._failure_mode = mode

    @property
    def pending_failures(self) -> int:
        with self._lock:
            return self._pending_failures

    def next_mode(self) -> str:
        """The mode for the call arriving now, consuming one pending failure if any."""
        with self._lock:
            if self._pending_failures > 0:
                self._pending_failures -= 1
                return self._failure_mode
            return self._mode

    def release_all(self) -> None:
        """Wake every handler hanging (or slow) right now; later "hang" calls hang again."""
        with self._lock:
            released, self._release = self._release, threading.Event()
        released.set()

    def release_event(self) -> threading.Event:
        """The Event the next `release_all()` sets. A handler takes it when its request arrives, so a
        release frees every call recorded before it, even one not yet waiting."""
        with self._lock:
            return self._release

    def reset(self) -> None:
        """Back to "ok" with no pending failures; hanging handlers are released."""
        with self._lock:
            self._mode = "ok"
            self._pending_failures = 0
            self._failure_mode = "fail"
        self.retry_after = 1
        self.release_all()

"""Plumbing for the loopback stand-ins: what they received, how they misbehave, and a server to run them.

- `Recorder` remembers every request a stand-in received (and every callback a stand-in sent), and lets a
  test block until a condition holds, woken by each new arrival (a `threading.Condition`, no polling).
- `Behaviour` is how one stand-in is told, at run time, to misbehave.
- `LoopbackServer` serves any ASGI app with uvicorn on 127.0.0.1 in a daemon thread.

`madre.standins` re-exports all of them; import from there.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import uvicorn

log = logging.getLogger(__name__)

Mode = Literal["ok", "fail", "hang", "slow", "html", "garbage", "close", "unauthorized"]
MODES: tuple[str, ...] = ("ok", "fail", "hang", "slow", "html", "garbage", "close", "unauthorized")


# --------------------------------------------------------------------------------------------- recording


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


# --------------------------------------------------------------------------------------------- behaviour


class Behaviour:
    """How one stand-in answers, changeable at run time from any thread.

    Modes: "ok"; "fail" (500 JSON error); "hang" (no answer until `release_all()` or `hang_max` s, then the
    normal answer); "slow" (the normal answer after `delay` s; `release_all()` cuts it short); "html"
    (200 text/html); "garbage" (200 application/json that is not JSON); "close" (the connection drops in the
    middle of the answer); "unauthorized" (401 whatever the token). `fail_times(n)` makes the next n calls
    answer 500 whatever the mode, then the mode applies again. `/health` follows the mode but neither
    "unauthorized" nor `fail_times`.
    Spawner only: `complete_after` (seconds before the job callback) and `spawn_outcome` ("ok" | "error").
    """

    def __init__(
        self,
        mode: Mode = "ok",
        *,
        delay: float = 0.5,
        hang_max: float = 30.0,
        complete_after: float = 0.2,
        spawn_outcome: Literal["ok", "error"] = "ok",
    ) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._pending_failures = 0
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
    def mode(self, mode: Mode) -> None:
        self.set(mode)

    def set(self, mode: Mode, *, delay: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown stand-in mode {mode!r}; use one of {', '.join(MODES)}")
        with self._lock:
            self._mode = mode
            if delay is not None:
                self.delay = delay

    def fail_times(self, n: int) -> None:
        """Answer 500 to the next `n` calls, then behave per the mode again."""
        if n < 0:
            raise ValueError("fail_times needs n >= 0")
        with self._lock:
            self._pending_failures = n

    @property
    def pending_failures(self) -> int:
        with self._lock:
            return self._pending_failures

    def next_mode(self) -> str:
        """The mode for the call arriving now, consuming one pending failure if any."""
        with self._lock:
            if self._pending_failures > 0:
                self._pending_failures -= 1
                return "fail"
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
        self.release_all()


# --------------------------------------------------------------------------------------------- server


class LoopbackStartError(RuntimeError):
    """The server did not start (port taken, lifespan start-up failed, or no start within the timeout)."""


class _Server(uvicorn.Server):
    """A uvicorn server that signals the end of its start-up (success or not) through an Event."""

    def __init__(self, config: uvicorn.Config, startup_done: threading.Event) -> None:
        super().__init__(config)
        self._startup_done = startup_done
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            await super().startup(sockets=sockets)
        finally:
            self._startup_done.set()


class LoopbackServer:
    """Serve one ASGI app on 127.0.0.1 (port 0 = any free port) with uvicorn in a daemon thread.

    ``with LoopbackServer(app) as srv: requests.get(srv.url + "/health")``. `start()` raises
    `LoopbackStartError` when the server is not listening within `startup_timeout` seconds; `stop()` asks
    it to exit, waits at most `shutdown_timeout` seconds for it (in-flight requests get that long to finish),
    and then waits for the thread-pool workers of its event loop, so no thread outlives it.
    Extra keyword arguments go to `uvicorn.Config`.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Literal["on", "off", "auto"] = "off",
        log_level: str = "warning",
        log_config: dict[str, Any] | str | None = None,
        name: str = "app",
        startup_timeout: float = 10.0,
        shutdown_timeout: float = 5.0,
        **uvicorn_options: Any,
    ) -> None:
        uvicorn_options.setdefault("ws", "none")
        uvicorn_options.setdefault("access_log", False)
        uvicorn_options.setdefault("timeout_graceful_shutdown", max(1, round(shutdown_timeout)))
        self.config = uvicorn.Config(
            app, host=host, port=port, lifespan=lifespan, log_level=log_level, log_config=log_config,
            **uvicorn_options,
        )
        self.name = name
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self._startup_done = threading.Event()
        self.server = _Server(self.config, self._startup_done)
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.host = host
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"loopback server {self.name!r} is not started")
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # SystemExit from a failed start-up included
            self.error = exc
        finally:
            self._startup_done.set()

    def start(self) -> LoopbackServer:
        if self.thread is not None:
            raise RuntimeError(f"loopback server {self.name!r} was already started")
        self.thread = threading.Thread(target=self._run, name=f"loopback-{self.name}", daemon=True)
        self.thread.start()
        self._startup_done.wait(self.startup_timeout)
        if not self.server.started:
            self.stop()
            reason = repr(self.error) if self.error else f"not listening after {self.startup_timeout} s"
            raise LoopbackStartError(
                f"loopback server {self.name!r} on {self.host}:{self.config.port} failed to start: {reason}"
            )
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self.thread is None:
            return
        self.server.should_exit = True
        self.thread.join(self.shutdown_timeout + 1.0)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(2.0)
        if self.thread.is_alive():
            log.warning("loopback server %r did not stop within %.1f s", self.name, self.shutdown_timeout)
            return
        self._join_workers(self.shutdown_timeout)

    def _join_workers(self, timeout: float) -> None:
        # AnyIO's thread-pool workers (where sync handlers run) are not daemon threads; they are told to
        # stop when the loop's root task ends. Wait for those belonging to this server's loop.
        loop = self.server.loop
        if loop is None:
            return
        deadline = time.monotonic() + timeout
        workers: Iterable[threading.Thread] = [
            t for t in threading.enumerate() if getattr(t, "loop", None) is loop and t is not self.thread
        ]
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

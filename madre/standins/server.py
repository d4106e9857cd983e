"""`LoopbackServer`: any ASGI app served by uvicorn on 127.0.0.1, in a daemon thread."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, Literal

import uvicorn

log = logging.getLogger(__name__)


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
            if isinstance(self.error, SystemExit):  # uvicorn exits when it cannot bind
                reason = "the port cannot be bound (is it already in use?)"
            else:
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

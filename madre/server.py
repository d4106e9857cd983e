"""Serving Madre over HTTP with uvicorn: start the runtime, serve, always stop it."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from madre.http.app import create_app
from madre.http.guard import Limits, guarded
from madre.logs import configure_logging
from madre.runtime import Madre
from madre.settings import Settings, database_shown
from madre.version import __version__

log = logging.getLogger("madre")


STARTUP_FAILURE = 1  # the exit status when the port cannot be bound (uvicorn's own)


def serve(settings: Settings) -> None:
    """Serve until Ctrl-C or SIGTERM. Madre is started before the port is bound (a bad
    database URL fails before anything listens) and stopped whatever happens. "madre
    serving" is logged once the socket is bound, with the address it is bound to (the
    real port when MADRE_PORT=0); a port already taken ends the process with status 1."""
    configure_logging(settings.log_format, settings.log_level)
    settings.check_exposure()
    madre = Madre(settings).start()
    server: DrainingServer | None = None
    try:
        # access_log=False: Madre writes its own access line (madre.http.observe), with the
        # route template and the request id.
        config = uvicorn.Config(
            create_app(madre), host=settings.host, port=settings.port, log_config=None,
            access_log=False, lifespan="on", timeout_graceful_shutdown=30,
            **http_options(settings),
        )
        server = DrainingServer(config, madre)
        with _sigterm_exits():
            server.run()
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: uvicorn gave up waiting; stop Madre all the same
    except SystemExit:
        if server is not None and not server.started:
            log.error("madre could not listen on %s:%s (see the error above); not serving",
                      settings.host, settings.port)
            raise SystemExit(STARTUP_FAILURE) from None
        raise
    finally:
        madre.stop()
        log.info("madre stopped")


def http_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the connection limits (MADRE_HTTP_*): its HTTP protocol with
    the guard (`madre.http.guard`), the keep-alive wait, the longest request line/headers."""
    limits = Limits(idle_seconds=settings.http_idle_seconds,
                    request_seconds=settings.http_request_seconds,
                    max_connections=settings.http_max_connections)
    return {"http": guarded(AutoHTTPProtocol, limits),
            "timeout_keep_alive": settings.http_idle_seconds,
            "h11_max_incomplete_event_size": settings.http_max_header_bytes}


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which also tells Madre to stop taking work the moment a signal
    arrives: requests still coming on open connections get 503, running plans stop after
    their current step (persisted, resumed on the next start)."""

    def __init__(self, config: uvicorn.Config, madre: Madre) -> None:
        super().__init__(config)
        self._madre = madre

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)  # exits (SystemExit) if it cannot bind
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            settings = self._madre.settings
            log.info("madre serving", extra={
                "url": f"http://{host}:{port}", "version": __version__,
                "database": database_shown(settings.database_url)})

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._madre.begin_drain()
        super().handle_exit(sig, frame)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """After its graceful shutdown uvicorn re-raises the signal it caught; for SIGTERM the
    default action would kill the process before Madre stops. Make it a clean SystemExit(0)
    so the `finally` that stops Madre runs (SIGINT already arrives as KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Serving Madre over HTTP with uvicorn: start the runtime, serve, always stop it."""

from __future__ import annotations

import contextlib
import logging
import signal
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
from madre.settings import Settings

log = logging.getLogger("madre")


def serve(settings: Settings) -> None:
    """Serve until Ctrl-C or SIGTERM. Madre is started before the port is bound (a bad
    database URL fails before anything listens) and stopped whatever happens."""
    configure_logging(settings.log_format, settings.log_level)
    settings.check_exposure()
    madre = Madre(settings).start()
    try:
        config = uvicorn.Config(
            create_app(madre), host=settings.host, port=settings.port, log_config=None,
            access_log=False, lifespan="on", timeout_graceful_shutdown=30,
            **http_options(settings),
        )
        log.info("madre serving", extra={"url": f"http://{settings.host}:{settings.port}",
                                         "database": settings.database_url.split("@")[-1]})
        with _sigterm_exits():
            DrainingServer(config, madre).run()
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: uvicorn gave up waiting; stop Madre all the same
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

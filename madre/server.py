"""Serving Madre over HTTP with uvicorn: start the runtime, serve, always stop it."""

from __future__ import annotations

import logging

import uvicorn

from madre.http.app import create_app
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
        )
        log.info("madre serving", extra={"url": f"http://{settings.host}:{settings.port}",
                                         "database": settings.database_url.split("@")[-1]})
        uvicorn.Server(config).run()
    finally:
        madre.stop()
        log.info("madre stopped")

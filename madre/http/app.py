"""`create_app(madre)`: the Starlette front end of one running Madre."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio.to_thread
from asgi_correlation_id import CorrelationIdMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware

from madre.http.auth import PrincipalMiddleware
from madre.http.console import OPEN_PATHS as CONSOLE_PATHS
from madre.http.console import OPEN_PREFIX as CONSOLE_PREFIX
from madre.http.console import console_route
from madre.http.errors import EXCEPTION_HANDLERS
from madre.http.observe import REQUEST_ID_HEADER, ObserveRequests, usable_request_id
from madre.http.openapi import DOC_PATHS, docs_routes
from madre.http.operations import OPERATIONS, ROUTES
from madre.runtime import Madre

# The probes and the documentation (/openapi.json, /docs) need no token.
OPEN_PATHS = frozenset({op.path for op in OPERATIONS if op.public} | DOC_PATHS)
THREADS = 128  # request threads waiting on actors; each chat may wait seconds for its plan


def create_app(madre: Madre) -> Starlette:
    """The HTTP app over `madre`, which must be started (and is stopped) by the caller."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        yield

    spawner = madre.settings.spawner_token
    spawner_tokens = (spawner.get_secret_value(),) if spawner else ()
    routes = [*ROUTES, *docs_routes(ROUTES), console_route(madre)]
    app = Starlette(
        routes=routes,
        middleware=[
            # Outermost: every request, even one refused for its token, has a request id,
            # one access line and its count in the metrics.
            Middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER,
                       validator=usable_request_id),
            Middleware(ObserveRequests, routes=routes, observe=madre.metrics.http_request),
            Middleware(
                PrincipalMiddleware,
                principals=madre.principals,
                exempt=OPEN_PATHS | CONSOLE_PATHS
                | ({"/metrics"} if madre.settings.metrics_open else set()),
                exempt_prefixes=(CONSOLE_PREFIX,),
                callback_tokens=spawner_tokens,
                callbacks_open=madre.settings.callback_auth == "none",
            )
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.madre = madre
    return app

"""The operator console at `/console`: plans, the inbox of what waits for a human, health.

`console_route(madre)` is what `create_app` adds: one route that hands `/`, `/console` and
everything under it to the console's own small app, which has its pages (`pages.PAGES`),
its static files (`madre/http/static/console/`), HTML error pages and a strict
Content-Security-Policy. Its sessions are signed with MADRE_CONSOLE_SECRET, or with a key
made for this process when that is unset (sessions then end with the process).
"""

from __future__ import annotations

import logging
import secrets

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from madre.http.console.pages import OPEN_PATHS, OPEN_PREFIX, PAGES
from madre.http.console.session import Sessions
from madre.http.console.web import (
    EXCEPTION_HANDLERS,
    PREFIX,
    Console,
    SecurityHeaders,
    make_templates,
)
from madre.runtime import Madre

log = logging.getLogger("madre.console")


def _session_key(madre: Madre) -> bytes:
    secret = madre.settings.console_secret
    if secret is not None:
        return secret.get_secret_value().encode()
    log.warning("MADRE_CONSOLE_SECRET is not set: console sessions are signed with a key "
                "made for this process; they end when it stops, and other instances do not "
                "accept them (set the same MADRE_CONSOLE_SECRET on every instance)")
    return secrets.token_bytes(32)


def console_app(madre: Madre) -> Starlette:
    """The console over `madre` (started and stopped by the caller, as for `create_app`)."""
    settings = madre.settings
    sessions = Sessions(madre.principals, _session_key(madre),
                        lifetime=settings.console_session_seconds)
    console = Console(madre=madre, sessions=sessions, templates=make_templates(),
                      https=(settings.public_url or "").startswith("https://"))
    routes: list[BaseRoute] = [Route(p.path, p.endpoint, methods=[p.method]) for p in PAGES]
    routes.append(Mount(f"{PREFIX}/static", StaticFiles(packages=[("madre.http",
                                                                    "static/console")])))
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)],
                    exception_handlers=EXCEPTION_HANDLERS)  # type: ignore[arg-type]
    app.state.console = console
    app.state.madre = madre  # the event stream's handler finds Madre here, as in the API
    return app


class ConsoleRoute(BaseRoute):
    """`/`, `/console` and all under it, handed whole to the console's app."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path in OPEN_PATHS or path.startswith(OPEN_PREFIX)):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: object) -> URLPath:
        raise NoMatchFound(name, path_params)  # console pages are linked by path

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def console_route(madre: Madre) -> ConsoleRoute:
    return ConsoleRoute(console_app(madre))


__all__ = ["OPEN_PATHS", "OPEN_PREFIX", "console_app", "console_route"]

"""Every request seen once: its request id, one access log line, and the HTTP metrics.

The request id comes from asgi-correlation-id's middleware (outside this one, see
`create_app`): the client's `X-Request-ID` when it sent a usable one, else one minted
there, and the answer carries it back in `X-Request-ID`. `ObserveRequests` writes one line per
request to the `madre.access` logger (method, route template, path, status, duration,
request id) and counts it in the metrics by route template, so a plan id in a path never
becomes a label.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("madre.access")

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED = "unmatched"  # the route label of a path no route serves (404s)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# A request id a client sends is used as it is when it could be one: printable ASCII with
# no spaces, at most 128 characters (it goes into every log line and back in a header).
_USABLE_ID = re.compile(r"[!-~]{1,128}")


def usable_request_id(value: str) -> bool:
    return _USABLE_ID.fullmatch(value) is not None


Observe = Callable[[str, str, int, float], None]
"""(method, route template, status, seconds): what a finished request reports."""


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The path template of the route serving `scope` (`/madre/plans/{plan_id}`), also for
    a request refused before routing (auth), or UNMATCHED."""
    route = scope.get("route")
    if route is None:
        partial = None
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate  # the path exists, with another method (405)
        route = route or partial
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class ObserveRequests:
    """One access line and one metrics observation per HTTP request."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute], observe: Observe) -> None:
        self.app = app
        self._routes = routes
        self._observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._finished(scope, status, time.perf_counter() - started)

    def _finished(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in METHODS else "other"
        route = route_template(scope, self._routes)
        self._observe(method, route, status, seconds)
        fields: dict[str, Any] = {
            "method": scope["method"][:16], "route": route, "path": scope["path"][:256],
            "status": status, "duration_ms": round(seconds * 1000, 1),
        }
        client = scope.get("client")
        if client:
            fields["client"] = client[0]
        log.info("%s %s %d", fields["method"], route, status, extra=fields)

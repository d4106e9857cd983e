"""Who is asking, as pure ASGI middleware, and whether their roles cover the route.

The middleware finds the principal whose token the request presents (`X-VX11-Token`),
compared in constant time, and puts it in the request's state (`request.state.principal`)
for the handlers, which pass it on explicitly. Missing → 401 `auth_required`; a token no
principal has → 403 `forbidden`. Paths in `exempt` (`/health`, the documentation) and the
signed webhooks (`/madre/webhook/{source}`, checked by their handler) pass with no token and
no principal.

`Authorization: Bearer <token>` is accepted on every route as well (what scrapers, proxies
and HTTP libraries send); when both are sent, `X-VX11-Token` is the one checked. A missing
token gets `WWW-Authenticate: Bearer` with its 401.

The Spawner's job reports (`/madre/callback/spawn`, `/madre/daughter/{id}/complete|fail`)
also accept the Spawner's own token (MADRE_SPAWNER_TOKEN), as the principal `spawner`. A
deployment whose Spawner sends no token at all (the original Spawner does not) sets
MADRE_CALLBACK_AUTH=none, which opens those three routes only; keep such a Madre on a
private network or loopback.

`guarded(endpoint, roles)` wraps a route's handler: a principal whose roles do not cover it
gets 403 `not_allowed`. The operations table gives each route its roles.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from madre.contracts.envelope import TOKEN_HEADER
from madre.http.errors import envelope
from madre.principals import Principal, Principals, Role, hash_token

HEADER = TOKEN_HEADER.lower().encode()
WEBHOOK_PREFIX = "/madre/webhook/"
SPAWNER = Principal("spawner", frozenset({Role.SPAWNER}))


def is_callback_path(path: str) -> bool:
    return path == "/madre/callback/spawn" or (
        path.startswith("/madre/daughter/") and path.endswith(("/complete", "/fail"))
    )


def presented_token(scope: Scope) -> bytes | None:
    """The token the request presents, the one place that knows how a token is sent: its
    X-VX11-Token, else its Authorization Bearer credentials (the scheme is case-insensitive,
    RFC 9110 §11.1); None when it sends none."""
    bearer = None
    for name, value in scope["headers"]:
        if name == HEADER:
            return bytes(value)
        if name == b"authorization" and bearer is None:
            scheme, _, credentials = bytes(value).strip().partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                bearer = credentials.strip()
    return bearer


class PrincipalMiddleware:
    """Refuses every request that presents no principal's token, but on the open paths;
    puts the principal it found in the request's state."""

    def __init__(self, app: ASGIApp, *, principals: Principals, exempt: frozenset[str],
                 callback_tokens: tuple[str, ...] = (), callbacks_open: bool = False,
                 exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self._principals = principals
        self._exempt = exempt
        self._exempt_prefixes = exempt_prefixes  # the console: it checks its own sessions
        self._spawner = Principals(tuple((hash_token(t), SPAWNER) for t in callback_tokens),
                                   {}, from_file=False)
        self._callbacks_open = callbacks_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or path in self._exempt
                or path.startswith((WEBHOOK_PREFIX, *self._exempt_prefixes))):
            await self.app(scope, receive, send)
            return
        callback = is_callback_path(path)
        if callback and self._callbacks_open:
            await self._serve(SPAWNER, scope, receive, send)
            return
        given = presented_token(scope)
        if given is None:
            response = envelope(401, "auth_required",
                                "send this server's token in the X-VX11-Token header "
                                "(or as Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        principal = self._principals.find(given) or (
            self._spawner.find(given) if callback else None)
        if principal is None:
            response = envelope(403, "forbidden",
                                "the token sent is not a token this server knows")
            await response(scope, receive, send)
            return
        await self._serve(principal, scope, receive, send)

    async def _serve(self, principal: Principal, scope: Scope, receive: Receive,
                     send: Send) -> None:
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def principal_of(request: Request) -> Principal | None:
    """The principal the middleware found (None on an open path)."""
    found: Principal | None = request.scope.get("state", {}).get("principal")
    return found


Endpoint = Callable[[Request], Awaitable[Response]]


def guarded(endpoint: Endpoint, roles: frozenset[Role]) -> Endpoint:
    """`endpoint`, answered only to a principal with one of `roles` (or admin); 403
    `not_allowed` otherwise. An empty `roles` leaves the check to the handler; a request
    with no principal came through an open path, which needs none."""

    @functools.wraps(endpoint)
    async def check(request: Request) -> Any:
        principal = principal_of(request)
        if principal is not None and roles and not principal.may(*roles):
            wanted = " or ".join(sorted(r.value for r in roles))
            return envelope(403, "not_allowed",
                            f"{principal.name} may not {request.method} {request.url.path}: "
                            f"that needs the role {wanted}")
        return await endpoint(request)

    return check

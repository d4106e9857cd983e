"""Token check as pure ASGI middleware: `X-VX11-Token` must equal the configured token.

`Authorization: Bearer <token>` is accepted on every route as well (what scrapers, proxies
and HTTP libraries send); when both are sent, `X-VX11-Token` is the one checked. Missing →
401 `auth_required` (with `WWW-Authenticate: Bearer`); wrong → 403 `forbidden`; compared in
constant time. Paths in `exempt` (`/health`) pass without a token, so probes need no secret.

The Spawner's job reports (`/madre/callback/spawn`, `/madre/daughter/{id}/complete|fail`)
also accept the Spawner's own token (MADRE_SPAWNER_TOKEN). A deployment whose Spawner sends
no token at all (the original Spawner does not) sets MADRE_CALLBACK_AUTH=none, which opens
those three routes only; keep such a Madre on a private network or loopback.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from madre.contracts import TOKEN_HEADER
from madre.http.errors import envelope

HEADER = TOKEN_HEADER.lower()
_HEADER = HEADER.encode()


def presented_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token a request presents: its X-VX11-Token, else its Authorization Bearer
    credentials (the scheme is case-insensitive, RFC 9110 §11.1); None when it sends none."""
    bearer = None
    for name, value in headers:
        if name == _HEADER:
            return value
        if name == b"authorization" and bearer is None:
            scheme, _, credentials = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                bearer = credentials.strip()
    return bearer


def is_callback_path(path: str) -> bool:
    return path == "/madre/callback/spawn" or (
        path.startswith("/madre/daughter/") and path.endswith(("/complete", "/fail"))
    )


class TokenAuthMiddleware:
    """Refuses every request without this server's token, but on the exempt paths."""

    def __init__(self, app: ASGIApp, *, token: str, exempt: frozenset[str],
                 callback_tokens: tuple[str, ...] = (), callbacks_open: bool = False) -> None:
        self.app = app
        self._token = token.encode()
        self._exempt = exempt
        self._callback_tokens = tuple(t.encode() for t in callback_tokens)
        self._callbacks_open = callbacks_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        callback = is_callback_path(scope["path"])
        if callback and self._callbacks_open:
            await self.app(scope, receive, send)
            return
        given = presented_token(scope["headers"])
        if given is None:
            response = envelope(401, "auth_required",
                                "send this server's token in the X-VX11-Token header "
                                "(or as Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})
        elif not (hmac.compare_digest(given, self._token) or (callback and any(
                hmac.compare_digest(given, t) for t in self._callback_tokens))):
            response = envelope(403, "forbidden", "the token sent is not this server's token")
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

"""Token check as pure ASGI middleware: `X-VX11-Token` must equal the configured token.

Missing → 401 `auth_required`; wrong → 403 `forbidden`; compared in constant time. Paths in
`exempt` (`/health`) pass without a token, so probes need no secret.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from madre.http.errors import envelope

HEADER = "x-vx11-token"


class TokenAuthMiddleware:
    def __init__(self, app: ASGIApp, *, token: str, exempt: frozenset[str]) -> None:
        self.app = app
        self._token = token.encode()
        self._exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == HEADER.encode():
                given = value
                break
        if given is None:
            response = envelope(401, "auth_required",
                                "send the X-VX11-Token header with this server's token")
        elif not hmac.compare_digest(given, self._token):
            response = envelope(403, "forbidden", "the X-VX11-Token header is not this server's token")
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

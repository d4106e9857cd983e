"""Limits on the connections themselves, below the app: slow and silent clients, too many.

uvicorn bounds the wait between two requests on a kept-alive connection, but not the wait
for the first byte, nor the time a client takes to send its headers and body: 100 silent
sockets stayed open for ever, and clients sending one byte a second held theirs as long as
they liked. `guarded(protocol, limits)` is uvicorn's HTTP protocol class with three more
limits, each a setting:

- idle: a connection that sends nothing for `idle_seconds` after it opened is closed;
- request: a request whose headers and body have not all arrived `request_seconds` after
  its first byte is answered 408 (before the app saw it) or cut (while the app reads it);
- connections: past `max_connections` open at once, a new one is answered 503 and closed.

It also answers what uvicorn refuses before the app (a malformed request, a request line or
headers too long) in the one error envelope instead of plain text. The response of a
request that did arrive (an event stream, a chat waiting for its plan) is never timed here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any


@dataclasses.dataclass(frozen=True)
class Limits:
    idle_seconds: float
    request_seconds: float
    max_connections: int


def raw_envelope(status: int, reason: str, code: str, detail: str) -> bytes:
    """A whole HTTP/1.1 response carrying the error envelope, for a connection it ends."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
    return head + body


def guarded(base: type[asyncio.Protocol], limits: Limits) -> type[asyncio.Protocol]:
    """`base` (uvicorn's HTTP protocol class) with the limits above."""

    class Guarded(base):  # type: ignore[misc, valid-type]
        _limits = limits
        _deadline: asyncio.TimerHandle | None = None
        _receiving = False  # a request has begun and has not all arrived

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > self._limits.max_connections:
                self._end(raw_envelope(
                    503, "Service Unavailable", "too_many_connections",
                    f"Madre holds {self._limits.max_connections} connections already "
                    "(MADRE_HTTP_MAX_CONNECTIONS); try again in a moment"))
                return
            self._arm(self._limits.idle_seconds, self._idle)

        def data_received(self, data: bytes) -> None:
            if not self._receiving:  # the first byte of a request: its clock starts
                self._receiving = True
                self._arm(self._limits.request_seconds, self._late)
            super().data_received(data)
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete and not cycle.more_body:
                self._disarm()  # the whole request is in: its answer is not timed here

        def _arm(self, seconds: float, then: Any) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, then)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _idle(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()  # said nothing at all: nothing to answer

        def _late(self) -> None:
            self._deadline = None
            cycle = self.cycle
            if cycle is None or cycle.response_complete:  # the headers never all came
                self._end(raw_envelope(
                    408, "Request Timeout", "request_timeout",
                    f"the request did not arrive within {self._limits.request_seconds:g} s "
                    "(MADRE_HTTP_REQUEST_SECONDS)"))
            elif not self.transport.is_closing():
                self.transport.close()  # the app is reading the body: it sees the client go

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._receiving = False  # between requests uvicorn's keep-alive timeout counts

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            self._end(raw_envelope(
                400, "Bad Request", "bad_request",
                "the request is not valid HTTP, or its request line or headers are too long"))

        def _end(self, response: bytes) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(response)
                self.transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded

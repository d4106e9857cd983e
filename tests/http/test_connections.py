"""Connection limits, with real sockets on a real uvicorn serving Madre (`madre.http.guard`):
a silent connection is closed after MADRE_HTTP_IDLE_SECONDS, a request whose headers or
body trickle in is cut after MADRE_HTTP_REQUEST_SECONDS (408 in the envelope when the
headers never all came), past MADRE_HTTP_MAX_CONNECTIONS a new connection is answered 503;
what uvicorn refuses itself (an overlong URL) is answered in the envelope too. An event
stream, whose answer never ends, is not cut.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from helpers import TOKEN, make_settings
from sse import Stream

from madre import Madre, create_app
from madre.server import http_options
from madre.standins import LoopbackServer

IDLE, REQUEST = 0.5, 1.0


@pytest.fixture
def served(tmp_path, standins) -> Iterator[tuple[str, int]]:
    # About sockets, not storage: SQLite only.
    settings = make_settings(f"sqlite:///{tmp_path}/madre.db", standins, http_idle_seconds=IDLE,
                             http_request_seconds=REQUEST, http_max_connections=8)
    with Madre(settings) as madre, LoopbackServer(
            create_app(madre), lifespan="on", name="madre-guarded",
            **http_options(settings)) as server:
        yield server.url, int(server.url.rsplit(":", 1)[1])


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket's
    timeout: a server that never closes fails the test)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def envelope_of(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    assert b"application/json" in head.lower()
    return status, json.loads(body)


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_time(served) -> None:
    _, port = served
    with connect(port) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""
        assert IDLE * 0.8 <= time.monotonic() - started < IDLE + 5


def test_headers_that_never_all_arrive_are_answered_408_in_the_envelope(served) -> None:
    _, port = served
    with connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # ... and nothing more
        status, body = envelope_of(read_all(sock))
    assert status == 408 and body["error"] == "request_timeout"


def test_a_body_sent_a_byte_at_a_time_is_cut_after_the_request_time(served) -> None:
    _, port = served
    with connect(port) as sock:
        sock.sendall(b"POST /madre/chat HTTP/1.1\r\nHost: x\r\nX-VX11-Token: " + TOKEN.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < REQUEST + 5:
            try:
                sock.sendall(b" ")
                if sock.recv(65536, socket.MSG_DONTWAIT) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = True
                break
            time.sleep(0.1)  # a slow client, on purpose
        assert closed and time.monotonic() - started < REQUEST + 5


def test_an_overlong_url_is_answered_400_in_the_envelope(served) -> None:
    _, port = served
    with connect(port) as sock:
        sock.sendall(b"GET /madre/plans?session_id=" + b"x" * 70_000 + b" HTTP/1.1\r\n"
                     b"Host: x\r\n\r\n")
        status, body = envelope_of(read_all(sock))
    assert status == 400 and body["error"] == "bad_request"


def test_past_the_connection_limit_a_new_connection_is_answered_503(served) -> None:
    _, port = served
    held = [connect(port) for _ in range(8)]
    try:
        with connect(port) as extra:
            status, body = envelope_of(read_all(extra))
        assert status == 503 and body["error"] == "too_many_connections"
    finally:
        for sock in held:
            sock.close()


def test_an_event_stream_outlives_the_request_and_idle_times(served) -> None:
    url, _ = served
    stream = Stream(url)
    try:
        assert not stream.ended(timeout=REQUEST + IDLE + 0.5)
    finally:
        stream.close()

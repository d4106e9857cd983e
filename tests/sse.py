"""Reading `GET /madre/events` in tests: one SSE event (`Sse`), and a stream held open whose
events a thread queues (`Stream`), so a test waits on the queue with a timeout, never sleeps.
"""

from __future__ import annotations

import json
import queue
import re
import socket
import threading
from collections.abc import Callable
from typing import Any

import requests
from helpers import TOKEN, WAIT

HEADERS = {"X-VX11-Token": TOKEN}
END = object()  # what the reading thread queues when the stream ends
BLANK_LINE = re.compile(r"\r\n\r\n|\n\n|\r\r")


class Sse:
    """One SSE event as it came over the wire: `id:`, `event:`, and `data:` parsed as JSON."""

    def __init__(self, block: str) -> None:
        fields: dict[str, list[str]] = {}
        for line in re.split(r"\r\n|\n|\r", block):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
        self.id = int(fields["id"][0]) if "id" in fields else None
        self.event = fields.get("event", ["message"])[0]
        self.data: dict[str, Any] = json.loads("\n".join(fields.get("data", ["null"])))


class Stream:
    """`GET /madre/events` held open; a thread queues each event as it arrives."""

    def __init__(self, url: str, *, last_event_id: str | int | None = None,
                 **params: Any) -> None:
        headers = dict(HEADERS)
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        # requests returns once the headers are in: the server has fixed where the stream
        # starts, so whatever happens after this line is sent.
        self.resp = requests.get(url + "/madre/events", headers=headers, params=params,
                                 stream=True, timeout=(5, None))
        assert self.resp.status_code == 200, self.resp.text
        assert self.resp.headers["content-type"].startswith("text/event-stream")
        self.queue: queue.Queue[Any] = queue.Queue()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._pump, name="sse-reader", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        text = ""
        try:
            for chunk in self.resp.iter_content(chunk_size=None):
                text += chunk.decode()
                *blocks, text = BLANK_LINE.split(text)
                for block in blocks:
                    if any(ln and not ln.startswith(":") for ln in block.splitlines()):
                        self.queue.put(Sse(block))
        except Exception as exc:  # noqa: BLE001 - shut down under us, or cut by the server
            self.error = exc
        finally:
            self.queue.put(END)

    def next(self, timeout: float = WAIT) -> Sse:
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout} s") from None
        assert item is not END, "the stream ended"
        return item  # type: ignore[no-any-return]

    def until(self, done: Callable[[Sse], bool], timeout: float = WAIT) -> list[Sse]:
        """Every event up to and including the first for which `done` is true."""
        got = []
        while True:
            got.append(self.next(timeout))
            if done(got[-1]):
                return got

    def take(self, n: int, timeout: float = WAIT) -> list[Sse]:
        return [self.next(timeout) for _ in range(n)]

    def ended(self, timeout: float = WAIT) -> bool:
        """Whether the server ends the stream within `timeout` with nothing more sent."""
        try:
            return self.queue.get(timeout=timeout) is END
        except queue.Empty:
            return False

    def close(self) -> None:
        connection = self.resp.raw.connection
        if connection is not None and connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the server closed it already
        self.thread.join(timeout=5)  # woken by the shutdown: it reads the end of the stream
        self.resp.close()



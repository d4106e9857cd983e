"""The live side of the event stream: wake SSE streams when the store commits.

Events are the audit rows themselves (`madre_actions`, ids strictly increasing), so a stream
reads them from the database after the last id it sent: a client that reconnects with
`Last-Event-ID` gets exactly what it missed, and a slow client costs no memory here. This
feed only says "something new was committed" (from the Store actor's thread to each
stream's event loop); every stream then reads what matches its filters.
"""

from __future__ import annotations

import asyncio
import threading


class EventFeed:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def notify(self) -> None:
        """Called after every commit (any thread): wake every waiting stream."""
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that stream's loop is closed: it is gone
                self.unsubscribe((loop, event))

    def subscribe(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        """A wake-up event for the calling stream's loop."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(waiter)
        return waiter

    def unsubscribe(self, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiters.discard(waiter)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._waiters)

"""The live side of the event stream: one reader per process feeds every stream.

Events are the audit rows (`madre_actions`), their ids the rows' ids. One thread reads the
rows committed after the last one it read — woken after each of this process's commits,
and every `poll` seconds for the rows other instances commit — and hands each to the
streams whose filters it matches, in memory. A stream filtered on a plan or a session that
nothing happens to costs nothing per commit: streams are indexed by their most selective
filter, and only the ones an event may match are looked at and woken.

Ids become visible in id order (`madre.store.ordered`), so the reader's
position (`head`) is a safe high-water mark: no row below it can still commit, and no
stream skips an event committed late by another instance.

A stream that reconnects with `Last-Event-ID` replays the rows after it from the database
(`madre.http.stream`), then goes on with what the hub hands it. A stream that does not keep
up (more than `max_pending` events waiting for it) is marked `overflowed`: it tells its
client where to resume and ends, so a slow client never holds more than that in memory.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable, Iterable

from madre.contracts.events import Event

log = logging.getLogger("madre.events")

BATCH = 500
GATHER_SECONDS = 0.005  # after a wake, let this long's commits gather into one read


class Published:
    """An event as streams send it. Made from the row as read; its JSON is rendered once, and
    only when some stream wants it (idle filtered streams cost no building nor serialising)."""

    __slots__ = ("_data", "_render", "action", "id", "plan_id", "plan_status", "session_id")

    def __init__(self, row_id: int, action: str, plan_id: str | None, session_id: str | None,
                 plan_status: str | None, render: Callable[[], str]) -> None:
        self.id, self.action = row_id, action
        self.plan_id, self.session_id, self.plan_status = plan_id, session_id, plan_status
        self._render = render
        self._data: str | None = None

    @classmethod
    def of(cls, event: Event) -> Published:
        return cls(event.id, event.action, event.plan_id, event.session_id, event.plan_status,
                   event.model_dump_json)

    @property
    def data(self) -> str:
        if self._data is None:
            self._data = self._render()
        return self._data


class Subscription:
    """One stream's filters and the events waiting for it (filled by the hub's thread,
    emptied by the stream on its event loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, plan_id: str | None,
                 session_id: str | None, status: str | None, max_pending: int) -> None:
        self.loop = loop
        self.wake = asyncio.Event()
        self.plan_id, self.session_id, self.status = plan_id, session_id, status
        self.live_after = 0  # the hub hands over every matching event after this id
        self.overflowed = False
        self._max = max_pending
        self._lock = threading.Lock()
        self._pending: collections.deque[Published] = collections.deque()

    @property
    def key(self) -> tuple[str, str | None]:
        """The most selective filter: where the hub files this stream."""
        if self.plan_id is not None:
            return ("plan", self.plan_id)
        if self.session_id is not None:
            return ("session", self.session_id)
        if self.status is not None:
            return ("status", self.status)
        return ("all", None)

    def matches(self, event: Published) -> bool:
        return ((self.plan_id is None or event.plan_id == self.plan_id)
                and (self.session_id is None or event.session_id == self.session_id)
                and (self.status is None or event.plan_status == self.status))

    def push(self, event: Published) -> None:
        with self._lock:
            if len(self._pending) >= self._max:
                self.overflowed = True
            elif not self.overflowed:
                self._pending.append(event)

    def take(self) -> list[Published]:
        with self._lock:
            taken = list(self._pending)
            self._pending.clear()
            return taken

    def ring(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.wake.set)
        except RuntimeError:
            pass  # that stream's loop is closed: it is gone


class EventHub:
    """Reads the committed audit rows once for the whole process and fans them out.

    `read_after(id, limit)` gives the events after `id` in id order; `newest()` the id of
    the last committed one.
    """

    def __init__(self, read_after: Callable[[int, int], list[Published]],
                 newest: Callable[[], int], *, poll_seconds: float, max_pending: int) -> None:
        self._read_after = read_after
        self._newest = newest
        self._poll = poll_seconds
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._index: dict[tuple[str, str | None], set[Subscription]] = {}
        self._count = 0
        self._head = 0
        self._stale = True  # nobody listened: `head` must be read again before use
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="madre-events", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EventHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.ring_all()

    def notify(self) -> None:
        """Something was committed (any thread): read it, if anyone listens. With nobody
        subscribed the reader is not woken at all (a thread switch per commit saved); the
        next subscriber reads the head again, so it starts after what was committed."""
        with self._lock:
            if self._count == 0:
                self._stale = True
                return
        self._wake.set()

    @property
    def read_due(self) -> bool:
        """The reader was woken and has not read yet."""
        return self._wake.is_set()

    def ring_all(self) -> None:
        """Wake every stream (Madre begins to drain: they see it and end)."""
        with self._lock:
            subscriptions = [s for group in self._index.values() for s in group]
        for subscription in subscriptions:
            subscription.ring()

    # ------------------------------------------------------------------ subscribing

    def subscribe(self, subscription: Subscription) -> int:
        """File a stream; returns the id after which the hub hands it events. Blocking (it
        may read the database): call it from a worker thread."""
        with self._lock:
            if self._stale:
                self._head = max(self._head, self._newest())
                self._stale = False
            subscription.live_after = self._head
            self._index.setdefault(subscription.key, set()).add(subscription)
            self._count += 1
            return self._head

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            group = self._index.get(subscription.key)
            if group is not None and subscription in group:
                group.discard(subscription)
                self._count -= 1
                if not group:
                    del self._index[subscription.key]

    @property
    def subscribers(self) -> int:
        with self._lock:
            return self._count

    @property
    def head(self) -> int:
        with self._lock:
            return self._head

    def newest(self) -> int:
        """The id of the last committed event (read from the database)."""
        return self._newest()

    # ------------------------------------------------------------------ the reader

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            if self._stop.is_set():
                return
            # Under load every commit wakes the reader: a few ms of gathering make one read
            # serve many commits (a stream sees its events that much later, no more).
            self._stop.wait(GATHER_SECONDS)
            self._wake.clear()
            try:
                more = self._read_once()
            except Exception:  # the database did not answer: the next wake tries again
                log.exception("reading events for the streams failed")
                more = False
            if more:
                self._wake.set()

    def _read_once(self) -> bool:
        with self._lock:
            if self._count == 0:
                self._stale = True  # nobody listens: no reads until someone does
                return False
            after = self._head
        events = self._read_after(after, BATCH)
        touched: set[Subscription] = set()
        with self._lock:
            for event in events:
                if event.id <= self._head:
                    continue
                self._head = event.id
                for subscription in self._candidates(event):
                    if subscription.matches(event):
                        subscription.push(event)
                        touched.add(subscription)
        for subscription in touched:
            subscription.ring()
        return len(events) == BATCH

    def _candidates(self, event: Published) -> Iterable[Subscription]:
        index = self._index
        for key in (("all", None), ("plan", event.plan_id), ("session", event.session_id),
                    ("status", event.plan_status)):
            group = index.get(key)
            if group:
                yield from group

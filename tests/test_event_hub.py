"""The event hub's reader sleeps while nobody listens, and misses nothing once someone does.

A commit with no stream subscribed wakes no reader thread (one thread switch per commit
saved, issue 14); a stream that subscribes afterwards starts after what was committed
before it, and gets every event committed after it. The hub is driven with an in-memory
event log (its two read functions) and a real asyncio loop for the subscription.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from madre.event_hub import EventHub, Published, Subscription


class EventLog:
    """What the hub reads: events in id order, counted reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Published] = []
        self.reads = 0

    def commit(self, plan_id: str) -> None:
        with self._lock:
            row_id = len(self.events) + 1
            self.events.append(Published(row_id, "plan_done", plan_id, None, "DONE",
                                         lambda: "{}"))

    def read_after(self, after: int, limit: int) -> list[Published]:
        with self._lock:
            self.reads += 1
            return [e for e in self.events if e.id > after][:limit]

    def newest(self) -> int:
        with self._lock:
            return len(self.events)


@pytest.fixture
def log() -> EventLog:
    return EventLog()


def make_hub(log: EventLog) -> EventHub:
    return EventHub(log.read_after, log.newest, poll_seconds=3600.0, max_pending=100)


def test_a_commit_with_nobody_subscribed_wakes_no_reader_and_one_with_a_stream_does(
        log: EventLog) -> None:
    hub = make_hub(log)  # not started: what a commit asks of the reader stays visible
    log.commit("nobody-listens")
    hub.notify()
    assert not hub.read_due
    loop = asyncio.new_event_loop()
    try:
        hub.subscribe(Subscription(loop, plan_id=None, session_id=None, status=None,
                                   max_pending=100))
        log.commit("someone-listens")
        hub.notify()
        assert hub.read_due
    finally:
        loop.close()


@pytest.fixture
def started(log: EventLog) -> Iterator[EventHub]:
    hub = make_hub(log).start()
    yield hub
    hub.stop()


def test_a_stream_subscribed_after_unread_commits_starts_after_them_and_gets_the_next(
        started: EventHub, log: EventLog) -> None:
    hub = started
    for i in range(3):
        log.commit(f"before-{i}")
        hub.notify()
    assert log.reads == 0  # nobody listened: nothing was read

    loop = asyncio.new_event_loop()
    try:
        subscription = Subscription(loop, plan_id=None, session_id=None, status=None,
                                    max_pending=100)
        start = hub.subscribe(subscription)
        assert start == 3  # it starts after what was committed before it

        log.commit("after")
        hub.notify()

        async def first_event() -> list[Published]:
            await asyncio.wait_for(subscription.wake.wait(), timeout=10)
            return subscription.take()

        got = loop.run_until_complete(first_event())
    finally:
        hub.unsubscribe(subscription)
        loop.close()
    assert [e.plan_id for e in got] == ["after"]

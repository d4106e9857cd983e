"""Actors whose threads are reused: one thread per live actor, without starting one each time.

A `pykka.ThreadingActor` starts a new OS thread for every actor, which costs more than a
short plan's whole run (about a quarter of a millisecond, and more under load). A Plan actor
lives only while its plan runs, so thousands start every second. `RecycledThreadActor` runs
its loop on a thread taken from a `ThreadCache`, which keeps the threads of stopped actors
idle for the next one. Nothing else changes: each live actor still has its own thread, takes
one message at a time, and is started, stopped and registered like any pykka actor.
(`_start_actor_loop` is the hook pykka names for implementors of new actor types.)
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable

import pykka


class ThreadCache:
    """Threads for actor loops: an idle one when there is one, a new one otherwise (so an
    actor never waits for a thread). At most `keep_idle` threads stay idle; the others end.
    `close` ends the idle ones and waits for the rest to finish the loops they run."""

    def __init__(self, *, name: str, keep_idle: int) -> None:
        self._name = name
        self._keep_idle = keep_idle
        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)  # notified when no loop runs
        self._busy = 0  # threads running an actor's loop now
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._count = itertools.count(1)
        self._closed = False

    def run(self, work: Callable[[], object]) -> None:
        """Run `work` on an idle thread, or on a new one."""
        with self._lock:
            if self._closed:
                raise pykka.ActorDeadError("the actor threads are closed")
            worker = self._idle.pop() if self._idle else None
            self._busy += 1
            if worker is None:
                worker = _Worker(self, f"{self._name}-{next(self._count)}")
                self._all.add(worker)
                worker.thread.start()
        worker.inbox.put(work)

    def busy(self) -> int:
        """How many threads run an actor's loop now."""
        with self._lock:
            return self._busy

    def wait_quiet(self, timeout: float) -> bool:
        """Wait until no thread runs an actor's loop (False: `timeout` seconds passed). An
        actor's last messages (its stop, told to its supervisor) are sent before then."""
        with self._quiet:
            return self._quiet.wait_for(lambda: self._busy == 0, timeout)

    def close(self, timeout: float = 60) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            workers = list(self._all)
        for worker in idle:
            worker.inbox.put(None)
        for worker in workers:
            worker.thread.join(timeout)

    def _rest(self, worker: _Worker) -> bool:
        """A worker finished its work: whether it waits for more (False: it ends)."""
        with self._lock:
            self._busy -= 1
            if self._busy == 0:
                self._quiet.notify_all()
            if self._closed or len(self._idle) >= self._keep_idle:
                self._all.discard(worker)
                return False
            self._idle.append(worker)
            return True


class _Worker:
    def __init__(self, cache: ThreadCache, name: str) -> None:
        self.inbox: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, args=(cache,), name=name)

    def _serve(self, cache: ThreadCache) -> None:
        while (work := self.inbox.get()) is not None:
            try:
                work()
            finally:
                del work  # drop the actor before idling: it must not outlive its loop
            if not cache._rest(self):  # noqa: SLF001 - the cache and its workers are one unit
                return


class RecycledThreadActor(pykka.ThreadingActor):
    """A ThreadingActor whose loop runs on a thread of its class's `ThreadCache`.

    Give the cache per start (`threads=` keyword of `start`, kept by `__init__`), so that
    several Madre instances in one process never share threads."""

    def __init__(self, *, threads: ThreadCache | None = None) -> None:
        super().__init__()
        self._threads = threads

    def _start_actor_loop(self) -> None:
        if self._threads is None:
            super()._start_actor_loop()
            return
        self._threads.run(self._actor_loop)

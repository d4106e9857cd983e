"""Dependency health, probed in the background and read from a cache.

`/health` must answer fast even when every module hangs, so it never probes: it reads the
`HealthBoard`, which a `HealthProber` thread refreshes every interval (each module probed
in parallel with a short timeout, plus a `SELECT 1` on the database).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from madre.model import utcnow
from madre.delegation.client import ModuleClient
from madre.store.failures import describe

log = logging.getLogger("madre.delegation.health")


@dataclasses.dataclass(frozen=True)
class DependencyState:
    state: str = "unknown"  # up | down | unknown
    checked_at: dt.datetime | None = None
    error: str | None = None


class HealthBoard:
    """The last known state of each module and of the database. Thread-safe."""

    def __init__(self, modules: tuple[str, ...]) -> None:
        self._lock = threading.Lock()
        self._deps = {name: DependencyState() for name in modules}
        self._db = DependencyState()  # the prober's read (SELECT 1)
        self._db_write = DependencyState()  # the last write's outcome (the Store's)

    def set(self, module: str, state: DependencyState) -> None:
        with self._lock:
            self._deps[module] = state

    def set_db(self, state: DependencyState) -> None:
        with self._lock:
            self._db = state

    def set_db_write(self, state: DependencyState) -> None:
        with self._lock:
            self._db_write = state

    def db_write(self) -> DependencyState:
        with self._lock:
            return self._db_write

    def deps(self) -> dict[str, DependencyState]:
        with self._lock:
            return dict(self._deps)

    def db(self) -> DependencyState:
        """The database as people see it: down when the last write was refused (reads may
        still work on a full disk), else what the last probe found."""
        with self._lock:
            return self._db_write if self._db_write.state == "down" else self._db


class HealthProber:
    """A stoppable thread that refreshes a HealthBoard every `interval` seconds."""

    def __init__(
        self,
        board: HealthBoard,
        clients: Mapping[str, ModuleClient],
        *,
        check_db: Callable[[], None],
        interval: float,
        timeout: float = 1.0,
    ) -> None:
        self._board = board
        self._clients = dict(clients)
        self._check_db = check_db
        self._interval = interval
        self._timeout = timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="madre-health", daemon=False)
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(clients)),
                                        thread_name_prefix="madre-probe")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._timeout * 2 + 5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def probe_once(self) -> None:
        """Probe every module and the database once, updating the board."""
        futures = {
            name: self._pool.submit(client.probe, timeout=self._timeout)
            for name, client in self._clients.items()
        }
        try:
            self._check_db()
            self._board.set_db(DependencyState("up", utcnow()))
        except Exception as exc:  # noqa: BLE001 - any failure means the DB is down for us
            self._board.set_db(DependencyState("down", utcnow(), describe(exc).sentence(
                "the database did not answer")))
        for name, future in futures.items():
            up, reason = future.result()
            self._board.set(name, DependencyState("up" if up else "down", utcnow(), reason))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.probe_once()
            except Exception:  # a probe round must never kill the prober
                log.exception("health probe round failed")
            self._stop.wait(self._interval)

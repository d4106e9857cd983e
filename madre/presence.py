"""This instance's own session on PostgreSQL: its advisory lock, and the notifications.

One connection, outside the pool, held for the instance's life:
- it holds the session advisory lock of this instance's id: if the process dies (kill -9,
  a crash, a lost connection), PostgreSQL closes the session and the lock is free that
  moment, so another instance asking `is_dead` learns it without waiting for a lease;
- it LISTENs on the channel every instance NOTIFYs after its commits (`madre`), and hands
  each payload to `on_notify`: event streams and plan watchers wake across instances.
A thread keeps it: on a lost connection it reconnects (with backoff) and takes its lock and
its LISTEN again. Nothing here decides anything; `madre.membership` does.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable
from typing import Any

from madre.instances import lock_key

log = logging.getLogger("madre.presence")

CHANNEL = "madre"
POLL_SECONDS = 0.5


class Presence:
    """The session, its lock and its LISTEN, kept alive by a thread of its own."""

    def __init__(self, dsn: str, instance_id: str, on_notify: Callable[[str], None], *,
                 connect: Callable[[str], Any] | None = None) -> None:
        self._dsn = dsn
        self._key = lock_key(instance_id)
        self._on_notify = on_notify
        self._connect = connect or _psycopg2_connect
        self._conn: Any = None
        self._lock = threading.Lock()  # one user of the connection at a time
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # stop() writes here: the wait ends at once
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="madre-presence", daemon=False)

    def start(self, timeout: float = 10.0) -> Presence:
        """Connect, take the lock, LISTEN; raise if that cannot be done within `timeout`."""
        self._open()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def is_dead(self, instance_id: str) -> bool:
        """Whether `instance_id`'s session is gone: its lock can be taken (and is let go at
        once). False when that cannot be known now (no connection)."""
        key = lock_key(instance_id)
        if key == self._key:
            return False
        with self._lock:
            if self._conn is None:
                return False
            try:
                with self._conn.cursor() as cur:
                    cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                    free = bool(cur.fetchone()[0])
                    if free:
                        cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
                return free
            except Exception:  # noqa: BLE001 - the connection failed: the loop reconnects
                self._lost()
                return False

    # ------------------------------------------------------------------ the session

    def _open(self) -> None:
        conn = self._connect(self._dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
            if not cur.fetchone()[0]:
                conn.close()
                raise RuntimeError("another session holds this instance's lock")
            cur.execute(f"LISTEN {CHANNEL}")
        with self._lock:
            self._conn = conn
        self._connected.set()

    def _close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        self._connected.clear()
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001,S110 - closing a broken connection
                pass

    def _lost(self) -> None:
        """Called holding `_lock`: forget the connection; the loop opens a new one."""
        conn, self._conn = self._conn, None
        self._connected.clear()
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001,S110
                pass

    def _run(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            conn = self._conn
            if conn is None:
                try:
                    self._open()
                    delay = 0.2
                    log.info("presence session reopened")
                except Exception as exc:  # noqa: BLE001 - keep trying while the process lives
                    log.warning("presence session cannot be opened: %s", exc)
                    self._stop.wait(delay)  # stop() sets it too
                    delay = min(delay * 2, 5.0)
                continue
            try:
                ready, _, _ = select.select([conn, self._wake_r], [], [], POLL_SECONDS)
                if self._wake_r in ready or not ready:
                    continue
                with self._lock:
                    conn.poll()
                    payloads = [n.payload for n in conn.notifies]
                    conn.notifies.clear()
            except Exception:  # noqa: BLE001 - a dead connection: open a new one
                with self._lock:
                    self._lost()
                continue
            for payload in payloads:
                try:
                    self._on_notify(payload)
                except Exception:  # a listener must never stop the session's thread
                    log.exception("notification listener failed")


def _psycopg2_connect(dsn: str) -> Any:
    import psycopg2

    return psycopg2.connect(dsn.replace("postgresql+pool://", "postgresql://"),
                            connect_timeout=5, keepalives=1, keepalives_idle=5,
                            keepalives_interval=2, keepalives_count=2)

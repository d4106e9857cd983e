"""The trail actor: copies the committed rows into the forensic trail, after its cursor.

It is woken after each commit and on every tick (the rows other instances commit, and the
retry after a failure), and copies whatever the database holds after the trail's cursor,
in batches, each fsynced before the cursor moves. Nothing is handed over in memory: a row
the trail did not get (a kill, a full disk, an unwritable folder) is still in the database
and is copied on the next try, so the trail is complete once it caught up. How far behind
it is (`TrailStatus`) is shown by /readyz, /metrics and `madre audit verify --db`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from typing import Any, NamedTuple

import pykka

from madre.actors.doorbell import Doorbell
from madre.forensics import ForensicTrail, TrailBusy
from madre.model import utcnow
from madre.store.feed import EMPTY, TrailSource

log = logging.getLogger("madre.forensics")

BATCH = 500
GATHER_SECONDS = 0.02  # after a commit's wake-up, let this long's commits join one batch
RETRY_FIRST, RETRY_MAX = 0.5, 10.0  # seconds between tries while the trail cannot be written


class CatchUp(NamedTuple):
    """Copy what was committed after the trail's cursor (replies the rows written). Unless
    `now`, nothing is tried before the retry time after a failure."""

    now: bool = False


@dataclasses.dataclass(frozen=True)
class TrailState:
    state: str  # starting | ok | failing | busy (another Madre writes this folder)
    behind: int | None  # committed rows not in the trail yet (None: not known)
    cursor: dict[str, int] | None = None
    error: str | None = None
    checked_at: dt.datetime | None = None


class TrailStatus:
    """The trail's last known state, shared with the threads that report it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = TrailState("starting", None)
        self.failures = 0  # writes that failed since start

    def set(self, state: TrailState) -> None:
        with self._lock:
            self._state = state

    def get(self) -> TrailState:
        with self._lock:
            return self._state


class TrailWriter(pykka.ThreadingActor):
    """Appends the committed rows to the trail; a failing disk is reported, never raised."""

    def __init__(self, trail: ForensicTrail, source: TrailSource, status: TrailStatus,
                 doorbell: Doorbell | None = None) -> None:
        super().__init__()
        self._trail = trail
        self._source = source
        self._status = status
        self._doorbell = doorbell or Doorbell()
        self._retry_at = 0.0
        self._backoff = RETRY_FIRST

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, CatchUp):
            return self._catch_up(now=message.now)
        return super().on_receive(message)

    def _catch_up(self, *, now: bool) -> int:
        if not now:
            if time.monotonic() < self._retry_at:
                self._doorbell.answer()  # the next ring (a tick, a commit) tries again
                return 0
            # Under load every commit rings: gathering a few ms makes one read, one write
            # and one fsync carry many commits (the trail is that much later, no more).
            time.sleep(GATHER_SECONDS)
        self._doorbell.answer()  # a commit from now on rings again: nothing is missed
        written = 0
        try:
            if not self._trail.is_open:
                self._open()
            cursor = self._trail.cursor or EMPTY
            while True:
                rows = self._source.rows_after(cursor, BATCH)
                if rows:
                    self._trail.append(rows)
                    written += len(rows)
                    cursor = self._trail.cursor or EMPTY
                if len(rows) < BATCH:
                    break
        except TrailBusy as exc:
            self._fail("busy", str(exc), quiet=True)
            return written
        except OSError as exc:
            self._trail.close()  # reopened (and its tail repaired) on the next try
            self._status.failures += 1
            self._fail("failing", f"the forensic trail cannot be written: {exc}")
            return written
        except Exception as exc:  # noqa: BLE001 - the database did not answer: try later
            self._fail("failing", f"the database rows could not be read for the trail: {exc}")
            return written
        self._backoff = RETRY_FIRST
        self._retry_at = 0.0
        self._status.set(TrailState("ok", 0, self._trail.cursor, None, utcnow()))
        return written

    def _open(self) -> None:
        """Open the trail and settle where it starts in the database."""
        cursor = self._trail.open()
        if cursor is None and self._trail_has_records():
            # Written before the trail kept a cursor: go on from the database's end.
            heads = self._source.heads()
            self._trail.append([{"event": "trail_cursor_started", "module": "madre",
                                 "reason": "the trail had no cursor; rows from here on are "
                                           "copied", "cursor": heads}])
        elif cursor is not None:
            heads = self._source.heads()
            if any(cursor.get(t, 0) > heads[t] for t in heads):
                # The trail is ahead of this database: another (or a restored) database.
                self._trail.append([{"event": "trail_database_changed", "module": "madre",
                                     "reason": "the database holds fewer rows than the trail "
                                               "copied; copying this database's rows",
                                     "detail": {"trail_cursor": cursor, "database": heads},
                                     "cursor": dict(EMPTY)}])

    def _trail_has_records(self) -> bool:
        return any(self._trail.directory.glob("*.jsonl"))

    def _fail(self, state: str, error: str, *, quiet: bool = False) -> None:
        now = time.monotonic()
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, RETRY_MAX)
        if not quiet:
            log.error("%s (retrying)", error)
        try:
            behind = self._source.behind(self._trail.cursor or EMPTY)
        except Exception:  # noqa: BLE001 - the database is down too: not known
            behind = None
        self._status.set(TrailState(state, behind, self._trail.cursor, error, utcnow()))

    def on_stop(self) -> None:
        self._trail.close()


class TrailClient:
    """Wakes the trail actor: at most one catch-up queued at a time, however many commits."""

    def __init__(self, ref: pykka.ActorRef[TrailWriter], doorbell: Doorbell) -> None:
        self.ref = ref
        self._doorbell = doorbell

    def wake(self) -> None:
        if self._doorbell.ring():
            try:
                self.ref.tell(CatchUp())
            except pykka.ActorDeadError:
                pass  # stopping

    def catch_up(self, timeout: float) -> int:
        """Copy everything committed so far before returning (start-up, tests)."""
        return int(self.ref.ask(CatchUp(now=True), timeout=timeout))

"""The forensic trail: an append-only, hash-chained JSON-lines copy of what Madre committed.

One file per UTC day under `forensic/madre/logs/` (MADRE_FORENSIC_DIR), one JSON object per
line: every intent received (intents_log) and every decision, transition, confirmation,
denial, restart and expiry (madre_actions), copied from the committed rows by the trail
actor (`madre.actors.trail`). Each record carries `prev`, the hash of the record before it
(across files too), and `hash`, the SHA-256 of its own canonical JSON, so a changed, removed
or inserted line breaks the chain where it happened: `madre audit verify` finds it.

Each copied record also carries its row (`table`, `row_id`) and `cursor`: the last row id of
each table the trail holds once it is written. The trail is its own cursor: a writer that
starts (after a restart, a kill, a full disk) reads the last record and goes on from the rows
after it, so every committed row reaches the trail once. A last line cut short by a kill is
cut off explicitly and a `trail_repaired` record says what was cut; every batch is fsynced
before the cursor moves. Tokens never reach it: audit rows never hold one.

One writer at a time per folder: it holds an exclusive lock on `trail.lock` in it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import pathlib
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("madre.forensics")

GENESIS = "0" * 64
SUFFIX = ".jsonl"
LOCK_NAME = "trail.lock"
TABLES = ("intents_log", "madre_actions")  # the tables the trail copies
MAX_CUT_TEXT = 2000  # characters of a cut line kept in its trail_repaired record
TAIL_BYTES = 1 << 20  # how far back from the end a torn tail is looked for


def canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str,
                      ensure_ascii=False)


def record_hash(record: dict[str, Any]) -> str:
    """The hash of a record: SHA-256 of its canonical JSON without the `hash` key."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def sealed_line(record: dict[str, Any]) -> tuple[str, str]:
    """The hash of `record` (which has no `hash` key) and its line with the hash: what
    `record_hash` and `canonical` give, for one JSON encoding instead of two. The keys
    sort, so the line is the record's JSON with `"hash":...` between the keys that sort
    before "hash" and those after: each half is encoded once and joined both ways."""
    before = canonical({k: v for k, v in record.items() if k < "hash"})[1:-1]
    after = canonical({k: v for k, v in record.items() if k > "hash"})[1:-1]
    body = "{" + ",".join(part for part in (before, after) if part) + "}"
    digest = hashlib.sha256(body.encode()).hexdigest()
    sealed = f'"hash":"{digest}"'
    return digest, "{" + ",".join(part for part in (before, sealed, after) if part) + "}"


def _intact_record(raw: bytes) -> dict[str, Any] | None:
    """The record on a line, if the line is a whole record whose hash matches."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or record.get("hash") != record_hash(record):
        return None
    return record


class TrailBusy(Exception):  # noqa: N818 - names what was found
    """Another writer holds this trail folder."""


class ForensicTrail:
    """Appends records to the day's file, chaining each to the one before.

    `cursor` is where the trail stands in the database (last row id per table), None
    until the trail has been opened (`open()`, or the first `append`)."""

    def __init__(self, directory: str | pathlib.Path) -> None:
        self.directory = pathlib.Path(directory)
        self._prev, self._seq = GENESIS, 0
        self.cursor: dict[str, int] | None = None
        self._day = ""  # the day file last written: records never go to an older one
        self._file: Any = None
        self._file_path: pathlib.Path | None = None
        self._lock: Any = None
        self._pending_notes: list[dict[str, Any]] = []  # repairs still to be recorded

    # ------------------------------------------------------------------ opening

    @property
    def is_open(self) -> bool:
        return self._lock is not None

    def open(self) -> dict[str, int] | None:
        """Take the folder's lock (TrailBusy if another writer has it), repair a torn last
        line, and continue the chain from the last record. Returns the cursor found (None
        for a trail with no cursor yet: empty, or written before cursors existed)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._lock is None:
            lock = (self.directory / LOCK_NAME).open("a+")
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                raise TrailBusy(f"another Madre writes the trail in {self.directory}") from None
            self._lock = lock
        self._prev, self._seq, self.cursor, self._day = GENESIS, 0, None, ""
        files = sorted(self.directory.glob("*" + SUFFIX), reverse=True)
        if files:
            self._repair_tail(files[0])
        for path in files:
            last = self._last_record(path)
            if last is not None:
                self._prev, self._seq = str(last["hash"]), int(last["seq"])
                cursor = last.get("cursor")
                self.cursor = dict(cursor) if isinstance(cursor, dict) else None
                self._day = path.name[:10]
                break
        self._write_pending_notes()
        return self.cursor

    def _repair_tail(self, path: pathlib.Path) -> None:
        """Cut whatever follows the last whole record of the newest file (a line torn by a
        kill or a full disk), and note what was cut, to be recorded next."""
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            start = max(0, size - TAIL_BYTES)
            file.seek(start)
            tail = file.read()
        keep = len(tail) if tail.endswith(b"\n") else tail.rfind(b"\n") + 1
        while keep > 0:  # walk back over trailing lines that are not whole records
            begin = tail.rfind(b"\n", 0, keep - 1) + 1
            if begin == 0 and start > 0:
                return  # nothing whole in the last MiB: not a torn line; `audit verify` says more
            if _intact_record(tail[begin:keep - 1]) is not None:
                break
            keep = begin
        if keep == len(tail):
            return
        cut = tail[keep:]
        with path.open("r+b") as file:
            file.truncate(start + keep)
            file.flush()
            os.fsync(file.fileno())
        log.warning("the forensic trail ended with %d bytes of a cut record in %s; cut off",
                    len(cut), path)
        self._pending_notes.append({
            "event": "trail_repaired", "module": "madre", "file": path.name,
            "cut_bytes": len(cut), "cut_sha256": hashlib.sha256(cut).hexdigest(),
            "cut_text": cut.decode("utf-8", errors="replace")[:MAX_CUT_TEXT],
            "reason": "the last line was cut short (a kill or a full disk); its records are "
                      "written again from the database",
        })

    @staticmethod
    def _last_record(path: pathlib.Path) -> dict[str, Any] | None:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - TAIL_BYTES))
            lines = file.read().split(b"\n")
        for line in reversed(lines):
            if line.strip():
                return _intact_record(line)
        return None

    def _write_pending_notes(self) -> None:
        if self._pending_notes:
            self.append([])  # appends the notes alone

    # ------------------------------------------------------------------ appending

    def append(self, entries: Iterable[dict[str, Any]]) -> None:
        """Chain `entries` to the trail, write them and fsync. Nothing moves (chain, cursor)
        unless the write went through: after an OSError, `open()` again before appending."""
        if not self.is_open:
            self.open()
        prev, seq, cursor, day = self._prev, self._seq, self.cursor, self._day
        by_day: dict[str, list[str]] = {}
        notes = list(self._pending_notes)
        for entry in [*notes, *entries]:
            seq += 1
            when = str(entry.get("time") or dt.datetime.now(dt.UTC).isoformat())
            day = max(day, when[:10])  # a clock set back never writes into an older file
            if "cursor" in entry:
                cursor = dict(entry["cursor"])
            elif cursor is not None:
                entry = {**entry, "cursor": cursor}
            record = {**entry, "time": when, "seq": seq, "prev": prev}
            record.pop("hash", None)
            prev, line = sealed_line(record)
            by_day.setdefault(day, []).append(line)
        for file_day, lines in by_day.items():
            out = self._open_file(self.directory / f"{file_day}{SUFFIX}")
            out.write("\n".join(lines) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self._prev, self._seq, self.cursor, self._day = prev, seq, cursor, day
        del self._pending_notes[:len(notes)]

    def _open_file(self, path: pathlib.Path) -> Any:
        if self._file_path != path:
            self._close_file()
            new = not path.exists()
            self._file = path.open("a", encoding="utf-8")
            self._file_path = path
            if new:  # the new file's name must survive a crash too
                folder = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
        return self._file

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # what did not reach the disk is written again after `open()`
            self._file, self._file_path = None, None

    def close(self) -> None:
        """Close the day file and give the folder's lock back."""
        self._close_file()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


# --------------------------------------------------------------------------- verifying


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What `verify` found: ok, or the first place the chain breaks and why; and where the
    trail stands in the database (`cursor`, from its last record)."""

    ok: bool
    records: int
    files: int
    file: str | None = None
    line: int | None = None
    problem: str | None = None
    cursor: dict[str, int] | None = None

    def describe(self) -> str:
        if self.ok:
            return f"OK: {self.records} records in {self.files} files, chain intact"
        return f"BROKEN at {self.file}:{self.line}: {self.problem}"


def trail_files(path: str | pathlib.Path) -> list[pathlib.Path]:
    target = pathlib.Path(path)
    return sorted(target.glob("*" + SUFFIX)) if target.is_dir() else [target]


def verify(path: str | pathlib.Path) -> Verdict:
    """Check a trail folder (or one file): every hash, every link, every sequence number.

    A folder holds the whole trail, so its first record must be the chain's first (seq 1,
    prev GENESIS): removing the oldest records, or the oldest day file, is found too. One
    file alone may start anywhere in the chain."""
    target = pathlib.Path(path)
    files = trail_files(target)
    if not files or not all(f.is_file() for f in files):
        return Verdict(False, 0, 0, str(target), None, "no trail files found here")
    prev, seq = (GENESIS, 0) if target.is_dir() else (None, None)
    count = 0
    cursor: dict[str, int] | None = None
    for file in files:
        with file.open("rb") as lines:
            for number, raw in enumerate(lines, start=1):
                where = {"file": str(file), "line": number}
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    return Verdict(False, count, len(files), problem="not UTF-8 text", **where)
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    return Verdict(False, count, len(files), problem="not a JSON record", **where)
                if record.get("hash") != record_hash(record):
                    return Verdict(False, count, len(files),
                                   problem="record changed: its hash does not match its content",
                                   **where)
                if prev is not None and record.get("prev") != prev:
                    return Verdict(False, count, len(files),
                                   problem="chain broken: a record before this one was removed, "
                                           "added or changed", **where)
                if not isinstance(record.get("seq"), int) or (
                        seq is not None and record["seq"] != seq + 1):
                    return Verdict(False, count, len(files),
                                   problem=f"sequence jumps from {seq} to {record.get('seq')}",
                                   **where)
                prev, seq, count = record["hash"], record["seq"], count + 1
                if isinstance(record.get("cursor"), dict):
                    cursor = record["cursor"]
    return Verdict(True, count, len(files), cursor=cursor)


def copied_rows(path: str | pathlib.Path) -> dict[str, set[int]]:
    """The row ids, per table, of the database rows the trail at `path` holds (since it last
    started copying another database: a `trail_database_changed` record)."""
    rows: dict[str, set[int]] = {table: set() for table in TABLES}
    for file in trail_files(path):
        with file.open("rb") as lines:
            for raw in lines:
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                if record.get("event") == "trail_database_changed":
                    rows = {table: set() for table in TABLES}
                elif record.get("table") in TABLES and isinstance(record.get("row_id"), int):
                    rows[record["table"]].add(record["row_id"])
    return rows

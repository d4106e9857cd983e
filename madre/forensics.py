"""The forensic trail: an append-only, hash-chained JSON-lines record of what Madre did.

One file per UTC day under `forensic/madre/logs/` (MADRE_FORENSIC_DIR), one JSON object per
line: every intent received, and every decision, transition, confirmation, denial, restart
and expiry (the audit rows, as committed). Each record carries `prev`, the hash of the record
before it (across files too), and `hash`, the SHA-256 of its own canonical JSON, so a changed,
removed or inserted line breaks the chain where it happened: `madre audit verify` finds it.
Tokens never reach it: the records are built from audit rows, which never hold one.

One writer appends to it (the trail actor, `madre.actors.trail`, told after each commit),
so the chain's order is the commit order. One Madre process per trail folder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import pathlib
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("madre.forensics")

GENESIS = "0" * 64
SUFFIX = ".jsonl"


def canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str,
                      ensure_ascii=False)


def record_hash(record: dict[str, Any]) -> str:
    """The hash of a record: SHA-256 of its canonical JSON without the `hash` key."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


class ForensicTrail:
    """Appends records to the day's file, chaining each to the one before."""

    def __init__(self, directory: str | pathlib.Path) -> None:
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._prev, self._seq = self._resume()
        self._file: Any = None  # the day's file, kept open between appends
        self._file_path: pathlib.Path | None = None

    def _resume(self) -> tuple[str, int]:
        """Continue the chain from the last record already written (after a restart)."""
        for path in sorted(self.directory.glob("*" + SUFFIX), reverse=True):
            last = _last_line(path)
            if last:
                try:
                    record = json.loads(last)
                    return str(record["hash"]), int(record["seq"])
                except (ValueError, KeyError, TypeError):
                    # A line cut short by a kill: `audit verify` will point at it; the
                    # chain goes on from a fresh start rather than stopping Madre.
                    log.warning("the forensic trail ends with an unreadable line in %s", path)
                    return GENESIS, 0
        return GENESIS, 0

    def append(self, entries: Iterable[dict[str, Any]]) -> None:
        by_file: dict[pathlib.Path, list[str]] = {}
        for entry in entries:
            self._seq += 1
            when = entry.get("time") or dt.datetime.now(dt.UTC).isoformat()
            record = {**entry, "time": when, "seq": self._seq, "prev": self._prev}
            record["hash"] = record_hash(record)
            self._prev = record["hash"]
            path = self.directory / f"{str(when)[:10]}{SUFFIX}"
            by_file.setdefault(path, []).append(canonical(record))
        for path, lines in by_file.items():
            out = self._open(path)
            out.write("\n".join(lines) + "\n")
            out.flush()

    def _open(self, path: pathlib.Path) -> Any:
        if self._file_path != path:
            self.close()
            self._file = path.open("a", encoding="utf-8")
            self._file_path = path
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file, self._file_path = None, None


def _last_line(path: pathlib.Path) -> str | None:
    with path.open("rb") as file:
        file.seek(0, 2)
        size = file.tell()
        chunk = min(size, 64 * 1024)
        file.seek(size - chunk)
        lines = [ln for ln in file.read(chunk).splitlines() if ln.strip()]
    return lines[-1].decode() if lines else None


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What `verify` found: ok, or the first place the chain breaks and why."""

    ok: bool
    records: int
    files: int
    file: str | None = None
    line: int | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"OK: {self.records} records in {self.files} files, chain intact"
        return f"BROKEN at {self.file}:{self.line}: {self.problem}"


def verify(path: str | pathlib.Path) -> Verdict:
    """Check a trail folder (or one file): every hash, every link, every sequence number.

    A folder holds the whole trail, so its first record must be the chain's first (seq 1,
    prev GENESIS): removing the oldest records, or the oldest day file, is found too. One
    file alone may start anywhere in the chain."""
    target = pathlib.Path(path)
    files = sorted(target.glob("*" + SUFFIX)) if target.is_dir() else [target]
    if not files or not all(f.is_file() for f in files):
        return Verdict(False, 0, 0, str(target), None, "no trail files found here")
    prev, seq = (GENESIS, 0) if target.is_dir() else (None, None)
    count = 0
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
    return Verdict(True, count, len(files))

"""Who this Madre is among the instances sharing its database, and how it proves it lives.

Every instance has an id, and a liveness row in `context` (no plan's row): host, pid, when
it started, its last heartbeat. On PostgreSQL it also holds a session advisory lock of its
own for its whole life (`madre.presence`): when the process dies, PostgreSQL closes its
connection and frees the lock that moment, so the others know at once. On SQLite one
instance per database file is the rule: a lock on a file beside the database keeps a
second one from starting, and names the one that holds it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import os
import pathlib
import socket
import uuid
from typing import IO, Any

from madre.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class InstanceInfo:
    """One instance as its liveness row says."""

    instance_id: str
    host: str
    pid: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    state: str = "running"  # running | stopped | dead

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid,
                           "started_at": self.started_at.isoformat(),
                           "heartbeat_at": self.heartbeat_at.isoformat(), "state": self.state})

    @classmethod
    def from_json(cls, instance_id: str, value: str) -> InstanceInfo | None:
        try:
            data: dict[str, Any] = json.loads(value)
            return cls(instance_id, str(data["host"]), int(data["pid"]),
                       dt.datetime.fromisoformat(data["started_at"]),
                       dt.datetime.fromisoformat(data["heartbeat_at"]),
                       str(data.get("state", "running")))
        except (ValueError, KeyError, TypeError):
            return None

    def beating(self, now: dt.datetime, lease: float) -> bool:
        """Running, with a heartbeat within the last lease."""
        return self.state == "running" and (now - self.heartbeat_at).total_seconds() < lease

    def describe(self) -> str:
        return (f"instance {self.instance_id} (pid {self.pid} on {self.host}, started "
                f"{self.started_at.isoformat(timespec='seconds')})")


def new_instance_id() -> str:
    """A readable id, unique to this start: host, pid and a random part."""
    host = "".join(c if c.isalnum() or c in ".-" else "-" for c in socket.gethostname())[:32]
    return f"{host or 'host'}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def this_instance(instance_id: str, now: dt.datetime) -> InstanceInfo:
    return InstanceInfo(instance_id, socket.gethostname(), os.getpid(), now, now)


def lock_key(instance_id: str) -> int:
    """The advisory lock key of an instance: 63 bits of a hash of its id."""
    digest = hashlib.sha256(f"madre-instance:{instance_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


class FileLock:
    """An exclusive lock on `<database file>.lock`, held while this Madre runs; the file
    says who holds it, so a second instance can name it when it refuses to start."""

    def __init__(self, database_file: str | pathlib.Path) -> None:
        self.database_file = pathlib.Path(database_file)
        self.path = self.database_file.with_name(self.database_file.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self, info: InstanceInfo) -> None:
        """Take the lock, or raise ConfigError naming the file and the instance holding it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = InstanceInfo.from_json(*_split(handle.read()))
            handle.close()
            who = holder.describe() if holder else "another Madre"
            raise ConfigError(
                f"the SQLite database {self.database_file} is in use by {who}: one Madre "
                "instance per SQLite file (run several instances on PostgreSQL)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{info.instance_id}\n{info.to_json()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file drops the lock
            self._file = None


def _split(text: str) -> tuple[str, str]:
    instance_id, _, value = text.strip().partition("\n")
    return instance_id, value

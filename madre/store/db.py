"""The database chosen by DATABASE_URL, opened with the settings each backend needs.

SQLite (the default) runs in WAL mode with a busy timeout and synchronous=NORMAL; its
write transactions start IMMEDIATE so a read-then-write never loses a race. PostgreSQL is
for several instances sharing one database. Both are pooled: every thread (an actor, a
request worker) borrows a connection for one unit of work and gives it back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import peewee
from playhouse import db_url
from playhouse.pool import PooledSqliteDatabase

from madre.settings import sqlite_file

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": 1,  # NORMAL: durable across process crashes, cheap commits under WAL
    "foreign_keys": 1,
    "busy_timeout": 5000,
    "cache_size": -16000,
    # The writer moves the WAL into the database file itself only past 10,000 pages (~40 MB;
    # SQLite's default is 1,000): a running Madre's checkpointer actor does it before that,
    # off the writer's thread (madre.actors.checkpointer). Other users of the file (the CLI)
    # write little, and their last connection's close checkpoints it.
    "wal_autocheckpoint": 10000,
}


def is_sqlite(database: peewee.Database) -> bool:
    return isinstance(database, peewee.SqliteDatabase)


def open_database(url: str, *, idle_transaction_seconds: float | None = None) -> peewee.Database:
    """Open (lazily) the database `url` names; for SQLite, create the file's folder.

    On PostgreSQL, `idle_transaction_seconds` has the server end any session of ours that
    sits inside a transaction longer than that waiting for us: an instance cut off from the
    database mid-transaction must not keep row locks that stop the others from taking its
    plans over once its leases run out."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "sqlite":
        file = sqlite_file(url)
        if file is None:
            raise ValueError(
                "DATABASE_URL must name a SQLite file (each actor thread would see its own "
                "empty :memory: database)"
            )
        file.parent.mkdir(parents=True, exist_ok=True)
        return PooledSqliteDatabase(
            str(file),
            pragmas=SQLITE_PRAGMAS,
            max_connections=64,
            stale_timeout=300,
            timeout=10,
            check_same_thread=False,
            autoconnect=True,
        )
    if scheme in ("postgres", "postgresql"):
        pooled = "postgresql+pool" + url[len(parts.scheme):]
        options = {}
        if idle_transaction_seconds is not None:
            ms = max(1000, int(idle_transaction_seconds * 1000))
            options["options"] = f"-c idle_in_transaction_session_timeout={ms}"
        return db_url.connect(
            pooled, max_connections=48, stale_timeout=300, timeout=10, autoconnect=True,
            **options,
        )
    raise ValueError(f"unsupported DATABASE_URL scheme {parts.scheme!r}")


@contextlib.contextmanager
def connection(database: peewee.Database) -> Iterator[None]:
    """Borrow this thread's connection for the block and give it back to the pool after."""
    with database.connection_context():
        yield


@contextlib.contextmanager
def write_transaction(database: peewee.Database) -> Iterator[None]:
    """A write transaction. On SQLite BEGIN IMMEDIATE takes the file's write lock up front,
    so a read-then-write never loses a race (and one writer at a time commits ids in order;
    PostgreSQL gets that order from `madre.store.ordered`).

    When the database fails a statement and then the ROLLBACK too (SQLite rolls back by
    itself on "database or disk is full", so peewee's ROLLBACK finds no transaction), the
    first error is raised: it names the cause, the second only hides it.
    """
    try:
        with database.atomic("IMMEDIATE") if is_sqlite(database) else database.atomic():
            yield
    except Exception as exc:
        first = first_error(exc)
        if first is exc:
            raise
        raise first from None


def first_error(exc: BaseException) -> BaseException:
    """The error a failed ROLLBACK (or a closed connection) hid, when there is one."""
    seen = exc
    while seen.__context__ is not None and _is_rollback_failure(seen):
        seen = seen.__context__
    return seen


def _is_rollback_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "no transaction is active" in text or "connection already closed" in text

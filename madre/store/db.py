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


ORDER_LOCK = 0x6D61647265  # "madre": the PostgreSQL advisory lock of every write transaction


@contextlib.contextmanager
def write_transaction(database: peewee.Database) -> Iterator[None]:
    """A write transaction whose rows become visible in the order of their ids.

    SQLite: BEGIN IMMEDIATE takes the file's write lock up front (a read-then-write never
    loses a race), and one writer at a time means ids commit in order. PostgreSQL hands
    out ids before commit, so two instances' transactions could commit out of id order and
    a reader that saw id 12 could later find 11 appear: every write transaction first takes
    one advisory lock (held until COMMIT), so the highest id a reader sees is a safe
    high-water mark: nothing below it can still commit (the event streams and the forensic
    trail read after such a mark).

    When the database fails a statement and then the ROLLBACK too (SQLite rolls back by
    itself on "database or disk is full", so peewee's ROLLBACK finds no transaction), the
    first error is raised: it names the cause, the second only hides it.
    """
    try:
        with database.atomic("IMMEDIATE") if is_sqlite(database) else database.atomic():
            if not is_sqlite(database):
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (ORDER_LOCK,))
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

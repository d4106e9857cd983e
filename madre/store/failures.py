"""Why the database refused a write, in words an operator can act on.

The drivers' messages are written for the driver's authors: after a full disk SQLite rolls
back by itself and the error people saw was peewee's "cannot rollback - no transaction is
active". `describe` walks the chain of errors to the one that names the cause and says it
first: disk full, read-only, locked, unreachable, I/O error.
"""

from __future__ import annotations

import dataclasses

from madre.store.db import first_error

# (cause, what the driver's message or SQLSTATE contains), most specific first.
_CAUSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("disk full", ("database or disk is full", "no space left on device", "disk full",
                   "could not extend file", "53100")),
    ("read-only", ("readonly database", "read-only", "read only", "25006")),
    ("locked", ("database is locked", "database table is locked", "lock timeout",
                "could not obtain lock", "55p03")),
    ("I/O error", ("disk i/o error", "input/output error")),
    ("unreachable", ("could not connect", "connection refused", "server closed the connection",
                     "connection already closed", "terminating connection",
                     "unable to open database file")),
)


@dataclasses.dataclass(frozen=True)
class DbFailure:
    """A refused write: its cause (one of the words above, or "error") and the driver's text."""

    cause: str
    message: str

    def sentence(self, what: str = "the database refused the write") -> str:
        if self.cause == "error":
            return f"{what}: {self.message}"
        return f"{what} ({self.cause}): {self.message}"


def describe(exc: BaseException) -> DbFailure:
    """The cause of a failed write, from `exc` and the errors it hid."""
    first = first_error(exc)
    chain: list[BaseException] = []
    seen: BaseException | None = first
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for error in chain:
        text = f"{getattr(error, 'pgcode', '') or ''} {error}".lower()
        for cause, marks in _CAUSES:
            if any(mark in text for mark in marks):
                return DbFailure(cause, _one_line(error))
    return DbFailure("error", _one_line(first))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]

"""`madre.store.failures.describe`: the cause of a refused write, said first, even when the
driver's last word hides it (a ROLLBACK that found no transaction after a full disk)."""

from __future__ import annotations

import sqlite3

import pytest

from madre.store.failures import describe


def chained(first: BaseException, then: BaseException) -> BaseException:
    try:
        try:
            raise first
        except BaseException:
            raise then  # noqa: B904 - chained implicitly, as peewee's rollback does
    except BaseException as exc:
        return exc


@pytest.mark.parametrize("message,cause", [
    ("database or disk is full", "disk full"),
    ("attempt to write a readonly database", "read-only"),
    ("database is locked", "locked"),
    ("disk I/O error", "I/O error"),
    ("could not extend file \"base/1/2\": No space left on device", "disk full"),
    ("something else entirely", "error"),
])
def test_the_cause_is_named_from_the_drivers_message(message: str, cause: str) -> None:
    assert describe(sqlite3.OperationalError(message)).cause == cause


def test_a_failed_rollback_does_not_hide_the_full_disk_before_it() -> None:
    exc = chained(sqlite3.OperationalError("database or disk is full"),
                  sqlite3.OperationalError("cannot rollback - no transaction is active"))
    failure = describe(exc)
    assert failure.cause == "disk full"
    assert "no transaction is active" not in failure.sentence()
    assert failure.sentence().startswith("the database refused the write (disk full)")

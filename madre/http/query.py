"""Query-string and path values, and the page cursors: read once here, refused in the one
envelope when wrong.

A cursor is an opaque string to clients; it is the row id a page continues before
(`madre.store.queries.PlanPage.next_before`), in decimal: CURSOR_PATTERN, which the document
declares, is exactly what is accepted. A parameter given empty is refused like any other
wrong value (`status=` is not "no filter"), as the document's types say.
"""

from __future__ import annotations

import re

from madre.contracts.fields import MAX_ID_CHARS, MAX_PAGE
from madre.errors import BadRequest, NotFound
from madre.http.errors import RequestRejected
from madre.model import Status

MAX_ROW_ID = 2**63 - 1  # the largest row id both SQLite and PostgreSQL can compare
CURSOR_PATTERN = "^[1-9][0-9]{0,17}$"  # 18 digits at most: always below MAX_ROW_ID
STATUS_PATTERN = "^(" + "|".join(
    "".join(f"[{c.upper()}{c.lower()}]" for c in s.value) for s in Status) + ")$"
"""A plan status in any letter case, as a pattern every regex engine reads the same way."""


def encode_cursor(row_id: int) -> str:
    return str(row_id)


def decode_cursor(cursor: str) -> int:
    """The row id a cursor this server gave out stands for; BadRequest (400) for else."""
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise BadRequest("cursor is not one this server gave out; start without it")
    return int(cursor)


def query_cursor(raw: str | None) -> int | None:
    """`?cursor=`: the row id to continue before, or None to start from the newest."""
    if raw is None:
        return None
    return decode_cursor(raw)


def query_status(raw: str | None) -> Status | None:
    """A plan status filter (`?status=`), any letter case; None when absent."""
    if raw is None:
        return None
    try:
        return Status(raw.upper())
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise RequestRejected(422, "validation_error", f"status must be one of {allowed}",
                              errors=[{"loc": ["query", "status"], "msg": f"one of {allowed}",
                                       "type": "enum"}]) from None


def query_limit(raw: str | None, *, default: int = 50) -> int:
    """`?limit=`: a page size from 1 to MAX_PAGE."""
    if raw is None:
        return default
    # ASCII digits only, and few of them: int() of thousands of digits raises, of "١" succeeds.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_PAGE:
        raise RequestRejected(422, "validation_error",
                              f"limit must be a whole number from 1 to {MAX_PAGE}",
                              errors=[{"loc": ["query", "limit"], "msg": f"1..{MAX_PAGE}",
                                       "type": "int_range"}])
    return int(raw)


def query_id(raw: str | None, name: str) -> str | None:
    """An id filter (`?session_id=`, `?plan_id=`): at most MAX_ID_CHARS, without NUL."""
    value = raw or None
    if value is not None and (len(value) > MAX_ID_CHARS or "\x00" in value):
        raise RequestRejected(422, "validation_error",
                              f"{name} must be at most {MAX_ID_CHARS} characters, without NUL",
                              errors=[{"loc": ["query", name],
                                       "msg": f"at most {MAX_ID_CHARS} characters, no NUL",
                                       "type": "string_invalid"}])
    return value


def path_plan_id(raw: str) -> str:
    """A plan id from the path; one no plan can have is a 404 before anything is asked."""
    if not raw or len(raw) > MAX_ID_CHARS or "\x00" in raw:
        # No plan has such an id; asking the database would only fail (PostgreSQL refuses NUL).
        raise NotFound("no plan has that id")
    return raw


def path_daughter_id(raw: str) -> int:
    """A job id (daughter_tasks.id) from the path: a positive whole number, else 404."""
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_ROW_ID:
        raise NotFound(f"no job {raw[:40]} (daughter_tasks ids are positive whole numbers)")
    return int(raw)

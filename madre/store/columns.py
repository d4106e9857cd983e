"""How Madre's values sit in the five tables' columns: context keys, timestamps, scopes.

Shared by the writes (`repository`) and the reads (`queries`), so a value is written and
read back the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib

KEY_INTENT = "madre:intent_id"
KEY_MODE = "madre:mode"
KEY_CONFIRM_HASH = "madre:confirm_hash"
KEY_CONFIRM_EXPIRES = "madre:confirm_expires_at"
KEY_CONFIRMED_AT = "madre:confirmed_at"
KEY_CONFIRM_DIGEST = "madre:confirm_plan_digest"  # the plan content a token is bound to
KEY_INSTANCE = "madre:instance:"  # + the instance id: its liveness (no plan's row)

SCOPE_GLOBAL = "global"
SCOPE_INSTANCE = "instance"
SCOPE_DEAD_INSTANCE = "instance:dead"


def session_scope(session_id: str) -> str:
    """The context.scope (50 characters) of a session; long ids are hashed, never cut, so two
    sessions can never share a scope."""
    scope = f"session:{session_id}"
    if len(scope) <= 50:
        return scope
    return "session#" + hashlib.sha256(session_id.encode()).hexdigest()[:42]


def to_db_time(moment: dt.datetime) -> dt.datetime:
    """A moment as both backends store it: naive UTC."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def from_db_time(value: dt.datetime | str | None) -> dt.datetime | None:
    """A stored moment back as aware UTC (SQLite hands back text, PostgreSQL naive values)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def clip(text: str | None, limit: int = 255) -> str:
    """`text` cut to a column's width (the original's VARCHAR sizes)."""
    return (text or "")[:limit]

"""Committed rows after a cursor: what the forensic trail copies, and how far behind it is.

A cursor is the last row id copied from each table (`{"intents_log": I, "madre_actions": A}`).
Ids become visible in id order (`madre.store.ordered`), so "after the cursor"
never skips a row that commits later.
"""

from __future__ import annotations

import heapq
import json
from typing import Any

import peewee

from madre.store.columns import from_db_time
from madre.store.db import connection

TABLES = ("intents_log", "madre_actions")
EMPTY = {table: 0 for table in TABLES}

_INTENTS = ("SELECT id, intent_id, session_id, source, created_at FROM intents_log"
            " WHERE id > {p} ORDER BY id LIMIT {p}")
_ACTIONS = ("SELECT id, module, action, reason, created_at, plan_id, intent_id, session_id,"
            " actor, detail_json, plan_status FROM madre_actions WHERE id > {p} ORDER BY id"
            " LIMIT {p}")


class TrailSource:
    """Reads, for the trail, the committed rows after a cursor (any thread, own connection)."""

    def __init__(self, database: peewee.Database) -> None:
        self.database = database
        p = database.param
        self._intents = _INTENTS.format(p=p)
        self._actions = _ACTIONS.format(p=p)

    def rows_after(self, cursor: dict[str, int], limit: int) -> list[dict[str, Any]]:
        """Up to `limit` rows of each table after `cursor`, as trail entries, each carrying
        the cursor once it is written. Merged by time; each table's rows stay in id order."""
        with connection(self.database):
            intents = self.database.execute_sql(
                self._intents, (cursor.get("intents_log", 0), limit)).fetchall()
            actions = self.database.execute_sql(
                self._actions, (cursor.get("madre_actions", 0), limit)).fetchall()
        entries = heapq.merge([_intent_entry(r) for r in intents],
                              [_action_entry(r) for r in actions],
                              key=lambda e: e["created_at"])
        position = dict(EMPTY, **cursor)
        out = []
        for entry in entries:
            position[entry["table"]] = entry["row_id"]
            out.append({**entry, "cursor": dict(position)})
        return out

    def behind(self, cursor: dict[str, int]) -> int:
        """How many committed rows the trail at `cursor` does not hold yet."""
        total = 0
        with connection(self.database):
            for table in TABLES:
                total += int(self.database.execute_sql(
                    f"SELECT COUNT(*) FROM {table} WHERE id > {self.database.param}",  # noqa: S608
                    (cursor.get(table, 0),)).fetchone()[0])
        return total

    def heads(self) -> dict[str, int]:
        """The last row id of each table (0 when empty)."""
        with connection(self.database):
            return {table: int(self.database.execute_sql(
                f"SELECT MAX(id) FROM {table}").fetchone()[0] or 0)  # noqa: S608
                for table in TABLES}

    def ids(self, table: str, *, after: int = 0) -> Any:
        """Every row id of `table` after `after`, in order (for `madre audit verify --db`)."""
        assert table in TABLES
        with connection(self.database):
            cursor = self.database.execute_sql(
                f"SELECT id FROM {table} WHERE id > {self.database.param} ORDER BY id",  # noqa: S608
                (after,))
            for (row_id,) in cursor:
                yield int(row_id)


def _time(value: Any) -> str:
    moment = from_db_time(value)
    return moment.isoformat() if moment else ""


def _intent_entry(row: tuple[Any, ...]) -> dict[str, Any]:
    row_id, intent_id, session_id, source, created_at = row
    entry = {"event": "intent_received", "intent_id": intent_id, "session_id": session_id,
             "module": "madre", "actor": source, "table": "intents_log", "row_id": int(row_id),
             "created_at": _time(created_at)}
    return {k: v for k, v in entry.items() if v is not None}


def _action_entry(row: tuple[Any, ...]) -> dict[str, Any]:
    (row_id, module, action, reason, created_at, plan_id, intent_id, session_id, actor,
     detail_json, plan_status) = row
    entry = {"event": action, "module": module, "reason": reason or None, "plan_id": plan_id,
             "intent_id": intent_id, "session_id": session_id, "actor": actor,
             "plan_status": plan_status, "detail": json.loads(detail_json) if detail_json else None,
             "table": "madre_actions", "row_id": int(row_id), "created_at": _time(created_at)}
    return {k: v for k, v in entry.items() if v is not None}

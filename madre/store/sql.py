"""Hand-written SQL for the writes every chat makes.

peewee builds each query's SQL anew, and under load that building was a third of the Store
actor's time. The hot writes are fixed statements, so they are written here once, with the
backend's parameter style, and executed with `execute_sql`. Cold paths keep the models.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import peewee

from madre.store.db import is_sqlite

Step = tuple[str, list[Any]]  # a statement in the backend's dialect and its parameters

_STATEMENTS = {
    "retake_intent": (
        "UPDATE intents_log SET source = ?, payload_json = ?, session_id = ?, instance_id = ?,"
        " result_status = ?, notes = NULL, processed_by_madre_at = NULL"
        " WHERE intent_id = ? AND plan_id IS NULL AND result_status IN ('received', 'error')"
    ),
    "plan_intent": "UPDATE intents_log SET plan_id = ?, result_status = ? WHERE intent_id = ?",
    "close_intent": (
        "UPDATE intents_log SET result_status = ?, notes = ?, processed_by_madre_at = ?"
        " WHERE intent_id = ?"
    ),
    "insert_task": (
        "INSERT INTO tasks (uuid, name, module, action, status, created_at, updated_at, error,"
        " intent_id, session_id, source, mode, risk, wait_reason, plan_json, version, deadline,"
        " owner, epoch, lease_until)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "renew_leases": (
        "UPDATE tasks SET lease_until = ? WHERE owner = ? AND status IN ('PENDING', 'RUNNING')"
    ),

    "insert_context": (
        "INSERT INTO context (task_id, key, value, scope, created_at) VALUES (?, ?, ?, ?, ?)"
    ),
    "session_mode": (
        "SELECT value FROM context WHERE scope = ? AND key = ? ORDER BY id DESC LIMIT 1"
    ),
    "plan_row": (
        "SELECT plan_json, status, wait_reason, version, error, intent_id, session_id, source,"
        " created_at, updated_at, owner, epoch FROM tasks WHERE uuid = ?"
    ),
    "context_values": (  # of three keys at once, oldest first: the last of each key counts
        "SELECT key, value FROM context WHERE task_id = ? AND key IN (?, ?, ?) ORDER BY id"
    ),
    "active_owners": (
        "SELECT owner, MIN(lease_until) FROM tasks WHERE status IN ('PENDING', 'RUNNING')"
        " AND owner IS NOT NULL GROUP BY owner"
    ),
}


def _update_task(*, with_json: bool, with_lease: bool) -> str:
    """The conditional UPDATE of a plan's row: it lands only while the row is still at the
    version and epoch the writer read (fencing), and leaves the lease alone unless asked."""
    sets = ["status = ?", "wait_reason = ?", *(["plan_json = ?"] if with_json else []),
            "updated_at = ?", "version = ?", "error = ?", "result = ?", "owner = ?",
            "epoch = ?", *(["lease_until = ?"] if with_lease else [])]
    return f"UPDATE tasks SET {', '.join(sets)} WHERE uuid = ? AND version = ? AND epoch = ?"


for _json in (True, False):
    for _lease in (True, False):
        _STATEMENTS[f"update_task{'' if _json else '_columns'}{'_lease' if _lease else ''}"] = (
            _update_task(with_json=_json, with_lease=_lease))


class Statements:
    """The hot statements in this database's dialect, with a timestamp adapter."""

    def __init__(self, database: peewee.Database) -> None:
        self._db = database
        self._sqlite = is_sqlite(database)
        param = database.param
        self._sql = {name: sql.replace("?", param) for name, sql in _STATEMENTS.items()}

    def ts(self, moment: dt.datetime | None) -> Any:
        """A naive-UTC timestamp as the backend stores it (the text peewee writes on SQLite)."""
        if moment is None or not self._sqlite:
            return moment
        return moment.isoformat(" ")

    def sql(self, name: str) -> str:
        """Statement `name` in this database's dialect."""
        return self._sql[name]

    def run(self, name: str, params: tuple[Any, ...]) -> int:
        """Execute statement `name`; the number of rows it changed."""
        cursor = self._db.execute_sql(self._sql[name], params)
        return int(cursor.rowcount)

    def first_row(self, name: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The first row statement `name` selects, or None."""
        row = self._db.execute_sql(self._sql[name], params).fetchone()
        return tuple(row) if row else None

    def rows(self, name: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Every row statement `name` selects."""
        return [tuple(row) for row in self._db.execute_sql(self._sql[name], params).fetchall()]

    def first_value(self, name: str, params: tuple[Any, ...]) -> Any:
        """The first column of the first row statement `name` selects, or None."""
        row = self.first_row(name, params)
        return row[0] if row else None

    def insert_rows(self, name: str, rows: list[tuple[Any, ...]]) -> list[Step]:
        """INSERT statement `name` for every row, many rows to a statement (a driver's
        executemany is one round trip per row on PostgreSQL), to `run_together`."""
        head, _, group = self._sql[name].partition(" VALUES ")
        return many_rows(head, group, rows, sqlite=self._sqlite)

    def step(self, name: str, params: tuple[Any, ...]) -> Step:
        """Statement `name` with its parameters, to `run_together`."""
        return self._sql[name], list(params)

    def run_together(self, steps: list[Step]) -> int:
        """Run `steps` in order, in one round trip on PostgreSQL (a script: each round trip
        is a wait for the Store's thread) and one by one on SQLite (in-process, and sqlite3
        runs no scripts); the number of rows the last one changed. The first that fails
        raises, and the transaction it is in must roll back."""
        return int(self.script(steps).rowcount) if steps else 0

    def script(self, steps: list[Step]) -> Any:
        """Run `steps` as `run_together` does; the cursor of the last (its rows, if any)."""
        if self._sqlite or len(steps) == 1:
            for sql, params in steps:
                cursor = self._db.execute_sql(sql, params)
            return cursor
        return self._db.execute_sql("; ".join(sql for sql, _ in steps),
                                    [p for _, params in steps for p in params])


SQLITE_MAX_PARAMS = 999  # the smallest limit any SQLite build puts on one statement's parameters


def many_rows(head: str, group: str, rows: list[tuple[Any, ...]], *, sqlite: bool,
              tail: str = "") -> list[Step]:
    """`head VALUES group, group, ... tail` statements for `rows`, with their parameters: one
    on PostgreSQL, as many as SQLite's parameter limit asks for there."""
    if not rows:
        return []
    per_statement = max(1, SQLITE_MAX_PARAMS // len(rows[0])) if sqlite else len(rows)
    return [(f"{head} VALUES {', '.join([group] * len(chunk))}{tail}",
             [value for row in chunk for value in row])
            for chunk in (rows[i:i + per_statement] for i in range(0, len(rows), per_statement))]

"""The rows readers follow by id, written last in each write transaction, under one lock.

The forensic trail and the event streams read intents_log and madre_actions "after the last
id seen" (`madre.store.feed`, `madre.event_hub`). That is safe only while ids become visible
in id order: no row below a visible one may still commit. SQLite has one writer at a time,
so it holds there by itself. PostgreSQL hands an id out at INSERT and several instances
commit at once: one transaction could take id 11, another 12 and commit first, and a reader
that saw 12 would never look back for 11.

So the Store's transaction does not insert these rows as its writes ask: it keeps them here
and writes them at its very end, in one round trip that takes a transaction-level advisory
lock (held until COMMIT), sends the NOTIFY for the other instances, and then INSERTs them,
many rows to a statement. Every id of these tables is taken under the lock, and the lock is
held for that round trip and the COMMIT only. (Taken at BEGIN, it serialised the instances'
whole transactions: with two instances on one database it was what they waited on.)

A kept intents_log row takes its later updates in memory (a plan created with its intent,
an intent closed as it is recorded), so nothing has to be written early. Outside the Store's
transaction (`kept`), rows are written at once, as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import peewee

from madre.store.db import is_sqlite
from madre.store.sql import Statements, Step, many_rows

ORDER_LOCK = 0x6D61647265  # "madre": the advisory lock these tables take their ids under

INTENT_COLUMNS = ("source", "payload_json", "created_at", "result_status", "intent_id",
                  "session_id", "instance_id", "idempotency_key", "request_hash", "plan_id",
                  "notes", "processed_by_madre_at")
ACTION_COLUMNS = ("module", "action", "reason", "created_at", "plan_id", "intent_id",
                  "session_id", "actor", "detail_json", "plan_status")


@dataclasses.dataclass
class RowId:
    """The id a madre_actions row gets: known once the row is written."""

    value: int | None = None


class OrderedRows:
    """One connection's intents_log and madre_actions rows, kept until the end of the
    transaction (the Store actor's thread only)."""

    def __init__(self, database: peewee.Database, statements: Statements) -> None:
        self._statements = statements
        self._sqlite = is_sqlite(database)
        self._param = database.param
        self._keeping = False
        self._locked = False
        self._intents: dict[str, dict[str, Any]] = {}  # by intent id, in insertion order
        self._actions: list[tuple[tuple[Any, ...], RowId | None]] = []
        self._notices: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def kept(self) -> Iterator[OrderedRows]:
        """Keep the rows the block's writes ask for until `write` (called before COMMIT);
        whatever was not written when the block ends (it raised) is dropped."""
        self._clear()
        self._keeping = True
        try:
            yield self
        finally:
            self._keeping = False
            self._clear()

    # ------------------------------------------------------------------ what the writes ask

    def add_intent(self, values: dict[str, Any]) -> None:
        """An intents_log row (`INTENT_COLUMNS` as keys). A second row of one intent id
        fails as the table's unique index would fail it."""
        if values["intent_id"] in self._intents:
            raise peewee.IntegrityError(
                f"UNIQUE constraint failed: intents_log.intent_id {values['intent_id']}")
        self._intents[values["intent_id"]] = values
        if not self._keeping:
            self.write()

    def update_intent(self, intent_id: str, **values: Any) -> bool:
        """Apply an update to the kept row of `intent_id`; False when none is kept (the
        caller updates the table)."""
        row = self._intents.get(intent_id)
        if row is None:
            return False
        row.update(values)
        return True

    def holds_intent(self, intent_id: str) -> bool:
        return intent_id in self._intents

    def add_actions(self, rows: list[tuple[Any, ...]]) -> None:
        """madre_actions rows (`ACTION_COLUMNS` in order)."""
        self._add_actions([(row, None) for row in rows])

    def add_action_with_id(self, row: tuple[Any, ...]) -> RowId:
        """One madre_actions row, and the handle its id will be set on."""
        handle = RowId()
        self._add_actions([(row, handle)])
        return handle

    def _add_actions(self, rows: list[tuple[tuple[Any, ...], RowId | None]]) -> None:
        self._actions.extend(rows)
        if not self._keeping:
            self.write()

    def add_notice(self, channel: str, payload: str) -> None:
        """A NOTIFY to send with the rows (PostgreSQL delivers it at COMMIT)."""
        self._notices.append((channel, payload))
        if not self._keeping:
            self.write()

    # ------------------------------------------------------------------ writing them

    def write(self) -> None:
        """Write what is kept: the lock first (PostgreSQL, once per transaction), then the
        notices, the intents_log rows and the madre_actions rows (ids of the rows that asked
        for one last). One round trip on PostgreSQL; SQLite runs the statements one by one."""
        if not (self._intents or self._actions or self._notices):
            return
        statements: list[Step] = []
        if not self._sqlite and not self._locked and self._keeping:
            statements.append((f"SELECT pg_advisory_xact_lock({self._param})", [ORDER_LOCK]))
            self._locked = True
        statements += [(f"SELECT pg_notify({self._param}, {self._param})", [channel, payload])
                       for channel, payload in self._notices]
        intent_rows = [tuple(row[c] for c in INTENT_COLUMNS) for row in self._intents.values()]
        statements += self._inserts("intents_log", INTENT_COLUMNS, intent_rows)
        actions, self._actions = self._actions, []
        self._intents, self._notices = {}, []
        handles = [handle for _, handle in actions]
        wants_ids = any(handle is not None for handle in handles)
        statements += self._inserts("madre_actions", ACTION_COLUMNS, [row for row, _ in actions],
                                    returning=wants_ids)
        if not wants_ids:
            self._statements.script(statements)
            return
        if self._sqlite:  # one by one, each RETURNING's rows (SQLite may need several INSERTs)
            returned = [self._statements.script([step]).fetchall() for step in statements]
        else:  # one round trip: the rows are the last statement's, the INSERT's
            returned = [self._statements.script(statements).fetchall()]
        ids = sorted(int(r[0]) for rows in returned for r in rows)
        # Ids are taken in VALUES order; RETURNING's own order is not promised.
        for handle, row_id in zip(handles, ids, strict=True):
            if handle is not None:
                handle.value = row_id

    def _inserts(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]], *,
                 returning: bool = False) -> list[Step]:
        group = "(" + ", ".join([self._param] * len(columns)) + ")"
        return many_rows(f"INSERT INTO {table} ({', '.join(columns)})", group, rows,
                         sqlite=self._sqlite, tail=" RETURNING id" if returning else "")

    def _clear(self) -> None:
        self._intents, self._actions, self._notices = {}, [], []
        self._locked = False

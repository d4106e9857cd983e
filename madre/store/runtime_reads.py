"""The reads Madre's runtime makes: a plan to run, a confirmation to check, a job's plan,
the plans due to expire or left unfinished, an intent or Idempotency-Key seen before.

Each runs on any thread, in a pooled connection of its own, never in the Store actor. They
are apart from the writes (`repository`) because they share nothing with them but the
tables; the reads people make (plan lists, the plan detail, the event stream) are
`madre.store.queries`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

import peewee

from madre.model import Mode, Plan, Status, WaitReason
from madre.records import Confirmation
from madre.store.columns import (
    KEY_CONFIRM_DIGEST,
    KEY_CONFIRM_EXPIRES,
    KEY_CONFIRM_HASH,
    KEY_MODE,
    from_db_time,
    session_scope,
    to_db_time,
)
from madre.store.db import connection
from madre.store.models import Models
from madre.store.sql import Statements
from madre.store.unreadable import UnreadablePlan, stand_in_plan


class JobRow(NamedTuple):
    """Which plan and step a daughter_tasks row belongs to."""

    plan_id: str
    step_id: str


class IntentRow(NamedTuple):
    intent_id: str
    plan_id: str | None
    result_status: str
    session_id: str | None = None


class KeyRow(NamedTuple):
    """A claimed Idempotency-Key: its intent, what was asked, the first answer (None while
    the first request runs)."""

    intent_id: str
    request_hash: str | None
    answer_json: str | None


class RuntimeReads:
    """The runtime's reads of `Repository` (a mixin: it lends them the repository's
    database, models and statements, so callers keep one object to ask)."""

    database: peewee.Database
    m: Models
    sql: Statements

    def load_plan(self, plan_id: str) -> Plan | None:
        """The stored plan, or None. Raises UnreadablePlan (carrying a stand-in from the
        row's columns) when its JSON cannot be read."""
        with connection(self.database):
            row = self.sql.first_row("plan_row", (plan_id,))
        if row is None:
            return None
        plan_json, status, wait_reason, version, error, intent_id, session_id, source, \
            created_at, updated_at, owner, epoch = row
        try:
            plan = Plan.model_validate_json(plan_json or "")
        except ValueError:
            stand_in = stand_in_plan(
                plan_id, status=status, wait_reason=wait_reason, version=version, error=error,
                intent_id=intent_id, session_id=session_id, source=source,
                created_at=created_at, updated_at=updated_at)
            stand_in.owner, stand_in.epoch = owner, int(epoch or 0)
            raise UnreadablePlan(stand_in) from None
        # Who owns it is the row's to say (a claim changes the columns, not the JSON).
        plan.owner, plan.epoch = owner, int(epoch or 0)
        return plan

    def readable_plan(self, plan_id: str) -> Plan | None:
        """The stored plan, or its stand-in when its JSON cannot be read."""
        try:
            return self.load_plan(plan_id)
        except UnreadablePlan as exc:
            return exc.plan

    def confirmation(self, plan_id: str) -> Confirmation | None:
        """The confirmation issued for a plan (hash and expiry), or None if none was."""
        with connection(self.database):  # one query for the three keys
            values = dict(self.sql.rows("context_values", (
                plan_id, KEY_CONFIRM_HASH, KEY_CONFIRM_EXPIRES, KEY_CONFIRM_DIGEST)))
        stored, expires = values.get(KEY_CONFIRM_HASH), values.get(KEY_CONFIRM_EXPIRES)
        digest = values.get(KEY_CONFIRM_DIGEST)
        if stored is None:
            return None
        moment = from_db_time(expires) if expires else None
        return Confirmation(str(stored), moment or dt.datetime.max.replace(tzinfo=dt.UTC),
                            str(digest) if digest else None)

    def job(self, daughter_task_id: int) -> JobRow | None:
        """The plan and step a job was requested for, or None for an unknown job."""
        with connection(self.database):
            row = self.m.DaughterTask.get_or_none(self.m.DaughterTask.id == daughter_task_id)
        if row is None or not row.plan_id or not row.step_id:
            return None
        return JobRow(row.plan_id, row.step_id)

    def due_confirmations(self, *, now: dt.datetime, limit: int = 200
                          ) -> list[tuple[str, dt.datetime | None]]:
        """Plans waiting for a confirmation whose deadline has passed: (plan id, deadline),
        soonest first."""
        task = self.m.Task
        with connection(self.database):
            return [
                (r.uuid, from_db_time(r.deadline)) for r in task.select(task.uuid, task.deadline)
                .where((task.status == Status.WAITING.value)
                       & (task.wait_reason == WaitReason.CONFIRMATION.value)
                       & (task.deadline <= to_db_time(now)))
                .order_by(task.deadline).limit(limit)
            ]

    def unfinished_plan_ids(self) -> list[str]:
        """Plans left PENDING or RUNNING (recovery on boot)."""
        with connection(self.database):
            return [
                r.uuid
                for r in self.m.Task.select(self.m.Task.uuid)
                .where(self.m.Task.status.in_([Status.PENDING.value, Status.RUNNING.value]))
                .order_by(self.m.Task.id)
            ]

    def ended_among(self, plan_ids: Sequence[str]) -> list[str]:
        """Those of `plan_ids` that are DONE or ERROR, in one query."""
        if not plan_ids:
            return []
        task = self.m.Task
        with connection(self.database):
            return [r.uuid for r in task.select(task.uuid).where(
                task.uuid.in_(list(plan_ids))
                & task.status.in_([Status.DONE.value, Status.ERROR.value]))]

    def find_intent(self, intent_id: str) -> IntentRow | None:
        with connection(self.database):
            row = self.m.IntentLog.get_or_none(self.m.IntentLog.intent_id == intent_id)
        return IntentRow(row.intent_id, row.plan_id, row.result_status) if row else None

    def find_key(self, key_hash: str) -> KeyRow | None:
        """The intent that claimed an Idempotency-Key (by its hash), or None."""
        log = self.m.IntentLog
        with connection(self.database):
            row = log.get_or_none(log.idempotency_key == key_hash)
        return KeyRow(row.intent_id, row.request_hash, row.answer_json) if row else None

    def find_plan_by_token_hash(self, token_hash: str) -> str | None:
        """The plan a confirmation token was issued for (looked up by its hash)."""
        context = self.m.Context
        with connection(self.database):
            row = (context.select(context.task_id)
                   .where((context.key == KEY_CONFIRM_HASH) & (context.value == token_hash))
                   .first())
        return str(row.task_id_id) if row else None

    def session_mode(self, session_id: str) -> Mode | None:
        """The mode the session's newest plan ran in (sessions outlive restarts this way)."""
        with connection(self.database):
            value = self.sql.first_value("session_mode",
                                         (session_scope(session_id), KEY_MODE))
        return Mode(value) if value else None

    def count_plans(self, status: Status) -> int:
        with connection(self.database):
            return int(self.m.Task.select().where(self.m.Task.status == status.value).count())

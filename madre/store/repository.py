"""Rows in, rows out: the writes Madre makes and the reads its runtime needs.

Write methods (`record_*`, `create_plan`, `save_plan`, `close_*`, `append_audit`) are called
only by the Store actor inside its group-commit transaction, so they never open one of their
own. They decide nothing: what a plan becomes is decided above (`madre.rules`), and a save
only checks that nobody else moved the plan since it was read (`StaleWrite` otherwise).
Read methods (`load_plan`, `confirmation`, `job`, `due_confirmations`, ...) run on any
thread, each in a pooled connection of its own. The reads people make (plan lists, the plan
detail, the event stream) are `madre.store.queries`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import peewee

from madre.errors import DuplicateIntent, StaleWrite
from madre.model import Mode, Plan, Status, WaitReason, utcnow
from madre.records import AuditRow, Confirmation, IntentClose, IntentRecord, JobRequest
from madre.store.columns import (
    KEY_CONFIRM_EXPIRES,
    KEY_CONFIRM_HASH,
    KEY_CONFIRMED_AT,
    KEY_INTENT,
    KEY_MODE,
    SCOPE_GLOBAL,
    clip,
    from_db_time,
    session_scope,
    to_db_time,
)
from madre.store.db import connection
from madre.store.models import Models, naive_utcnow
from madre.store.sql import Statements

UNREADABLE_WARNING = "stored_plan_unreadable"


class UnreadablePlan(Exception):  # noqa: N818 - names what was found, like KeyError
    """The stored plan_json cannot be read. `plan` is a stand-in built from the row's columns
    (no steps): it can still be shown, and ended, without touching the unreadable JSON."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(f"the stored plan {plan.plan_id} cannot be read (corrupt plan_json)")
        self.plan = plan


class JobRow(NamedTuple):
    """Which plan and step a daughter_tasks row belongs to."""

    plan_id: str
    step_id: str


class IntentRow(NamedTuple):
    intent_id: str
    plan_id: str | None
    result_status: str


class Repository:
    """Queries over one database and its models."""

    def __init__(self, database: peewee.Database, models: Models) -> None:
        self.database = database
        self.m = models
        self.sql = Statements(database)

    # ------------------------------------------------------------------ writes (Store actor)

    def record_intent(self, intent: IntentRecord) -> int | None:
        """INSERT the intents_log row of a new intent (status `received`). A second row with
        the same intent id raises peewee.IntegrityError.

        A `retake` takes over the row of an earlier attempt that made no plan (closed error,
        or left received by a crash) instead; DuplicateIntent when that row has a plan or a
        denial by now (another attempt won meanwhile)."""
        if intent.retake:
            if self.sql.run("retake_intent", (
                    clip(intent.source, 64), json.dumps(intent.payload, default=str),
                    intent.session_id, "received", intent.intent_id)) != 1:
                raise DuplicateIntent(f"intent {intent.intent_id} was taken by another attempt")
            return None
        return self.sql.insert_returning_id("insert_intent", (
            clip(intent.source, 64), json.dumps(intent.payload, default=str),
            self.sql.ts(naive_utcnow()), "received", intent.intent_id, intent.session_id,
        ))

    def create_plan(self, plan: Plan, *, audit: Sequence[AuditRow],
                    confirmation: Confirmation | None, close: IntentClose | None) -> None:
        """INSERT the tasks row and its context rows, mark the intent planned (then `close`
        it), append `audit`."""
        now = self.sql.ts(naive_utcnow())
        self.sql.run("insert_task", (
            plan.plan_id, "madre_plan", "madre",
            clip(plan.dsl.action if plan.dsl else "plan", 100), plan.status.value,
            self.sql.ts(to_db_time(plan.created_at)), now,
            plan.reason if plan.status is Status.ERROR else None, plan.intent_id,
            plan.session_id, plan.source, plan.mode.value, plan.risk.value,
            plan.wait_reason.value if plan.wait_reason else None, plan.model_dump_json(),
            plan.version,
            self.sql.ts(to_db_time(confirmation.expires_at)) if confirmation else None,
        ))
        rows = [
            (plan.plan_id, KEY_INTENT, plan.intent_id, SCOPE_GLOBAL, now),
            (plan.plan_id, KEY_MODE, plan.mode.value, session_scope(plan.session_id), now),
        ]
        if confirmation is not None:
            rows.append((plan.plan_id, KEY_CONFIRM_HASH, confirmation.token_hash, SCOPE_GLOBAL,
                         now))
            rows.append((plan.plan_id, KEY_CONFIRM_EXPIRES, confirmation.expires_at.isoformat(),
                         SCOPE_GLOBAL, now))
        self.sql.run_many("insert_context", rows)
        self.sql.run("plan_intent", (plan.plan_id, "planned", plan.intent_id))
        if close is not None:
            self.close_intent(close)
        self.append_audit(audit)

    def save_plan(self, plan: Plan, *, expected_version: int, audit: Sequence[AuditRow] = (),
                  close: IntentClose | None = None, job: JobRequest | None = None,
                  confirmed_at: dt.datetime | None = None, keep_stored_json: bool = False
                  ) -> Plan:
        """UPDATE the tasks row if it is still at `expected_version`; with it, request `job`
        (its daughter_tasks id goes into the step's result), `close` the intent, note when a
        confirmation was used, append `audit`. Returns the plan as saved (version + 1).

        Raises StaleWrite when the stored row moved on: the caller must read it again, never
        overwrite. `keep_stored_json` leaves plan_json as it is (a plan whose JSON could not
        be read ends by its columns, and the unreadable text stays for people to look at).
        """
        saved = plan.model_copy(update={"version": expected_version + 1})
        if job is not None:
            self._request_job(saved, job)
        final = saved.status in (Status.DONE, Status.ERROR)
        columns = (saved.status.value, saved.wait_reason.value if saved.wait_reason else None)
        tail = (self.sql.ts(naive_utcnow()), saved.version,
                saved.reason if saved.status is Status.ERROR else None,
                _final_result(saved) if final else None, plan.plan_id, expected_version)
        if keep_stored_json:
            updated = self.sql.run("update_task_columns", (*columns, *tail))
        else:
            updated = self.sql.run("update_task", (*columns, saved.model_dump_json(), *tail))
        if updated != 1:
            raise StaleWrite(plan.plan_id, expected_version)
        if close is not None:
            self.close_intent(close)
        if confirmed_at is not None:
            self.sql.run_many("insert_context", [(plan.plan_id, KEY_CONFIRMED_AT,
                                                  confirmed_at.isoformat(), SCOPE_GLOBAL,
                                                  self.sql.ts(naive_utcnow()))])
        self.append_audit(audit)
        return saved

    def _request_job(self, plan: Plan, job: JobRequest) -> None:
        """INSERT the daughter_tasks row a SPAWNER_REQUEST step asks for; note its id."""
        row = self.m.DaughterTask.create(
            intent_id=plan.intent_id,
            source="madre",
            priority=3,
            status="pending",
            task_type=clip(job.task_type, 50),
            description=job.description,
            metadata_json=json.dumps(
                {"plan_id": plan.plan_id, "step_id": job.step_id, "intent_id": plan.intent_id,
                 "params": job.params},
                default=str,
            ),
            plan_json=json.dumps({"plan_id": plan.plan_id, "step": {"id": job.step_id}}),
            plan_id=plan.plan_id,
            step_id=job.step_id,
        )
        for step in plan.steps:
            if step.step_id == job.step_id:
                step.result = {"daughter_task_id": int(row.id), "status": "requested"}

    def close_intent(self, close: IntentClose) -> None:
        """UPDATE the intents_log row with how it ends (or stands)."""
        self.sql.run("close_intent", (close.result_status, close.notes,
                                      self.sql.ts(naive_utcnow()), close.intent_id))

    def append_audit(self, rows: Sequence[AuditRow]) -> None:
        """INSERT madre_actions rows (append-only)."""
        now = self.sql.ts(naive_utcnow())
        self.sql.run_many("insert_action", [self._audit_values(r, now) for r in rows])

    def append_audit_returning_id(self, row: AuditRow) -> int:
        """INSERT one madre_actions row and return its id (the `action_id` of an answer)."""
        return self.sql.insert_returning_id(
            "insert_action", self._audit_values(row, self.sql.ts(naive_utcnow())))

    @staticmethod
    def _audit_values(r: AuditRow, now: Any) -> tuple[Any, ...]:
        return (
            clip(r.module, 64), clip(r.action, 64), clip(r.reason), now, r.plan_id,
            r.intent_id, r.session_id, clip(r.actor, 64) if r.actor else None,
            json.dumps(r.detail, default=str) if r.detail else None, r.plan_status,
        )

    def close_orphan_intents(self, *, before: dt.datetime) -> int:
        """Close as ERROR the intents recorded before `before` whose plan was never created
        (Madre stopped between the two): none is left open."""
        return int(
            self.m.IntentLog.update(
                result_status="error",
                notes="interrupted: Madre stopped before a plan was created",
                processed_by_madre_at=naive_utcnow(),
            ).where(
                (self.m.IntentLog.result_status == "received")
                & (self.m.IntentLog.plan_id.is_null())
                & (self.m.IntentLog.created_at < to_db_time(before))
            ).execute()
        )

    # ------------------------------------------------------------------ reads (any thread)

    def load_plan(self, plan_id: str) -> Plan | None:
        """The stored plan, or None. Raises UnreadablePlan (carrying a stand-in from the
        row's columns) when its JSON cannot be read."""
        with connection(self.database):
            row = self.sql.first_row("plan_row", (plan_id,))
        if row is None:
            return None
        plan_json, status, wait_reason, version, error, intent_id, session_id, source, \
            created_at, updated_at = row
        try:
            return Plan.model_validate_json(plan_json or "")
        except ValueError:
            raise UnreadablePlan(stand_in_plan(
                plan_id, status=status, wait_reason=wait_reason, version=version, error=error,
                intent_id=intent_id, session_id=session_id, source=source,
                created_at=created_at, updated_at=updated_at)) from None

    def readable_plan(self, plan_id: str) -> Plan | None:
        """The stored plan, or its stand-in when its JSON cannot be read."""
        try:
            return self.load_plan(plan_id)
        except UnreadablePlan as exc:
            return exc.plan

    def confirmation(self, plan_id: str) -> Confirmation | None:
        """The confirmation issued for a plan (hash and expiry), or None if none was."""
        with connection(self.database):
            stored = self.sql.first_value("context_value", (plan_id, KEY_CONFIRM_HASH))
            expires = self.sql.first_value("context_value", (plan_id, KEY_CONFIRM_EXPIRES))
        if stored is None:
            return None
        moment = from_db_time(expires) if expires else None
        return Confirmation(str(stored), moment or dt.datetime.max.replace(tzinfo=dt.UTC))

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

    def find_intent(self, intent_id: str) -> IntentRow | None:
        with connection(self.database):
            row = self.m.IntentLog.get_or_none(self.m.IntentLog.intent_id == intent_id)
        return IntentRow(row.intent_id, row.plan_id, row.result_status) if row else None

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


def stand_in_plan(plan_id: str, *, status: str | None, wait_reason: str | None,
                  version: int | None, error: str | None, intent_id: str | None,
                  session_id: str | None, source: str | None, created_at: Any,
                  updated_at: Any) -> Plan:
    """A plan built from a tasks row's columns when its JSON cannot be read: no steps, a
    warning that says so; enough to show it, and to end it through the usual transitions."""
    known = _status_or_error(status)
    try:
        why = WaitReason(wait_reason) if known is Status.WAITING and wait_reason else None
    except ValueError:
        why = None
    if known is Status.WAITING and why is None:
        known = Status.ERROR  # a wait without a reason is not one any transition can end
    return Plan(
        plan_id=plan_id, intent_id=intent_id or "", session_id=session_id or "",
        source=source or "unknown", status=known, wait_reason=why,
        reason=error or ("the stored plan cannot be read (corrupt plan_json)"
                         if known is Status.ERROR else None),
        created_at=from_db_time(created_at) or utcnow(),
        updated_at=from_db_time(updated_at) or utcnow(),
        version=int(version or 0), warnings=[UNREADABLE_WARNING],
    )


def _status_or_error(value: str | None) -> Status:
    try:
        return Status(str(value).upper())
    except ValueError:
        return Status.ERROR


def _final_result(plan: Plan) -> str:
    return json.dumps(
        {
            "status": plan.status.value,
            "reason": plan.reason,
            "steps": [
                {"type": s.type, "status": s.status.value, "result": s.result, "error": s.error}
                for s in plan.steps
            ],
        },
        default=str,
    )


def stamp(rows: Sequence[AuditRow], status: Status | None) -> tuple[AuditRow, ...]:
    """Audit rows as written with a plan: each carries the plan's status once saved (the
    event stream filters on it)."""
    if status is None:
        return tuple(rows)
    return tuple(dataclasses.replace(r, plan_status=status.value) for r in rows)

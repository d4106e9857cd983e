"""Rows in, rows out: the writes Madre makes.

Write methods (`record_*`, `create_plan`, `save_plan`, `close_*`, `append_audit`) are called
only by the Store actor inside its group-commit transaction, so they never open one of their
own. They decide nothing: what a plan becomes is decided above (`madre.rules`), and a save
only checks that nobody else moved the plan since it was read (`StaleWrite` otherwise).

`Repository` is also the one object the rest of Madre asks for the reads its runtime needs
(`load_plan`, `confirmation`, `job`, ...: `madre.store.runtime_reads`) and for leases and
instances (`madre.store.leases`); those live in modules of their own and are mixed in. The
reads people make (plan lists, the plan detail, the event stream) are `madre.store.queries`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import peewee

from madre.errors import DuplicateIntent, StaleWrite
from madre.model import Plan, Status
from madre.records import AuditRow, Confirmation, IntentClose, IntentRecord, JobRequest
from madre.store.columns import (
    KEY_CONFIRM_DIGEST,
    KEY_CONFIRM_EXPIRES,
    KEY_CONFIRM_HASH,
    KEY_CONFIRMED_AT,
    KEY_INTENT,
    KEY_MODE,
    SCOPE_GLOBAL,
    clip,
    session_scope,
    to_db_time,
)
from madre.store.leases import Leases
from madre.store.models import Models, naive_utcnow
from madre.store.ordered import OrderedRows, RowId
from madre.store.runtime_reads import RuntimeReads
from madre.store.sql import Statements, Step


class Repository(Leases, RuntimeReads):
    """Queries over one database and its models."""

    def __init__(self, database: peewee.Database, models: Models, *,
                 instance_id: str | None = None) -> None:
        self.database = database
        self.m = models
        self.sql = Statements(database)
        # intents_log and madre_actions rows, kept to the end of the Store's transaction
        self.ordered = OrderedRows(database, self.sql)
        self.instance_id = instance_id  # owner of the plans this Madre creates and wakes

    # ------------------------------------------------------------------ writes (Store actor)

    def record_intent(self, intent: IntentRecord) -> None:
        """INSERT the intents_log row of a new intent (status `received`). A second row with
        the same intent id raises peewee.IntegrityError.

        A `retake` takes over the row of an earlier attempt that made no plan (closed error,
        or left received by a crash) instead; DuplicateIntent when that row has a plan or a
        denial by now (another attempt won meanwhile)."""
        if intent.retake:
            self._written(intent.intent_id)
            if self.sql.run("retake_intent", (
                    clip(intent.source, 64), json.dumps(intent.payload, default=str),
                    intent.session_id, self.instance_id, "received", intent.intent_id)) != 1:
                raise DuplicateIntent(f"intent {intent.intent_id} was taken by another attempt")
            return
        self.ordered.add_intent({
            "source": clip(intent.source, 64),
            "payload_json": json.dumps(intent.payload, default=str),
            "created_at": self.sql.ts(naive_utcnow()), "result_status": "received",
            "intent_id": intent.intent_id, "session_id": intent.session_id,
            "instance_id": self.instance_id, "idempotency_key": intent.idempotency_key,
            "request_hash": intent.request_hash, "plan_id": None, "notes": None,
            "processed_by_madre_at": None})

    def _written(self, intent_id: str) -> None:
        """Write the kept rows now if `intent_id` is one of them: the next statement must
        find its row in the table."""
        if self.ordered.holds_intent(intent_id):
            self.ordered.write()

    def remember_answer(self, intent_id: str, answer_json: str) -> None:
        """Keep the first answer to a keyed request, to replay it."""
        self._written(intent_id)
        self.m.IntentLog.update(answer_json=answer_json).where(
            self.m.IntentLog.intent_id == intent_id).execute()

    def release_key(self, intent_id: str) -> None:
        """Let a keyed request that failed be tried again: its key is claimed no more."""
        self._written(intent_id)
        self.m.IntentLog.update(idempotency_key=None).where(
            self.m.IntentLog.intent_id == intent_id).execute()

    def create_plan(self, plan: Plan, *, audit: Sequence[AuditRow],
                    confirmation: Confirmation | None, close: IntentClose | None,
                    lease_until: dt.datetime | None = None) -> None:
        """INSERT the tasks row and its context rows, mark the intent planned (then `close`
        it), append `audit`. A plan that must run comes with its owner and epoch (the
        instance that will start it) and is leased until `lease_until`, so no other instance
        takes it meanwhile."""
        now = self.sql.ts(naive_utcnow())
        steps = [self.sql.step("insert_task", (
            plan.plan_id, "madre_plan", "madre",
            clip(plan.dsl.action if plan.dsl else "plan", 100), plan.status.value,
            self.sql.ts(to_db_time(plan.created_at)), now,
            plan.reason if plan.status is Status.ERROR else None, plan.intent_id,
            plan.session_id, plan.source, plan.mode.value, plan.risk.value,
            plan.wait_reason.value if plan.wait_reason else None, plan.model_dump_json(),
            plan.version,
            self.sql.ts(to_db_time(confirmation.expires_at)) if confirmation else None,
            plan.owner, plan.epoch,
            self.sql.ts(to_db_time(lease_until)) if plan.active and lease_until else None,
        ))]
        rows = [
            (plan.plan_id, KEY_INTENT, plan.intent_id, SCOPE_GLOBAL, now),
            (plan.plan_id, KEY_MODE, plan.mode.value, session_scope(plan.session_id), now),
        ]
        if confirmation is not None:
            rows.append((plan.plan_id, KEY_CONFIRM_HASH, confirmation.token_hash, SCOPE_GLOBAL,
                         now))
            rows.append((plan.plan_id, KEY_CONFIRM_EXPIRES, confirmation.expires_at.isoformat(),
                         SCOPE_GLOBAL, now))
            if confirmation.plan_digest:
                rows.append((plan.plan_id, KEY_CONFIRM_DIGEST, confirmation.plan_digest,
                             SCOPE_GLOBAL, now))
        steps += self.sql.insert_rows("insert_context", rows)
        if not self.ordered.update_intent(plan.intent_id, plan_id=plan.plan_id,
                                          result_status="planned"):
            steps.append(self.sql.step("plan_intent", (plan.plan_id, "planned", plan.intent_id)))
        if close is not None:
            steps += self._closing(close)
        self.sql.run_together(steps)
        self.append_audit(audit)

    def save_plan(self, plan: Plan, *, expected_version: int, expected_epoch: int | None = None,
                  audit: Sequence[AuditRow] = (), close: IntentClose | None = None,
                  job: JobRequest | None = None, confirmed_at: dt.datetime | None = None,
                  keep_stored_json: bool = False, lease_until: dt.datetime | None = None
                  ) -> Plan:
        """UPDATE the tasks row if it is still at `expected_version` and `expected_epoch`
        (the plan's own epoch unless given: a writer from an older owner writes nothing);
        with it, request `job` (its daughter_tasks id goes into the step's result), `close`
        the intent, note when a confirmation was used, append `audit`. Returns the plan as
        saved (version + 1).

        A plan that rests (WAITING, DONE, ERROR) has no owner and no lease. One that runs
        keeps its owner; with `lease_until` (a command woke it: the new epoch is the plan's)
        it is leased anew.

        Raises StaleWrite when the stored row moved on: the caller must read it again, never
        overwrite. `keep_stored_json` leaves plan_json as it is (a plan whose JSON could not
        be read ends by its columns, and the unreadable text stays for people to look at).
        """
        epoch = plan.epoch if expected_epoch is None else expected_epoch
        saved = plan.model_copy(update={"version": expected_version + 1})
        if not saved.active:
            saved.owner, lease_until = None, None
        if job is not None:
            self._request_job(saved, job)
        final = saved.status in (Status.DONE, Status.ERROR)
        sets_lease = lease_until is not None or not saved.active
        values: list[Any] = [saved.status.value,
                             saved.wait_reason.value if saved.wait_reason else None]
        if not keep_stored_json:
            values.append(saved.model_dump_json())
        values += [self.sql.ts(naive_utcnow()), saved.version,
                   saved.reason if saved.status is Status.ERROR else None,
                   _final_result(saved) if final else None, saved.owner, saved.epoch]
        if sets_lease:
            values.append(self.sql.ts(to_db_time(lease_until)) if lease_until else None)
        statement = ("update_task" + ("_columns" if keep_stored_json else "")
                     + ("_lease" if sets_lease else ""))
        # What goes with the save first and the conditional UPDATE last, in one round trip:
        # its row count is the one the script answers with. A stale save raises, and the
        # Store's transaction rolls back what went before it.
        steps = self._closing(close) if close is not None else []
        if confirmed_at is not None:
            steps += self.sql.insert_rows("insert_context", [(
                plan.plan_id, KEY_CONFIRMED_AT, confirmed_at.isoformat(), SCOPE_GLOBAL,
                self.sql.ts(naive_utcnow()))])
        steps.append(self.sql.step(statement, (*values, plan.plan_id, expected_version, epoch)))
        if self.sql.run_together(steps) != 1:
            raise StaleWrite(plan.plan_id, expected_version)
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
        self.sql.run_together(self._closing(close))

    def _closing(self, close: IntentClose) -> list[Step]:
        """The statement that closes an intent; none when its row is still kept (it takes
        the close in memory)."""
        now = self.sql.ts(naive_utcnow())
        if self.ordered.update_intent(close.intent_id, result_status=close.result_status,
                                      notes=close.notes, processed_by_madre_at=now):
            return []
        return [self.sql.step("close_intent", (close.result_status, close.notes, now,
                                               close.intent_id))]

    def append_audit(self, rows: Sequence[AuditRow]) -> None:
        """INSERT madre_actions rows (append-only)."""
        if rows:
            now = self.sql.ts(naive_utcnow())
            self.ordered.add_actions([self._audit_values(r, now) for r in rows])

    def append_audit_returning_id(self, row: AuditRow) -> RowId:
        """INSERT one madre_actions row; its id (the `action_id` of an answer) is set on the
        handle once the row is written (at the end of the Store's transaction)."""
        return self.ordered.add_action_with_id(
            self._audit_values(row, self.sql.ts(naive_utcnow())))

    @staticmethod
    def _audit_values(r: AuditRow, now: Any) -> tuple[Any, ...]:
        return (
            clip(r.module, 64), clip(r.action, 64), clip(r.reason), now, r.plan_id,
            r.intent_id, r.session_id, clip(r.actor, 64) if r.actor else None,
            json.dumps(r.detail, default=str) if r.detail else None, r.plan_status,
        )


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
    event stream filters on it), unless it was stamped already (a plan created running:
    its creation's rows say PENDING, what it was when they happened)."""
    if status is None:
        return tuple(rows)
    return tuple(r if r.plan_status else dataclasses.replace(r, plan_status=status.value)
                 for r in rows)

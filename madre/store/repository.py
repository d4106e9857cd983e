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
    KEY_CONFIRM_DIGEST,
    KEY_CONFIRM_EXPIRES,
    KEY_CONFIRM_HASH,
    KEY_CONFIRMED_AT,
    KEY_INTENT,
    KEY_INSTANCE,
    KEY_MODE,
    SCOPE_GLOBAL,
    SCOPE_INSTANCE,
    clip,
    from_db_time,
    session_scope,
    to_db_time,
)
from madre.store.db import connection, is_sqlite
from madre.store.models import Models, naive_utcnow
from madre.store.sql import Statements

UNREADABLE_WARNING = "stored_plan_unreadable"
NOTIFY_CHANNEL = "madre"


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
    session_id: str | None = None


class KeyRow(NamedTuple):
    """A claimed Idempotency-Key: its intent, what was asked, the first answer (None while
    the first request runs)."""

    intent_id: str
    request_hash: str | None
    answer_json: str | None


class Repository:
    """Queries over one database and its models."""

    def __init__(self, database: peewee.Database, models: Models, *,
                 instance_id: str | None = None) -> None:
        self.database = database
        self.m = models
        self.sql = Statements(database)
        self.instance_id = instance_id  # owner of the plans this Madre creates and wakes

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
                    intent.session_id, self.instance_id, "received", intent.intent_id)) != 1:
                raise DuplicateIntent(f"intent {intent.intent_id} was taken by another attempt")
            return None
        return self.sql.insert_returning_id("insert_intent", (
            clip(intent.source, 64), json.dumps(intent.payload, default=str),
            self.sql.ts(naive_utcnow()), "received", intent.intent_id, intent.session_id,
            self.instance_id, intent.idempotency_key, intent.request_hash,
        ))

    def remember_answer(self, intent_id: str, answer_json: str) -> None:
        """Keep the first answer to a keyed request, to replay it."""
        self.m.IntentLog.update(answer_json=answer_json).where(
            self.m.IntentLog.intent_id == intent_id).execute()

    def release_key(self, intent_id: str) -> None:
        """Let a keyed request that failed be tried again: its key is claimed no more."""
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
        self.sql.run("insert_task", (
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
            if confirmation.plan_digest:
                rows.append((plan.plan_id, KEY_CONFIRM_DIGEST, confirmation.plan_digest,
                             SCOPE_GLOBAL, now))
        self.sql.run_many("insert_context", rows)
        self.sql.run("plan_intent", (plan.plan_id, "planned", plan.intent_id))
        if close is not None:
            self.close_intent(close)
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
        updated = self.sql.run(statement, (*values, plan.plan_id, expected_version, epoch))
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

    # ------------------------------------------------------------------ leases and instances

    def renew_leases(self, owner: str, *, lease_until: dt.datetime) -> set[str]:
        """Extend the lease of every plan `owner` runs; the ids of the plans it still owns."""
        cursor = self.database.execute_sql(
            self.sql.sql("renew_leases") + " RETURNING uuid",
            (self.sql.ts(to_db_time(lease_until)), owner))
        return {str(r[0]) for r in cursor.fetchall()}

    def plan_ids_owned(self, owner: str) -> set[str]:
        """The plans that must run which `owner` holds (read inside a write)."""
        task = self.m.Task
        return {r.uuid for r in task.select(task.uuid).where(
            (task.owner == owner)
            & task.status.in_([Status.PENDING.value, Status.RUNNING.value]))}

    def claim_plans(self, owner: str, *, now: dt.datetime, lease_until: dt.datetime,
                    dead_owners: Sequence[str] = (), limit: int = 100) -> list[tuple[str, int]]:
        """Take over plans that must run and have no live owner: none, a lease that ran out,
        or an owner known dead. Each claim makes `owner` the plan's new owner with the next
        epoch, so whatever the old owner still writes for it changes nothing. On PostgreSQL
        the rows are locked with SKIP LOCKED: two instances claiming at once never take the
        same plan. (plan id, epoch) of each plan claimed."""
        param = self.database.param
        dead = list(dead_owners)
        dead_clause = (f" OR owner IN ({', '.join([param] * len(dead))})" if dead else "")
        lock = "" if is_sqlite(self.database) else " FOR UPDATE SKIP LOCKED"
        sql = (
            f"UPDATE tasks SET owner = {param}, epoch = epoch + 1, lease_until = {param}"
            " WHERE id IN (SELECT id FROM tasks WHERE status IN ('PENDING', 'RUNNING')"
            f" AND (owner IS NULL OR owner <> {param})"
            f" AND (owner IS NULL OR lease_until IS NULL OR lease_until < {param}{dead_clause})"
            f" ORDER BY id LIMIT {param}{lock}) RETURNING uuid, epoch"
        )
        cursor = self.database.execute_sql(sql, (
            owner, self.sql.ts(to_db_time(lease_until)), owner,
            self.sql.ts(to_db_time(now)), *dead, limit))
        return [(str(r[0]), int(r[1])) for r in cursor.fetchall()]

    def notify(self, sender: str, settled: Sequence[str]) -> None:
        """NOTIFY the other instances (PostgreSQL; delivered when this transaction commits):
        that events were recorded, and which plans came to rest. A payload holds at most
        100 plan ids (PostgreSQL caps one at 8000 bytes): more take more notices."""
        chunks = [list(settled[i:i + 100]) for i in range(0, len(settled), 100)] or [[]]
        for chunk in chunks:
            self.database.execute_sql("SELECT pg_notify(%s, %s)", (
                NOTIFY_CHANNEL, json.dumps({"from": sender, "settled": chunk})))

    def release_leases(self, owner: str) -> int:
        """A stopping instance lets its running plans go: any live instance may take them
        at once instead of waiting for their leases to run out."""
        return int(self.m.Task.update(lease_until=None).where(
            (self.m.Task.owner == owner)
            & self.m.Task.status.in_([Status.PENDING.value, Status.RUNNING.value])).execute())

    def save_instance(self, instance_id: str, value: str, *, new: bool,
                      scope: str = SCOPE_INSTANCE) -> None:
        """Write an instance's liveness row (a `context` row of no plan); `scope` moves it
        (a dead instance's row leaves the live ones, so they stay few to read)."""
        context = self.m.Context
        key = f"{KEY_INSTANCE}{instance_id}"
        if not new and context.update(value=value, scope=scope).where(
                (context.key == key) & context.scope.in_([SCOPE_INSTANCE, scope])).execute():
            return
        context.insert(task_id=None, key=key, value=value, scope=scope,
                       created_at=naive_utcnow()).execute()

    def close_orphan_intents_of(self, instance_ids: Sequence[str], *, before: dt.datetime,
                                include_unowned: bool) -> list[IntentRow]:
        """Close as ERROR the intents that the given (dead) instances took in and never
        planned; with `include_unowned`, also those no instance is named on (recorded by a
        Madre from before instances). The rows closed."""
        log_ = self.m.IntentLog
        whose = log_.instance_id.in_(list(instance_ids)) if instance_ids else None
        if include_unowned:
            whose = log_.instance_id.is_null() if whose is None else (
                whose | log_.instance_id.is_null())
        if whose is None:
            return []
        where = ((log_.result_status == "received") & log_.plan_id.is_null()
                 & (log_.created_at < to_db_time(before)) & whose)
        query = log_.select(log_.intent_id, log_.session_id).where(where)
        if not is_sqlite(self.database):
            # Two survivors may bury one instance at once: the second waits for the first's
            # commit, then finds those rows closed (not `received`) and audits nothing twice.
            query = query.for_update()
        rows = [IntentRow(r.intent_id, None, "error", r.session_id) for r in query]
        if rows:
            log_.update(result_status="error",
                        notes="interrupted: Madre stopped before a plan was created",
                        processed_by_madre_at=naive_utcnow()).where(
                log_.intent_id.in_([r.intent_id for r in rows])).execute()
        return rows

    # ------------------------------------------------------------------ reads (any thread)

    def instances(self, *, scope: str = SCOPE_INSTANCE) -> list[tuple[str, str]]:
        """(instance id, liveness JSON) of the instances not buried yet (or of `scope`)."""
        context = self.m.Context
        with connection(self.database):
            return [(r.key[len(KEY_INSTANCE):], r.value) for r in
                    context.select(context.key, context.value)
                    .where(context.scope == scope).order_by(context.id)]

    def active_owners(self) -> list[tuple[str, dt.datetime | None]]:
        """Each instance that owns plans which must run, with the soonest of their leases."""
        with connection(self.database):
            rows = self.database.execute_sql(self.sql.sql("active_owners")).fetchall()
        return [(str(owner), from_db_time(lease)) for owner, lease in rows]


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
        with connection(self.database):
            stored = self.sql.first_value("context_value", (plan_id, KEY_CONFIRM_HASH))
            expires = self.sql.first_value("context_value", (plan_id, KEY_CONFIRM_EXPIRES))
            digest = self.sql.first_value("context_value", (plan_id, KEY_CONFIRM_DIGEST))
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
    event stream filters on it), unless it was stamped already (a plan created running:
    its creation's rows say PENDING, what it was when they happened)."""
    if status is None:
        return tuple(rows)
    return tuple(r if r.plan_status else dataclasses.replace(r, plan_status=status.value)
                 for r in rows)

"""Every query Madre makes, one documented method each; contracts in, contracts out.

Write methods (`record_*`, `create_*`, `save_*`, `consume_*`, `append_*`) are called only
by the Store actor inside its group-commit transaction, so they never open one of their own.
Read methods (`get_*`, `list_*`, `find_*`, `session_mode`) run anywhere, each in a pooled
connection of its own.
"""

from __future__ import annotations

import base64
import hashlib
import dataclasses
import datetime as dt
import json
from typing import Any

import peewee

from madre.rules import lifecycle
from madre.contracts import (
    Event,
    AuditEntry,
    ConfirmationState,
    IntentView,
    Mode,
    Plan,
    PlanDetail,
    PlanList,
    PlanSummary,
    Provider,
    Risk,
    Status,
    WaitReason,
    utcnow,
)
from madre.errors import BadRequest, IllegalTransition
from madre.rules.tokens import token_matches
from madre.store.db import connection
from madre.store.models import Models, naive_utcnow
from madre.store.sql import Statements

KEY_INTENT = "madre:intent_id"
KEY_MODE = "madre:mode"
KEY_CONFIRM_HASH = "madre:confirm_hash"
KEY_CONFIRM_EXPIRES = "madre:confirm_expires_at"
KEY_CONFIRMED_AT = "madre:confirmed_at"


@dataclasses.dataclass(frozen=True)
class AuditRow:
    """One madre_actions row to append. Never carries a token in clear."""

    action: str
    reason: str = ""
    module: str = "madre"
    plan_id: str | None = None
    intent_id: str | None = None
    session_id: str | None = None
    actor: str | None = None
    detail: dict[str, Any] | None = None
    plan_status: str | None = None


@dataclasses.dataclass(frozen=True)
class IntentClose:
    """How an intents_log row ends: its result_status and a note for people."""

    intent_id: str
    result_status: str
    notes: str | None = None


@dataclasses.dataclass(frozen=True)
class Confirmation:
    token_hash: str
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class ConfirmOutcome:
    """The result of one confirmation attempt, decided in one write transaction."""

    verdict: str  # "confirmed" | "unknown" | "not_waiting" | "invalid" | "expired"
    plan: Plan | None = None
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """What a Spawner's report about a job did, decided in one write transaction."""

    verdict: str  # "resumed" | "failed" | "duplicate" | "unknown"
    plan: Plan | None = None
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class IntentRecord:
    intent_id: str
    plan_id: str | None
    result_status: str


def session_scope(session_id: str) -> str:
    """The context.scope (50 characters) of a session; long ids are hashed, never cut, so two
    sessions can never share a scope."""
    scope = f"session:{session_id}"
    if len(scope) <= 50:
        return scope
    return "session#" + hashlib.sha256(session_id.encode()).hexdigest()[:42]


def to_db_time(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def from_db_time(value: dt.datetime | str | None) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _clip(text: str | None, limit: int = 255) -> str:
    return (text or "")[:limit]


class Repository:
    """Queries over one database and its models."""

    def __init__(self, database: peewee.Database, models: Models) -> None:
        self.database = database
        self.m = models
        self.sql = Statements(database)
        self._trail: list[dict[str, Any]] = []  # forensic records of the open transaction

    # ------------------------------------------------------------------ writes (Store actor)

    def record_intent(
        self, *, intent_id: str, source: str, payload: dict[str, Any], session_id: str | None
    ) -> int:
        """INSERT the intents_log row of a new intent (status `received`)."""
        self._trail.append({"event": "intent_received", "intent_id": intent_id,
                            "session_id": session_id, "module": "madre", "actor": source})
        return self.sql.insert_returning_id("insert_intent", (
            _clip(source, 64), json.dumps(payload, default=str), self.sql.ts(naive_utcnow()),
            "received", intent_id, session_id,
        ))

    def create_plan(
        self,
        plan: Plan,
        *,
        confirmation: Confirmation | None,
        audit: list[AuditRow],
        close: IntentClose | None = None,
    ) -> Plan:
        """INSERT the tasks row and its context rows, mark the intent planned, audit."""
        now = self.sql.ts(naive_utcnow())
        self.sql.run("insert_task", (
            plan.plan_id, "madre_plan", "madre",
            _clip(plan.dsl.action if plan.dsl else "plan", 100), plan.status.value,
            self.sql.ts(to_db_time(plan.created_at)), now,
            plan.reason if plan.status is Status.ERROR else None, plan.intent_id,
            plan.session_id, plan.source, plan.mode.value, plan.risk.value,
            plan.wait_reason.value if plan.wait_reason else None, plan.model_dump_json(),
            plan.version,
            self.sql.ts(to_db_time(confirmation.expires_at)) if confirmation else None,
        ))
        rows = [
            (plan.plan_id, KEY_INTENT, plan.intent_id, "global", now),
            (plan.plan_id, KEY_MODE, plan.mode.value, session_scope(plan.session_id), now),
        ]
        if confirmation is not None:
            rows.append((plan.plan_id, KEY_CONFIRM_HASH, confirmation.token_hash, "global", now))
            rows.append((plan.plan_id, KEY_CONFIRM_EXPIRES, confirmation.expires_at.isoformat(),
                         "global", now))
        self.sql.run_many("insert_context", rows)
        self.sql.run("plan_intent", (plan.plan_id, "planned", plan.intent_id))
        if close is not None:
            self.close_intent(close)
        self.append_audit([dataclasses.replace(row, plan_status=plan.status.value)
                           for row in audit])
        return plan

    def save_plan(
        self,
        plan: Plan,
        *,
        audit: list[AuditRow] = (),  # type: ignore[assignment]
        close: IntentClose | None = None,
        daughter: dict[str, Any] | None = None,
    ) -> Plan:
        """UPDATE the tasks row if nobody else changed it since `plan.version` was read.

        Returns the saved plan with its new version. Raises IllegalTransition when the stored
        row moved on (a cancel, a second instance): the caller must reload, not overwrite.
        """
        saved = plan.model_copy(update={"version": plan.version + 1})
        if daughter is not None:
            saved = self._attach_daughter(saved, daughter)
        final = saved.status in (Status.DONE, Status.ERROR)
        updated = self.sql.run("update_task", (
            saved.status.value, saved.wait_reason.value if saved.wait_reason else None,
            saved.model_dump_json(), self.sql.ts(naive_utcnow()), saved.version,
            saved.reason if saved.status is Status.ERROR else None,
            _final_result(saved) if final else None, plan.plan_id, plan.version,
        ))
        if updated != 1:
            current = self.m.Task.get_or_none(self.m.Task.uuid == plan.plan_id)
            raise IllegalTransition(
                current.status if current else "missing", saved.status, plan_id=plan.plan_id
            )
        if close is not None:
            self.close_intent(close)
        self.append_audit([dataclasses.replace(row, plan_status=saved.status.value)
                           for row in audit])
        return saved

    def _attach_daughter(self, plan: Plan, daughter: dict[str, Any]) -> Plan:
        """INSERT the daughter_tasks row a SPAWNER_REQUEST step asks for; note its id."""
        step_id = daughter["step_id"]
        row = self.m.DaughterTask.create(
            intent_id=plan.intent_id,
            source="madre",
            priority=int(daughter.get("priority", 3)),
            status="pending",
            task_type=_clip(str(daughter.get("task_type", "job")), 50),
            description=daughter.get("description"),
            metadata_json=json.dumps(
                {"plan_id": plan.plan_id, "step_id": step_id, "intent_id": plan.intent_id,
                 "params": daughter.get("params", {})},
                default=str,
            ),
            plan_json=json.dumps({"plan_id": plan.plan_id, "step": {"id": step_id}}),
            plan_id=plan.plan_id,
            step_id=step_id,
        )
        for step in plan.steps:
            if step.step_id == step_id:
                step.result = {"daughter_task_id": int(row.id), "status": "requested"}
        return plan

    def close_intent(self, close: IntentClose) -> None:
        """UPDATE the intents_log row with its final result_status."""
        self.sql.run("close_intent", (close.result_status, close.notes,
                                      self.sql.ts(naive_utcnow()), close.intent_id))

    def append_audit(self, rows: list[AuditRow]) -> None:
        """INSERT madre_actions rows (append-only)."""
        now = self.sql.ts(naive_utcnow())
        self.sql.run_many("insert_action", [self._audit_values(r, now) for r in rows])
        self._trail.extend(_trail_entry(r) for r in rows)

    def append_audit_returning_id(self, row: AuditRow) -> int:
        """INSERT one madre_actions row and return its id (the `action_id` of an answer)."""
        self._trail.append(_trail_entry(row))
        return self.sql.insert_returning_id(
            "insert_action", self._audit_values(row, self.sql.ts(naive_utcnow())))

    def take_trail(self) -> list[dict[str, Any]]:
        """The forensic records of what was just committed, in commit order."""
        taken, self._trail = self._trail, []
        return taken

    @staticmethod
    def _audit_values(r: AuditRow, now: Any) -> tuple[Any, ...]:
        return (
            _clip(r.module, 64), _clip(r.action, 64), _clip(r.reason), now, r.plan_id,
            r.intent_id, r.session_id, _clip(r.actor, 64) if r.actor else None,
            json.dumps(r.detail, default=str) if r.detail else None, r.plan_status,
        )

    def consume_confirmation(
        self, *, plan_id: str, token: str, now: dt.datetime, actor: str
    ) -> ConfirmOutcome:
        """Check a confirmation token and, if it wins, move the plan WAITING → RUNNING.

        One conditional UPDATE (status still WAITING, version unchanged) decides the single
        winner among concurrent confirms. Refusals are audited; tokens never are.
        """
        row = self.sql.first_row("task_state", (plan_id,))
        if row is None:
            return ConfirmOutcome("unknown", detail=f"no plan {plan_id}")
        status, wait_reason, plan_json = row
        plan = Plan.model_validate_json(plan_json)
        base = AuditRow(
            action="confirmation_rejected", plan_id=plan_id, intent_id=plan.intent_id,
            session_id=plan.session_id, actor=actor,
        )
        if status != Status.WAITING or wait_reason != WaitReason.CONFIRMATION:
            detail = f"plan {plan_id} is {status}, not waiting for a confirmation"
            self.append_audit([dataclasses.replace(base, reason="not_waiting")])
            return ConfirmOutcome("not_waiting", plan=plan, detail=detail)
        stored = self._context_value(plan_id, KEY_CONFIRM_HASH)
        expires = from_db_time(self._context_value(plan_id, KEY_CONFIRM_EXPIRES))
        if stored is None or not token_matches(token, stored):
            self.append_audit([dataclasses.replace(base, reason="invalid_token")])
            return ConfirmOutcome("invalid", plan=plan, detail="the confirmation token is wrong")
        if expires is not None and now >= expires:
            expired = self._expire(plan, now=now, actor=actor)
            return ConfirmOutcome("expired", plan=expired, detail="the token expired")
        gate = plan.next_step
        if gate is not None and gate.is_confirmation_gate:
            lifecycle.advance_step(gate, Status.DONE, result={"confirmed_at": now.isoformat()},
                                   now=now)
        lifecycle.advance(plan, Status.RUNNING, now=now)
        saved = self.save_plan(
            plan,
            audit=[AuditRow(action="plan_confirmed", reason=f"plan_id:{plan_id}",
                            plan_id=plan_id, intent_id=plan.intent_id,
                            session_id=plan.session_id, actor=actor)],
            close=IntentClose(plan.intent_id, "running", "confirmed"),
        )
        self.sql.run_many("insert_context", [(plan_id, KEY_CONFIRMED_AT, now.isoformat(),
                                              "global", self.sql.ts(naive_utcnow()))])
        return ConfirmOutcome("confirmed", plan=saved)

    def finish_job(
        self, *, daughter_task_id: int, ok: bool, result: dict[str, Any] | None,
        error: str | None, now: dt.datetime, actor: str,
    ) -> JobOutcome:
        """Record a Spawner's report that a job ended; on success the plan goes RUNNING
        (the caller wakes it), on failure it ends ERROR with the job's reason.

        A report for a step that is no longer waiting (a duplicate, a late one after a
        cancel) changes nothing but an audit row saying it was ignored.
        """
        job = self.m.DaughterTask.get_or_none(self.m.DaughterTask.id == daughter_task_id)
        plan = self.load_plan(job.plan_id) if job is not None and job.plan_id else None
        step = next((s for s in plan.steps if s.step_id == job.step_id), None) if plan else None
        if job is None or plan is None or step is None:
            return JobOutcome("unknown", detail=f"no job {daughter_task_id}")
        audit = AuditRow(action="job_reported", module="spawner", plan_id=plan.plan_id,
                         intent_id=plan.intent_id, session_id=plan.session_id, actor=actor,
                         detail={"daughter_task_id": daughter_task_id, "ok": ok})
        waiting = (plan.status is Status.WAITING and plan.wait_reason is WaitReason.SPAWNER_JOB
                   and step.status is Status.WAITING)
        if not waiting:
            detail = (f"job {daughter_task_id} was already reported: its step is {step.status} "
                      f"and the plan {plan.status}; nothing changed")
            self.append_audit([dataclasses.replace(audit, action="job_report_ignored",
                                                   reason=detail[:255])])
            return JobOutcome("duplicate", plan=plan, detail=detail)
        job_result = {"daughter_task_id": daughter_task_id, "status": "ok" if ok else "error",
                      "result": result or {}}
        if ok:
            lifecycle.advance_step(step, Status.DONE, result=job_result, now=now)
            lifecycle.advance(plan, Status.RUNNING, now=now)
            saved = self.save_plan(
                plan, audit=[dataclasses.replace(audit, action="job_completed",
                                                 reason=f"daughter_task {daughter_task_id}")],
                close=IntentClose(plan.intent_id, "running", "job completed"),
            )
            return JobOutcome("resumed", plan=saved)
        why = f"Spawner job {daughter_task_id} failed: {error or 'no reason given'}"[:500]
        lifecycle.advance_step(step, Status.ERROR, result=job_result, error=why, now=now)
        lifecycle.advance(plan, Status.ERROR, reason=f"step {step.index} ({step.type}) failed: "
                                                     f"{why}", now=now)
        saved = self.save_plan(
            plan, audit=[dataclasses.replace(audit, action="job_failed", reason=why[:255])],
            close=IntentClose(plan.intent_id, "error", why),
        )
        return JobOutcome("failed", plan=saved)

    def cancel_plan(self, *, plan_id: str, actor: str, reason: str | None) -> JobOutcome:
        """End a plan that has not finished in ERROR (`cancelled`), whatever state it is in.

        Its confirmation token stops working (the plan no longer waits), a job it waits for
        is ignored when reported, and a Plan actor running it loses its next save (the
        version moved) and stops. Verdicts: "cancelled", "final" (already DONE/ERROR),
        "unknown".
        """
        plan = self.load_plan(plan_id)
        if plan is None:
            return JobOutcome("unknown", detail=f"no plan {plan_id}")
        if plan.status in (Status.DONE, Status.ERROR):
            return JobOutcome("final", plan=plan,
                              detail=f"plan {plan_id} already ended {plan.status}")
        why = "cancelled" + (f": {reason}" if reason else "")
        for step in plan.steps:
            if step.status in (Status.RUNNING, Status.WAITING):
                lifecycle.advance_step(step, Status.ERROR, error="cancelled")
        lifecycle.advance(plan, Status.ERROR, reason=why[:500])
        saved = self.save_plan(
            plan,
            audit=[AuditRow(action="plan_cancelled", reason=why[:255], plan_id=plan_id,
                            intent_id=plan.intent_id, session_id=plan.session_id, actor=actor)],
            close=IntentClose(plan.intent_id, "error", why[:500]),
        )
        return JobOutcome("cancelled", plan=saved)

    def expire_due_confirmations(self, *, now: dt.datetime, limit: int = 200) -> list[Plan]:
        """End in ERROR (`confirmation_expired`) the plans whose confirmation ran out.

        Each expiry happens once: the save is conditional on the version read here, and a
        plan confirmed or cancelled meanwhile is no longer WAITING and is not selected. A
        plan another instance sharing the database moved between the read and the save
        (its own tick, a confirm) is theirs: skipped here, the rest still expire. A plan
        whose plan_json cannot be read ends by its columns (`end_unreadable_plan`), so one
        bad row never stops every other expiry (nor a start, which ticks once).
        """
        task = self.m.Task
        due = [
            r.uuid for r in task.select(task.uuid).where(
                (task.status == Status.WAITING.value)
                & (task.wait_reason == WaitReason.CONFIRMATION.value)
                & (task.deadline <= to_db_time(now))
            ).order_by(task.deadline).limit(limit)
        ]
        expired = []
        for plan_id in due:
            try:
                plan = self.load_plan(plan_id)
            except ValueError:  # unreadable plan_json: end it by its columns, never block
                ended = self.end_unreadable_plan(plan_id, reason="confirmation_expired",
                                                 audit=AuditRow(action="confirmation_expired",
                                                                reason="token expired",
                                                                actor="timer"))
                expired += [ended] if ended is not None else []
                continue
            if plan is not None and plan.status is Status.WAITING:
                try:
                    expired.append(self._expire(plan, now=now, actor="timer"))
                except IllegalTransition:
                    continue  # the conditional UPDATE changed nothing: nothing to undo
        return expired

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

    def end_unreadable_plan(self, plan_id: str, *, reason: str, audit: AuditRow) -> Plan | None:
        """End in ERROR a plan whose stored plan_json cannot be read, by its columns alone
        (the unreadable JSON is kept as it is, for people to look at): status, error and
        version of the tasks row, its intent closed as error, `audit` appended with the row's
        ids. Returns a Plan without steps carrying the ids and the reason (to wake whoever
        waits for it), or None when there is no such row or it had already ended."""
        task = self.m.Task
        row = task.get_or_none(task.uuid == plan_id)
        if row is None or row.status in (Status.DONE.value, Status.ERROR.value):
            return None
        updated = task.update(
            status=Status.ERROR.value, wait_reason=None, error=reason,
            updated_at=naive_utcnow(), version=row.version + 1,
        ).where((task.uuid == plan_id) & (task.version == row.version)).execute()
        if updated != 1:
            return None
        if row.intent_id:
            self.close_intent(IntentClose(row.intent_id, "error", reason[:500]))
        self.append_audit([dataclasses.replace(
            audit, plan_id=plan_id, intent_id=row.intent_id, session_id=row.session_id,
            plan_status=Status.ERROR.value)])
        return Plan(plan_id=plan_id, intent_id=row.intent_id or "",
                    session_id=row.session_id or "", source=row.source or "madre",
                    status=Status.ERROR, reason=reason, version=row.version + 1)

    def _expire(self, plan: Plan, *, now: dt.datetime, actor: str) -> Plan:
        gate = plan.next_step
        if gate is not None and gate.is_confirmation_gate:
            lifecycle.advance_step(gate, Status.ERROR, error="confirmation_expired", now=now)
        lifecycle.advance(plan, Status.ERROR, reason="confirmation_expired", now=now)
        return self.save_plan(
            plan,
            audit=[AuditRow(action="confirmation_expired", reason="token expired",
                            plan_id=plan.plan_id, intent_id=plan.intent_id,
                            session_id=plan.session_id, actor=actor)],
            close=IntentClose(plan.intent_id, "error", "confirmation_expired"),
        )

    # ------------------------------------------------------------------ reads (any thread)

    def load_plan(self, plan_id: str) -> Plan | None:
        """The stored plan, or None. Safe inside or outside a write transaction."""
        plan_json = self.sql.first_value("plan_json", (plan_id,))
        return Plan.model_validate_json(plan_json) if plan_json else None

    def get_plan(self, plan_id: str) -> Plan | None:
        with connection(self.database):
            return self.load_plan(plan_id)

    def find_intent(self, intent_id: str) -> IntentRecord | None:
        with connection(self.database):
            row = self.m.IntentLog.get_or_none(self.m.IntentLog.intent_id == intent_id)
            if row is None:
                return None
            return IntentRecord(row.intent_id, row.plan_id, row.result_status)

    def find_plan_by_token(self, token: str) -> str | None:
        """The plan a confirmation token was issued for (looked up by its hash)."""
        from madre.rules.tokens import hash_token

        with connection(self.database):
            row = (
                self.m.Context.select(self.m.Context.task_id)
                .where(
                    (self.m.Context.key == KEY_CONFIRM_HASH)
                    & (self.m.Context.value == hash_token(token))
                )
                .first()
            )
            return str(row.task_id_id) if row else None

    def session_mode(self, session_id: str) -> Mode | None:
        """The mode the session's newest plan ran in (sessions outlive restarts this way)."""
        with connection(self.database):
            value = self.sql.first_value("session_mode",
                                         (session_scope(session_id), KEY_MODE))
        return Mode(value) if value else None

    def list_plans(
        self,
        *,
        status: Status | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> PlanList:
        """Plans newest first; `cursor` continues after the last plan of the previous page."""
        task = self.m.Task
        query = task.select(
            task.id, task.uuid, task.intent_id, task.session_id, task.source, task.status,
            task.mode, task.risk, task.error, task.plan_json, task.created_at, task.updated_at,
        )
        if status is not None:
            query = query.where(task.status == status.value)
        if session_id is not None:
            query = query.where(task.session_id == session_id)
        if cursor is not None:
            query = query.where(task.id < decode_cursor(cursor))
        with connection(self.database):
            rows = list(query.order_by(task.id.desc()).limit(limit + 1))
        page = rows[:limit]
        summaries = [
            PlanSummary(
                plan_id=r.uuid, intent_id=r.intent_id, session_id=r.session_id, source=r.source,
                status=Status(r.status), mode=Mode(r.mode) if r.mode else None,
                risk=Risk(r.risk) if r.risk else None, reason=r.error,
                steps=_step_count(r.plan_json),
                created_at=from_db_time(r.created_at), updated_at=from_db_time(r.updated_at),
            )
            for r in page
        ]
        more = len(rows) > limit
        return PlanList(plans=summaries, next_cursor=encode_cursor(page[-1].id) if more else None)

    def plan_detail(self, plan_id: str) -> PlanDetail | None:
        """Everything about one plan, for people: intent, steps, confirmation, audit history."""
        with connection(self.database):
            task = self.m.Task.get_or_none(self.m.Task.uuid == plan_id)
            if task is None:
                return None
            context = {
                row.key: row.value
                for row in self.m.Context.select().where(self.m.Context.task_id == plan_id)
                .order_by(self.m.Context.id)
            }
            history = list(
                self.m.MadreAction.select()
                .where(self.m.MadreAction.plan_id == plan_id)
                .order_by(self.m.MadreAction.id)
            )
        plan = _readable_plan(task)
        expires = from_db_time(context.get(KEY_CONFIRM_EXPIRES))
        confirmation = ConfirmationState(
            required=KEY_CONFIRM_HASH in context,
            expires_at=expires,
            confirmed_at=from_db_time(context.get(KEY_CONFIRMED_AT)),
            expired=plan.reason == "confirmation_expired",
        )
        return PlanDetail(
            plan_id=plan.plan_id,
            session_id=plan.session_id,
            status=plan.status,
            reason=plan.reason,
            wait_reason=plan.wait_reason,
            created_at=plan.created_at,
            updated_at=plan.updated_at,
            intent=IntentView(
                intent_id=plan.intent_id, source=plan.source, dsl=plan.dsl, risk=plan.risk,
                mode=plan.mode, provider=plan.provider or Provider.FALLBACK_LOCAL,
                warnings=plan.warnings, targets=plan.targets,
            ),
            steps=plan.steps,
            confirmation=confirmation,
            history=[
                AuditEntry(
                    id=a.id, module=a.module, action=a.action, reason=a.reason or None,
                    actor=a.actor, created_at=from_db_time(a.created_at),
                )
                for a in history
            ],
        )

    def events_after(
        self, after_id: int, *, plan_id: str | None = None, session_id: str | None = None,
        status: Status | None = None, limit: int = 200,
    ) -> list[Event]:
        """Audit rows after `after_id`, oldest first: the event stream's source."""
        action = self.m.MadreAction
        query = action.select().where(action.id > after_id)
        if plan_id is not None:
            query = query.where(action.plan_id == plan_id)
        if session_id is not None:
            query = query.where(action.session_id == session_id)
        if status is not None:
            query = query.where(action.plan_status == status.value)
        with connection(self.database):
            rows = list(query.order_by(action.id).limit(limit))
        return [
            Event(
                id=r.id, action=r.action, module=r.module, reason=r.reason or None,
                plan_id=r.plan_id, intent_id=r.intent_id, session_id=r.session_id,
                actor=r.actor, plan_status=r.plan_status,
                detail=json.loads(r.detail_json) if r.detail_json else None,
                created_at=from_db_time(r.created_at),
            )
            for r in rows
        ]

    def count_plans(self, status: Status) -> int:
        with connection(self.database):
            return int(self.m.Task.select().where(self.m.Task.status == status.value).count())

    def last_event_id(self) -> int:
        with connection(self.database):
            return int(self.m.MadreAction.select(peewee.fn.MAX(self.m.MadreAction.id)).scalar()
                       or 0)

    def unfinished_plan_ids(self) -> list[str]:
        """Plans left PENDING or RUNNING (recovery on boot)."""
        with connection(self.database):
            return [
                r.uuid
                for r in self.m.Task.select(self.m.Task.uuid)
                .where(self.m.Task.status.in_([Status.PENDING.value, Status.RUNNING.value]))
                .order_by(self.m.Task.id)
            ]

    def _context_value(self, plan_id: str, key: str) -> str | None:
        value = self.sql.first_value("context_value", (plan_id, key))
        return str(value) if value is not None else None


def _step_count(plan_json: str | None) -> int:
    try:
        return len(json.loads(plan_json or "{}").get("steps", []))
    except (ValueError, AttributeError):
        return 0


def _readable_plan(task: Any) -> Plan:
    """The stored plan; if its JSON cannot be read, a stand-in built from the row's columns
    that says so (a person can still see the plan, its status and its history)."""
    try:
        return Plan.model_validate_json(task.plan_json or "")
    except ValueError:
        return Plan(
            plan_id=task.uuid, intent_id=task.intent_id or "", session_id=task.session_id or "",
            source=task.source or "unknown", status=_status_or_error(task.status),
            reason=task.error or "the stored plan cannot be read (corrupt plan_json)",
            created_at=from_db_time(task.created_at) or utcnow(),
            updated_at=from_db_time(task.updated_at) or utcnow(),
            warnings=["stored_plan_unreadable"],
        )


def _status_or_error(value: str | None) -> Status:
    try:
        return Status(str(value).upper())
    except ValueError:
        return Status.ERROR


def _trail_entry(row: AuditRow) -> dict[str, Any]:
    entry = {"event": row.action, "module": row.module, "reason": row.reason or None,
             "plan_id": row.plan_id, "intent_id": row.intent_id, "session_id": row.session_id,
             "actor": row.actor, "plan_status": row.plan_status, "detail": row.detail}
    return {k: v for k, v in entry.items() if v is not None}


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


MAX_ROW_ID = 2**63 - 1  # the largest row id both SQLite and PostgreSQL can compare


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"t:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        value = int(number)
        if prefix != "t" or not 1 <= value <= MAX_ROW_ID:
            raise ValueError(raw)
    except ValueError as exc:
        raise BadRequest("cursor is not one this server gave out; start without it") from exc
    return value

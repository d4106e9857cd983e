"""The reads people make: plan pages, one plan's whole story, the event stream's rows.

Each runs on the calling thread (an HTTP worker) in a pooled connection of its own; none
goes through the Store actor, which only writes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import peewee

from madre.contracts.commands import ApprovalCount
from madre.contracts.events import Event
from madre.contracts.plans import (
    ApprovalView,
    AuditEntry,
    ConfirmationState,
    IntentView,
    PendingPlan,
    PlanDetail,
    PlanSummary,
    StepPreview,
)
from madre.event_hub import Published
from madre.model import Mode, Plan, Provider, Risk, Status, WaitReason
from madre.rules.approvals import (
    ApprovalRules,
    approvals_needed,
    counted,
    summary,
    what_will_run,
)
from madre.store.columns import (
    KEY_CONFIRM_EXPIRES,
    KEY_CONFIRM_HASH,
    KEY_CONFIRMED_AT,
    from_db_time,
)
from madre.store.db import connection
from madre.store.models import Models
from madre.store.unreadable import stand_in_plan


@dataclasses.dataclass(frozen=True)
class PlanPage:
    """One page of plans, newest first; `next_before` continues after its last plan (the row
    id to list before), None on the last page."""

    plans: list[PlanSummary]
    next_before: int | None


class Queries:
    """Read-only queries over one database and its models."""

    def __init__(self, database: peewee.Database, models: Models,
                 rules: ApprovalRules | None = None) -> None:
        self.database = database
        self.m = models
        self.rules = rules or ApprovalRules()  # for the digest of what a plan will run

    def list_plans(self, *, status: Status | None = None, session_id: str | None = None,
                   limit: int = 50, before: int | None = None) -> PlanPage:
        """Plans newest first; `before` continues after the last plan of the previous page."""
        task = self.m.Task
        query = task.select(
            task.id, task.uuid, task.intent_id, task.session_id, task.source, task.status,
            task.mode, task.risk, task.error, task.plan_json, task.created_at, task.updated_at,
            task.deadline, task.wait_reason,
        )
        if status is not None:
            query = query.where(task.status == status.value)
        if session_id is not None:
            query = query.where(task.session_id == session_id)
        if before is not None:
            query = query.where(task.id < before)
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
                # the deadline column is the confirmation's expiry while the plan waits for it
                expires_at=(from_db_time(r.deadline) if r.status == Status.WAITING
                            and r.wait_reason == WaitReason.CONFIRMATION else None),
            )
            for r in page
        ]
        more = len(rows) > limit
        return PlanPage(plans=summaries, next_before=page[-1].id if more else None)

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
        plan = _readable(task)
        needs_human = KEY_CONFIRM_HASH in context
        digest = self.rules.digest(plan) if needs_human else None
        confirmation = ConfirmationState(
            required=KEY_CONFIRM_HASH in context,
            expires_at=from_db_time(context.get(KEY_CONFIRM_EXPIRES)),
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
                    detail=json.loads(a.detail_json) if a.detail_json else None,
                )
                for a in history
            ],
            submitted_by=plan.submitted_by,
            plan_digest=digest,
            approvals=[ApprovalView(by=a.by, at=a.at, comment=a.comment)
                       for a in (counted(plan, digest) if digest else [])],
            approvals_needed=approvals_needed(plan) if needs_human else 0,
        )

    def pending(self, *, plan_id: str | None = None, limit: int = 200) -> list[PendingPlan]:
        """The plans waiting for a human (or only `plan_id`), the soonest to expire first."""
        task = self.m.Task
        query = (task.select(task.uuid, task.status, task.wait_reason, task.version,
                             task.error, task.intent_id, task.session_id, task.source,
                             task.plan_json, task.created_at, task.updated_at, task.deadline)
                 .where((task.status == Status.WAITING.value)
                        & (task.wait_reason == WaitReason.CONFIRMATION.value)))
        if plan_id is not None:
            query = query.where(task.uuid == plan_id)
        with connection(self.database):
            rows = list(query.order_by(task.deadline, task.id).limit(limit))
        out = []
        for row in rows:
            plan = _readable(row)
            digest = self.rules.digest(plan)
            have = counted(plan, digest)
            out.append(PendingPlan(
                plan_id=plan.plan_id, risk=plan.risk, summary=summary(plan),
                steps=[StepPreview(**s) for s in what_will_run(plan, self.rules.routes)],
                submitted_by=plan.submitted_by, created_at=plan.created_at,
                expires_at=from_db_time(row.deadline), plan_digest=digest,
                approvals=ApprovalCount(have=len(have), need=approvals_needed(plan)),
                approved_by=[a.by for a in have]))
        return out

    def events_after(
        self, after_id: int, *, plan_id: str | None = None, session_id: str | None = None,
        status: Status | None = None, limit: int = 200, upto: int | None = None,
    ) -> list[Event]:
        """Audit rows after `after_id` (up to `upto`), oldest first: the event stream's
        source."""
        action = self.m.MadreAction
        query = action.select().where(action.id > after_id)
        if upto is not None:
            query = query.where(action.id <= upto)
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

    def published_after(self, after_id: int, limit: int) -> list[Published]:
        """Every audit row after `after_id`, oldest first, as the event hub hands them out:
        read as plain rows (one statement), each made into an Event only when sent."""
        param = self.database.param
        with connection(self.database):
            rows = self.database.execute_sql(
                f"SELECT {_EVENT_COLUMNS} FROM madre_actions WHERE id > {param}"  # noqa: S608
                f" ORDER BY id LIMIT {param}", (after_id, limit)).fetchall()
        return [Published(int(r[0]), r[1], r[4], r[6], r[8],
                          functools.partial(_event_json, tuple(r))) for r in rows]

    def last_event_id(self) -> int:
        with connection(self.database):
            return int(self.m.MadreAction.select(peewee.fn.MAX(self.m.MadreAction.id)).scalar()
                       or 0)


_EVENT_COLUMNS = ("id, action, module, reason, plan_id, intent_id, session_id, actor,"
                  " plan_status, detail_json, created_at")


def _event_json(row: tuple[Any, ...]) -> str:
    (row_id, action, module, reason, plan_id, intent_id, session_id, actor, plan_status,
     detail_json, created_at) = row
    return Event(id=row_id, action=action, module=module, reason=reason or None,
                 plan_id=plan_id, intent_id=intent_id, session_id=session_id, actor=actor,
                 plan_status=plan_status,
                 detail=json.loads(detail_json) if detail_json else None,
                 created_at=from_db_time(created_at)).model_dump_json()


def _step_count(plan_json: str | None) -> int:
    try:
        return len(json.loads(plan_json or "{}").get("steps", []))
    except (ValueError, AttributeError):
        return 0


def _readable(task: Any) -> Plan:
    """The stored plan; if its JSON cannot be read, a stand-in built from the row's columns
    that says so (a person can still see the plan, its status and its history)."""
    try:
        return Plan.model_validate_json(task.plan_json or "")
    except ValueError:
        return stand_in_plan(task.uuid, status=task.status, wait_reason=task.wait_reason,
                             version=task.version, error=task.error, intent_id=task.intent_id,
                             session_id=task.session_id, source=task.source,
                             created_at=task.created_at, updated_at=task.updated_at)

"""A stored plan whose JSON cannot be read: the error that says so, and the stand-in built
from its row's columns.

Both the runtime's reads (`runtime_reads`) and the reads people make (`queries`) meet such
a plan; the stand-in lets either show it, and the commands end it through the usual
transitions, without ever touching the unreadable JSON (it stays for people to look at).
"""

from __future__ import annotations

from typing import Any

from madre.model import Plan, Status, WaitReason, utcnow
from madre.store.columns import from_db_time

UNREADABLE_WARNING = "stored_plan_unreadable"


class UnreadablePlan(Exception):  # noqa: N818 - names what was found, like KeyError
    """The stored plan_json cannot be read. `plan` is a stand-in built from the row's columns
    (no steps): it can still be shown, and ended, without touching the unreadable JSON."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(f"the stored plan {plan.plan_id} cannot be read (corrupt plan_json)")
        self.plan = plan


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

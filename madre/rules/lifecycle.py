"""The plan state machine, enforced in this one place.

    PENDING ──► RUNNING ──► DONE
       │  ╲        │  ▲
       │   ╲       ▼  │
       │    ──► WAITING
       │           │
       └──────► ERROR ◄── (from any non-final state)

A plan is PENDING when accepted, RUNNING while steps execute, WAITING while parked on a
confirmation or a Spawner job, and ends DONE or ERROR. Steps follow a smaller machine of
their own. Every change goes through `advance` / `advance_step`, which raise
`IllegalTransition` for anything else, so no code path can, say, resurrect a DONE plan.
"""

from __future__ import annotations

import datetime as dt

from madre.contracts import Plan, Status, Step, WaitReason, utcnow
from madre.errors import IllegalTransition

PLAN_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.RUNNING, Status.WAITING, Status.ERROR}),
    Status.RUNNING: frozenset({Status.WAITING, Status.DONE, Status.ERROR}),
    Status.WAITING: frozenset({Status.RUNNING, Status.ERROR}),
    Status.DONE: frozenset(),
    Status.ERROR: frozenset(),
}

STEP_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.RUNNING, Status.WAITING, Status.DONE, Status.ERROR}),
    # RUNNING → RUNNING: a step that was in flight when Madre crashed runs again (same key).
    Status.RUNNING: frozenset({Status.RUNNING, Status.WAITING, Status.DONE, Status.ERROR}),
    Status.WAITING: frozenset({Status.DONE, Status.ERROR}),
    Status.DONE: frozenset(),
    Status.ERROR: frozenset(),
}


def can_advance(current: Status, target: Status) -> bool:
    return target in PLAN_TRANSITIONS[current]


def advance(
    plan: Plan,
    target: Status,
    *,
    reason: str | None = None,
    wait_reason: WaitReason | None = None,
    now: dt.datetime | None = None,
) -> Plan:
    """Move `plan` to `target` in place (and return it), or raise IllegalTransition."""
    if not can_advance(plan.status, target):
        raise IllegalTransition(plan.status, target, plan_id=plan.plan_id)
    if target is Status.WAITING and wait_reason is None:
        raise ValueError("a plan only waits for a reason: give wait_reason")
    plan.status = target
    plan.wait_reason = wait_reason if target is Status.WAITING else None
    if reason is not None:
        plan.reason = reason
    plan.updated_at = now or utcnow()
    return plan


def advance_step(
    step: Step,
    target: Status,
    *,
    result: dict[str, object] | None = None,
    error: str | None = None,
    now: dt.datetime | None = None,
) -> Step:
    """Move `step` to `target` in place, stamping times and counting attempts."""
    if target not in STEP_TRANSITIONS[step.status]:
        raise IllegalTransition(step.status, target)
    moment = now or utcnow()
    if target is Status.RUNNING:
        step.attempts += 1
        step.started_at = moment
        step.error = None
    if target in (Status.DONE, Status.ERROR):
        step.finished_at = moment
        if step.started_at is None:
            step.started_at = moment
    if result is not None:
        step.result = result
    if error is not None:
        step.error = error
    step.status = target
    return step

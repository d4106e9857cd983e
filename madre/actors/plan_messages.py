"""The messages a Plan actor takes (`Run`, `StepAnswered`, `Fenced`, `Cancel`) and those it
sends its Supervisor when it fails or stops (`ChildFailed`, `ChildStopped`)."""

from __future__ import annotations

from typing import NamedTuple

from madre.delegation.client import Answer


class Run(NamedTuple):
    """Start (or go on with) the plan."""


class StepAnswered(NamedTuple):
    """The call of step `step_id` came back: its answer, or the error it raised."""

    step_id: str
    answer: Answer | None
    error: BaseException | None


class Fenced(NamedTuple):
    """This instance no longer owns the plan (taken over, or ended elsewhere): stop now,
    writing nothing; whatever a call in flight answers is let go."""


class Cancel(NamedTuple):
    """Ask: end the plan in ERROR (cancelled). Answers (verdict, plan), or None when this
    actor no longer owns the plan (the caller then applies the cancel to the stored plan)."""

    reason: str | None
    actor: str
    claimed_by: str | None = None  # who the caller said asks: a note, never the actor


class ChildFailed(NamedTuple):
    plan_id: str
    incarnation: int
    error: str


class ChildStopped(NamedTuple):
    plan_id: str
    incarnation: int
    reason: str  # done | error | passivated | suspended | gone | fenced | not_ours

"""Madre's domain: what an intent, a decision, a plan and a step are, and their statuses.

These are the types the rules compute with, the actors pass to each other and the store
keeps as JSON. What travels over HTTP is in `madre.contracts`, built from these.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from pydantic import BaseModel, Field


def new_id() -> str:
    """A fresh identifier for intents, plans, steps and sessions."""
    return str(uuid.uuid4())


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC: the only clock the rules read when no time is passed in."""
    return dt.datetime.now(dt.UTC)


class Status(enum.StrEnum):
    """Where a plan (or one of its steps) is in its life."""

    PENDING = "PENDING"  # accepted and persisted, no step started yet
    RUNNING = "RUNNING"  # a step is executing, or the next one is about to
    WAITING = "WAITING"  # parked: a confirmation or a Spawner job must arrive first
    DONE = "DONE"  # every required step succeeded (final)
    ERROR = "ERROR"  # a required step failed, it was denied, expired or cancelled (final)


FINAL_STATUSES = frozenset({Status.DONE, Status.ERROR})
SETTLED_STATUSES = frozenset({Status.WAITING, Status.DONE, Status.ERROR})
"""Where a plan rests until something from outside moves it (or for ever, when final)."""


class Risk(enum.StrEnum):
    LOW = "LOW"  # runs at once
    MED = "MED"  # waits for a human confirmation
    HIGH = "HIGH"  # waits for a human confirmation


class Mode(enum.StrEnum):
    MADRE = "MADRE"
    AUDIO_ENGINEER = "AUDIO_ENGINEER"


class StepType(enum.StrEnum):
    SYSTEM_HEALTHCHECK = "SYSTEM_HEALTHCHECK"
    CALL_SWITCH = "CALL_SWITCH"
    CALL_HERMES = "CALL_HERMES"
    CALL_HORMIGUERO_TASK = "CALL_HORMIGUERO_TASK"
    CALL_MANIFESTATOR = "CALL_MANIFESTATOR"
    CALL_SHUB = "CALL_SHUB"
    SPAWNER_REQUEST = "SPAWNER_REQUEST"
    NOOP = "NOOP"


class Provider(enum.StrEnum):
    SWITCH = "switch"
    FALLBACK_LOCAL = "fallback_local"
    STRUCTURED = "structured"  # /madre/control and structured intents: nothing to parse


class WaitReason(enum.StrEnum):
    CONFIRMATION = "confirmation"
    SPAWNER_JOB = "spawner_job"


class DSL(BaseModel):
    """What an intent asks for, whoever parsed it (Switch or the local fallback)."""

    domain: str
    action: str
    target: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    confidence: float = 0.5
    original_text: str = ""
    warnings: list[str] = Field(default_factory=list)


class ParseResult(BaseModel):
    dsl: DSL
    provider: Provider
    warnings: list[str] = Field(default_factory=list)


class Decision(BaseModel):
    """What the policy says about one (target, action)."""

    risk: Risk
    requires_confirmation: bool
    denied: bool = False
    reason: str = ""


class Step(BaseModel):
    """One ordered unit of a plan. `type` stays a string so a stored plan with an unknown
    type still loads and can be reported (running it fails the plan with a reason)."""

    step_id: str = Field(default_factory=new_id)
    index: int = 0
    type: str
    payload: dict[str, Any] = Field(default_factory=dict)
    blocking: bool = False
    optional: bool = False
    status: Status = Status.PENDING
    attempts: int = 0
    status_code: int | None = None  # the last HTTP status the step's module answered
    result: dict[str, Any] | None = None
    error: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @property
    def is_confirmation_gate(self) -> bool:
        return self.blocking and self.payload.get("gate") == WaitReason.CONFIRMATION


class Approval(BaseModel):
    """One principal's approval of a waiting plan: of the content with `plan_digest`, by
    the approve route or with the confirm token (`via`)."""

    by: str
    at: dt.datetime
    comment: str | None = None
    plan_digest: str
    via: str = "approve"  # approve | token


class Intent(BaseModel):
    """A parsed, classified request, ready to be planned."""

    intent_id: str = Field(default_factory=new_id)
    source: str
    session_id: str
    mode: Mode = Mode.MADRE
    dsl: DSL
    provider: Provider
    decision: Decision
    targets: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    correlation_id: str | None = None
    submitted_by: str | None = None  # the principal that asked


class Plan(BaseModel):
    """A plan and its steps: the state one Plan actor owns and the store persists."""

    plan_id: str = Field(default_factory=new_id)
    intent_id: str
    session_id: str
    source: str = "operator"
    mode: Mode = Mode.MADRE
    risk: Risk = Risk.LOW
    provider: Provider = Provider.FALLBACK_LOCAL
    dsl: DSL | None = None
    status: Status = Status.PENDING
    wait_reason: WaitReason | None = None
    reason: str | None = None
    warnings: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    version: int = 0  # bumped by every save; a save against an older version is refused
    # Who asked, and, for a plan that waits for a human, the digest of what will run (as it
    # was when the plan was made), how many approvals it needs and those it has.
    submitted_by: str | None = None
    plan_digest: str | None = None
    approvals_needed: int = 0
    approvals: list[Approval] = Field(default_factory=list)
    # The instance running it and its owner count, as stored (the tasks row's columns are
    # the truth): a save from an older epoch is refused, so a superseded owner writes nothing.
    owner: str | None = None
    epoch: int = 0

    @property
    def active(self) -> bool:
        """Whether an instance must be running it (PENDING or RUNNING)."""
        return self.status in (Status.PENDING, Status.RUNNING)
    # The X-Request-ID of the HTTP request that created the plan: request ids do not cross
    # actor messages by themselves, so the plan carries it into its actor's log lines.
    request_id: str | None = None

    def detached(self) -> Plan:
        """A copy to change while another thread may still read this one (the store writing
        it, an answer built from it): the parts changed in place (the steps, the lists) are
        copied; the rest is only ever reassigned. A fraction of a deep copy's cost."""
        return self.model_copy(update={"steps": [s.model_copy() for s in self.steps],
                                       "warnings": list(self.warnings),
                                       "approvals": list(self.approvals)})

    @property
    def next_step(self) -> Step | None:
        """The first step that has not finished, or None when all have."""
        for step in self.steps:
            if step.status not in FINAL_STATUSES:
                return step
        return None

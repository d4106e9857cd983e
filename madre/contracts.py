"""The shapes Madre speaks: enums, the plan model, and the HTTP request/response contracts.

Everything that crosses a boundary (an HTTP body, a row's JSON column, a message between
actors) is one of these models, so the wire format is written down once.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_MESSAGE_CHARS = 8_000
"""Longest chat message or intent text accepted; longer ones are refused with a 422."""

MAX_ID_CHARS = 128


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


class ControlStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    PENDING_CONFIRMATION = "pending_confirmation"
    DENIED = "denied"


class WaitReason(enum.StrEnum):
    CONFIRMATION = "confirmation"
    SPAWNER_JOB = "spawner_job"


# --------------------------------------------------------------------------- domain


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

    @property
    def next_step(self) -> Step | None:
        """The first step that has not finished, or None when all have."""
        for step in self.steps:
            if step.status not in FINAL_STATUSES:
                return step
        return None


class PlanOutcome(BaseModel):
    """A plan as it stood when it settled (WAITING, DONE or ERROR) or when a wait ran out."""

    plan: Plan
    confirm_token: str | None = None
    expires_at: dt.datetime | None = None


# --------------------------------------------------------------------------- requests

_REQUEST_CONFIG = ConfigDict(extra="ignore", str_strip_whitespace=True)


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class ChatRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    session_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    context: dict[str, Any] | None = None
    dry_run: bool = False

    _blank_session = field_validator("session_id", mode="before")(_blank_to_none)


class ControlRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    target: str = Field(min_length=1, max_length=64)
    action: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] | None = None
    confirm_token: str | None = Field(default=None, max_length=256)
    plan_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    session_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)

    _blanks = field_validator("confirm_token", "plan_id", "session_id", mode="before")(
        _blank_to_none
    )


class IntentRequest(BaseModel):
    """Structured intake. `text` is parsed; `action` (with `target`) skips parsing.

    The original callers (Hormiguero, the gateway's spawner route) send `{type, payload}`;
    those are read as `action` and `params`.
    """

    model_config = _REQUEST_CONFIG
    source: str = Field(default="api", min_length=1, max_length=64)
    text: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    domain: str | None = Field(default=None, max_length=64)
    action: str | None = Field(default=None, max_length=64)
    target: str | None = Field(default=None, max_length=64)
    params: dict[str, Any] | None = None
    session_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    correlation_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    type: str | None = Field(default=None, max_length=64)
    payload: dict[str, Any] | None = None

    _blanks = field_validator(
        "text", "domain", "action", "target", "session_id", "correlation_id", "type",
        mode="before",
    )(_blank_to_none)

    @model_validator(mode="after")
    def _needs_something_to_do(self) -> IntentRequest:
        if self.action is None and self.type is not None:
            self.action = self.type
        if self.params is None and self.payload is not None:
            self.params = self.payload
        if self.text is None and self.action is None:
            raise ValueError("give either 'text' to parse or an 'action' (with a 'target')")
        return self


class SpawnCallback(BaseModel):
    """`POST /madre/callback/spawn`: a job Madre asked for has ended."""

    model_config = _REQUEST_CONFIG
    daughter_task_id: int = Field(ge=1)
    status: str = Field(pattern="^(ok|error|success|failed|DONE|ERROR)$")
    result: dict[str, Any] | None = None
    error: str | None = Field(default=None, max_length=4000)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "success", "DONE")


class DaughterReport(BaseModel):
    """The Spawner's own `POST /madre/daughter/{id}/complete|fail` body."""

    model_config = _REQUEST_CONFIG
    status: str | None = Field(default=None, max_length=64)
    exit_code: int | None = None
    spawn_uuid: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    error: str | None = Field(default=None, max_length=4000)


class CancelRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    reason: str | None = Field(default=None, max_length=500)
    by: str | None = Field(default=None, max_length=64)  # who asks, for the audit trail


class CancelResponse(BaseModel):
    status: str = "cancelled"
    plan_id: str
    plan_status: Status
    reason: str | None


class ConfirmRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    confirm_token: str = Field(min_length=1, max_length=256)


# --------------------------------------------------------------------------- responses


class StepResult(BaseModel):
    step: str
    status: Status
    result: dict[str, Any] | None = None
    error: str | None = None


class ChatResponse(BaseModel):
    response: str
    session_id: str
    intent_id: str
    plan_id: str | None
    status: Status
    mode: Mode
    risk: Risk
    requires_confirmation: bool
    confirm_token: str | None = None
    expires_at: dt.datetime | None = None
    provider: Provider
    warnings: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    actions: list[StepResult] = Field(default_factory=list)


class ControlResponse(BaseModel):
    status: ControlStatus
    plan_id: str | None
    intent_id: str | None = None
    risk: Risk
    confirm_token: str | None = None
    expires_at: dt.datetime | None = None
    reason: str | None = None
    action_id: int | None = None
    plan_status: Status | None = None


class IntentResponse(BaseModel):
    intent_id: str
    plan_id: str | None
    task_id: str | None
    status: Status
    risk: Risk
    requires_confirmation: bool
    confirm_token: str | None = None
    expires_at: dt.datetime | None = None
    duplicate: bool = False


class ConfirmResponse(BaseModel):
    status: str = "confirmed"
    plan_id: str
    plan_status: Status


class JobReportResponse(BaseModel):
    status: str  # "accepted" | "duplicate"
    daughter_task_id: int
    plan_id: str | None
    plan_status: Status | None
    detail: str | None = None


class Event(BaseModel):
    """One entry of the audit trail, as the event stream sends it (its `id` is the row's)."""

    id: int
    action: str
    module: str
    reason: str | None = None
    plan_id: str | None = None
    intent_id: str | None = None
    session_id: str | None = None
    actor: str | None = None
    plan_status: str | None = None
    detail: dict[str, Any] | None = None
    created_at: dt.datetime


class PlanSummary(BaseModel):
    plan_id: str
    intent_id: str | None
    session_id: str | None
    source: str | None
    status: Status
    mode: Mode | None
    risk: Risk | None
    reason: str | None
    steps: int
    created_at: dt.datetime
    updated_at: dt.datetime | None


class PlanList(BaseModel):
    plans: list[PlanSummary]
    next_cursor: str | None


class ConfirmationState(BaseModel):
    required: bool
    expires_at: dt.datetime | None = None
    confirmed_at: dt.datetime | None = None
    expired: bool = False


class AuditEntry(BaseModel):
    id: int
    module: str
    action: str
    reason: str | None
    actor: str | None
    created_at: dt.datetime


class IntentView(BaseModel):
    intent_id: str
    source: str | None
    dsl: DSL | None
    risk: Risk
    mode: Mode
    provider: Provider
    warnings: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)


class PlanDetail(BaseModel):
    plan_id: str
    session_id: str | None
    status: Status
    reason: str | None
    wait_reason: WaitReason | None
    created_at: dt.datetime
    updated_at: dt.datetime | None
    intent: IntentView
    steps: list[Step]
    confirmation: ConfirmationState
    history: list[AuditEntry]


class DependencyCheck(BaseModel):
    state: str  # up | down | unknown
    checked_at: dt.datetime | None = None
    error: str | None = None


class HealthResponse(BaseModel):
    module: str = "madre"
    status: str
    version: str
    time: dt.datetime
    deps: dict[str, str]
    db: str
    checks: dict[str, DependencyCheck] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    error: str
    detail: str
    errors: list[dict[str, Any]] | None = None

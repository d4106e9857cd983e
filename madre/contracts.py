"""The HTTP contracts: every request body Madre reads and every answer it gives.

The domain types they carry (Status, Risk, Plan, Step, DSL, ...) are `madre.model`; the
limits below are the ones the OpenAPI document declares and the routes enforce.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from madre.model import DSL, Mode, Provider, Risk, Status, Step, WaitReason

MAX_MESSAGE_CHARS = 8_000
"""Longest chat message or intent text accepted; longer ones are refused with a 422."""

MAX_ID_CHARS = 128
"""Longest id (session, plan, correlation) accepted anywhere."""

MAX_PAGE = 200
"""Most plans one page of GET /madre/plans lists (`limit`)."""

TOKEN_HEADER = "X-VX11-Token"
"""The header every caller sends its token in."""


class ControlStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    PENDING_CONFIRMATION = "pending_confirmation"
    DENIED = "denied"


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


DIGEST = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$",
               description="The plan's `plan_digest` as shown: the SHA-256 of what will run.")


class ConfirmRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    confirm_token: str = Field(min_length=1, max_length=256)
    plan_digest: str | None = Field(default=None, min_length=64, max_length=64,
                                    pattern="^[0-9a-f]{64}$")


class ApproveRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    plan_digest: str = DIGEST
    comment: str | None = Field(default=None, max_length=500)


class RejectRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    reason: str = Field(min_length=1, max_length=400)
    confirm_token: str | None = Field(default=None, max_length=256)

    _blank_token = field_validator("confirm_token", mode="before")(_blank_to_none)


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
    plan_digest: str | None = None
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
    plan_digest: str | None = None
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
    plan_digest: str | None = None
    duplicate: bool = False


class ApprovalCount(BaseModel):
    have: int  # approvals by distinct principals of the plan as it stands
    need: int


class ConfirmResponse(BaseModel):
    status: str = "confirmed"
    plan_id: str
    plan_status: Status
    approvals: ApprovalCount | None = None


class ApproveResponse(BaseModel):
    status: str = "approved"
    plan_id: str
    plan_status: Status
    approvals: ApprovalCount


class RejectResponse(BaseModel):
    status: str = "rejected"
    plan_id: str
    plan_status: Status
    reason: str


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
    detail: dict[str, Any] | None = None


class ApprovalView(BaseModel):
    by: str
    at: dt.datetime
    comment: str | None = None


class StepPreview(BaseModel):
    """One step as an approver sees it before it runs."""

    type: str
    module: str
    route: str | None
    payload: dict[str, Any]


class PendingPlan(BaseModel):
    """A plan waiting for a human: what will run, who asked, until when, approvals so far."""

    plan_id: str
    risk: Risk
    summary: str
    steps: list[StepPreview]
    submitted_by: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    plan_digest: str
    approvals: ApprovalCount
    approved_by: list[str]


class PendingList(BaseModel):
    plans: list[PendingPlan]


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
    submitted_by: str | None = None
    plan_digest: str | None = None  # of what will run, for a plan that waits for a human
    approvals: list[ApprovalView] = Field(default_factory=list)
    approvals_needed: int = 0
    console_url: str | None = None  # the plan's console page, when MADRE_PUBLIC_URL is set


class DependencyCheck(BaseModel):
    state: str  # up | down | unknown
    checked_at: dt.datetime | None = None
    error: str | None = None


class InstanceView(BaseModel):
    """One Madre instance on the database, as its liveness row says."""

    instance_id: str
    host: str
    pid: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime


class InstanceList(BaseModel):
    instance_id: str  # the instance that answers
    instances: list[InstanceView]


class HealthResponse(BaseModel):
    module: str = "madre"
    status: str
    version: str
    time: dt.datetime
    deps: dict[str, str]
    db: str
    checks: dict[str, DependencyCheck] = Field(default_factory=dict)
    instance: str | None = None  # this instance's id
    instances: list[InstanceView] = Field(default_factory=list)  # those alive on its database


class ErrorBody(BaseModel):
    error: str
    detail: str
    errors: list[dict[str, Any]] | None = None

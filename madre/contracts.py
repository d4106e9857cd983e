"""The HTTP contracts: every request body Madre reads and every answer it gives.

The domain types they carry (Status, Risk, Plan, Step, DSL, ...) are `madre.model`; the
limits below are the ones the OpenAPI document declares and the routes enforce.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

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

# Strict: `dry_run: 0` is not false and "5" is not 5, as the document says. Unknown keys
# are ignored (old clients send more); what is kept is what the fields below declare.
_REQUEST_CONFIG = ConfigDict(extra="ignore", strict=True)

SPACES = " \t\n\r\f\v"
"""What counts as blank around a value: exactly these (the document's patterns say the same,
so every regex engine agrees with the server about what is blank)."""
NOT_BLANK = r"[^ \t\n\r\f\v]"  # the pattern of a value that must not be blank


def _integral(value: Any) -> Any:
    """3.0 is a whole number in JSON (and in the document's "integer"): take it as 3."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole = Annotated[int, BeforeValidator(_integral)]


def _stripped(value: str) -> str:
    value = value.strip(SPACES)
    if not value:
        raise ValueError("must not be blank")
    return value


def _blank_to_none(value: str | None) -> str | None:
    """An optional value sent blank is as if not sent (its length was checked as sent)."""
    return None if value is None or not value.strip(SPACES) else value


def Words(max_length: int, **field: Any) -> Any:  # noqa: N802 - a type, read as one
    """Required text, not blank, trimmed of spaces around it."""
    return Annotated[str, Field(min_length=1, max_length=max_length,
                                json_schema_extra={"pattern": NOT_BLANK}, **field),
                     AfterValidator(_stripped)]


def Optional(max_length: int, **field: Any) -> Any:  # noqa: N802 - a type, read as one
    """Optional text: absent, null or blank mean none."""
    return Annotated[str | None, Field(default=None, max_length=max_length, **field),
                     AfterValidator(_blank_to_none)]


class ChatRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    message: Words(MAX_MESSAGE_CHARS)
    session_id: Optional(MAX_ID_CHARS) = None
    context: dict[str, Any] | None = None
    dry_run: bool = False


class ControlRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    target: Words(64)
    action: Words(64)
    params: dict[str, Any] | None = None
    confirm_token: Optional(256) = None
    plan_id: Optional(MAX_ID_CHARS) = None
    session_id: Optional(MAX_ID_CHARS) = None


def _needs_text_or_action(schema: dict[str, Any]) -> None:
    text = {"type": "string", "pattern": NOT_BLANK}
    schema["anyOf"] = [{"required": [name], "properties": {name: text}}
                       for name in ("text", "action", "type")]


class IntentRequest(BaseModel):
    """Structured intake. `text` is parsed; `action` (with `target`) skips parsing.

    The original callers (Hormiguero, the gateway's spawner route) send `{type, payload}`;
    those are read as `action` and `params`.
    """

    model_config = ConfigDict(**_REQUEST_CONFIG, json_schema_extra=_needs_text_or_action)
    source: Words(64) = "api"
    text: Optional(MAX_MESSAGE_CHARS) = None
    domain: Optional(64) = None
    action: Optional(64) = None
    target: Optional(64) = None
    params: dict[str, Any] | None = None
    session_id: Optional(MAX_ID_CHARS) = None
    # It becomes the intent id, sent on to the modules in a header: printable ASCII only.
    correlation_id: Optional(MAX_ID_CHARS, pattern="^[ -~]*$") = None
    type: Optional(64) = None
    payload: dict[str, Any] | None = None

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
    daughter_task_id: Whole = Field(ge=1, le=2**63 - 1)
    status: str = Field(pattern="^(ok|error|success|failed|DONE|ERROR)$")
    result: dict[str, Any] | None = None
    error: Optional(4000) = None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "success", "DONE")


class DaughterReport(BaseModel):
    """The Spawner's own `POST /madre/daughter/{id}/complete|fail` body."""

    model_config = _REQUEST_CONFIG
    status: Optional(64) = None
    exit_code: Whole | None = None
    spawn_uuid: Optional(MAX_ID_CHARS) = None
    error: Optional(4000) = None


class CancelRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    reason: Optional(500) = None
    by: Optional(64) = None  # who asks, for the audit trail


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
    comment: Optional(500) = None


class RejectRequest(BaseModel):
    model_config = _REQUEST_CONFIG
    reason: Words(400)
    confirm_token: Optional(256) = None


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


class Dropped(BaseModel):
    """The data of the `dropped` event a stream ends with when its client fell too far
    behind: reconnect with `Last-Event-ID` set to `resume_with_last_event_id`."""

    reason: str
    resume_with_last_event_id: int


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
    expires_at: dt.datetime | None = None  # a plan waiting for a confirmation: until when


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


class Liveness(BaseModel):
    status: str = "alive"


class Readiness(BaseModel):
    """`GET /readyz`: `ready` (200), or why not: `starting`, `draining`, `db_down` (503)."""

    status: str
    detail: str
    db: str  # ok | down | unknown
    trail: str  # the forensic trail: ok | failing | busy (another Madre writes it) | starting
    trail_behind: int | None  # committed rows the forensic trail does not hold yet


class ErrorBody(BaseModel):
    error: str
    detail: str
    errors: list[dict[str, Any]] | None = None


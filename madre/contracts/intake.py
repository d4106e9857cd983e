"""The three ways in (`POST /madre/chat`, `/madre/control`, `/madre/intent`): what each
reads and what each answers. A signed webhook (`/madre/webhook/{source}`) reads and answers
what `/madre/intent` does.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from madre.contracts.fields import (
    MAX_ID_CHARS,
    MAX_MESSAGE_CHARS,
    NOT_BLANK,
    REQUEST_CONFIG,
    Optional,
    Words,
)
from madre.model import Mode, Provider, Risk, Status


class ControlStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    PENDING_CONFIRMATION = "pending_confirmation"
    DENIED = "denied"



class ChatRequest(BaseModel):
    model_config = REQUEST_CONFIG
    message: Words(MAX_MESSAGE_CHARS)
    session_id: Optional(MAX_ID_CHARS) = None
    context: dict[str, Any] | None = None
    dry_run: bool = False


class ControlRequest(BaseModel):
    model_config = REQUEST_CONFIG
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

    model_config = ConfigDict(**REQUEST_CONFIG, json_schema_extra=_needs_text_or_action)
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

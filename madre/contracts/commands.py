"""The commands on a plan that exists (confirm, approve, reject, cancel) and the job
reports that end a step (the Spawner's callback and daughter reports): what each reads and
what each answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from madre.contracts.fields import MAX_ID_CHARS, REQUEST_CONFIG, Optional, Whole, Words
from madre.model import Status


class SpawnCallback(BaseModel):
    """`POST /madre/callback/spawn`: a job Madre asked for has ended."""

    model_config = REQUEST_CONFIG
    daughter_task_id: Whole = Field(ge=1, le=2**63 - 1)
    status: str = Field(pattern="^(ok|error|success|failed|DONE|ERROR)$")
    result: dict[str, Any] | None = None
    error: Optional(4000) = None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "success", "DONE")


class DaughterReport(BaseModel):
    """The Spawner's own `POST /madre/daughter/{id}/complete|fail` body."""

    model_config = REQUEST_CONFIG
    status: Optional(64) = None
    exit_code: Whole | None = None
    spawn_uuid: Optional(MAX_ID_CHARS) = None
    error: Optional(4000) = None


class CancelRequest(BaseModel):
    model_config = REQUEST_CONFIG
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
    model_config = REQUEST_CONFIG
    confirm_token: str = Field(min_length=1, max_length=256)
    plan_digest: str | None = Field(default=None, min_length=64, max_length=64,
                                    pattern="^[0-9a-f]{64}$")


class ApproveRequest(BaseModel):
    model_config = REQUEST_CONFIG
    plan_digest: str = DIGEST
    comment: Optional(500) = None


class RejectRequest(BaseModel):
    model_config = REQUEST_CONFIG
    reason: Words(400)
    confirm_token: Optional(256) = None


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

"""How plans are shown: the list (`GET /madre/plans`), one plan with its whole story
(`GET /madre/plans/{plan_id}`), and the plans waiting for a human (`GET /madre/pending`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from madre.contracts.commands import ApprovalCount
from madre.model import DSL, Mode, Provider, Risk, Status, Step, WaitReason


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

"""The HTTP contracts: every request body Madre reads and every answer it gives.

One module a concept: how request values are read (`fields`), what wraps every exchange
(`envelope`: the token header, the error body), the ways in (`intake`), the commands on
plans and job reports (`commands`), how plans are shown (`plans`), the event stream
(`events`), health and instances (`health`). The domain types they carry (Status, Risk,
Plan, Step, DSL, ...) are `madre.model`.

Madre's own code imports from those modules. This package re-exports their names because
programs that embed Madre or use its client import them from here (`from madre.contracts
import ChatRequest`, as the README shows): the split must not break them.
"""

from madre.contracts.commands import (
    DIGEST,
    ApprovalCount,
    ApproveRequest,
    ApproveResponse,
    CancelRequest,
    CancelResponse,
    ConfirmRequest,
    ConfirmResponse,
    DaughterReport,
    JobReportResponse,
    RejectRequest,
    RejectResponse,
    SpawnCallback,
)
from madre.contracts.envelope import TOKEN_HEADER, ErrorBody
from madre.contracts.events import Dropped, Event
from madre.contracts.fields import (
    MAX_ID_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_PAGE,
    NOT_BLANK,
    SPACES,
    Optional,
    Whole,
    Words,
)
from madre.contracts.health import (
    DependencyCheck,
    HealthResponse,
    InstanceList,
    InstanceView,
    Liveness,
    Readiness,
)
from madre.contracts.intake import (
    ChatRequest,
    ChatResponse,
    ControlRequest,
    ControlResponse,
    ControlStatus,
    IntentRequest,
    IntentResponse,
    StepResult,
)
from madre.contracts.plans import (
    ApprovalView,
    AuditEntry,
    ConfirmationState,
    IntentView,
    PendingList,
    PendingPlan,
    PlanDetail,
    PlanList,
    PlanSummary,
    StepPreview,
)

# The domain types the contracts carry, which the one module showed too (programs import
# `Status` from here): they stay importable from here, defined in madre.model.
from madre.model import DSL, Mode, Provider, Risk, Status, Step, WaitReason

__all__ = [
    "DSL", "Mode", "Provider", "Risk", "Status", "Step", "WaitReason",
    "DIGEST", "MAX_ID_CHARS", "MAX_MESSAGE_CHARS", "MAX_PAGE", "NOT_BLANK", "SPACES",
    "TOKEN_HEADER", "ApprovalCount", "ApprovalView", "ApproveRequest", "ApproveResponse",
    "AuditEntry", "CancelRequest", "CancelResponse", "ChatRequest", "ChatResponse",
    "ConfirmRequest", "ConfirmResponse", "ConfirmationState", "ControlRequest",
    "ControlResponse", "ControlStatus", "DaughterReport", "DependencyCheck", "Dropped",
    "ErrorBody", "Event", "HealthResponse", "InstanceList", "InstanceView", "IntentRequest",
    "IntentResponse", "IntentView", "JobReportResponse", "Liveness", "Optional", "PendingList",
    "PendingPlan", "PlanDetail", "PlanList", "PlanSummary", "Readiness", "RejectRequest",
    "RejectResponse", "SpawnCallback", "StepPreview", "StepResult", "Whole", "Words",
]

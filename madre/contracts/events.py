"""The event stream (`GET /madre/events`): one entry of the audit trail as it is sent, and
the notice a stream ends with when its client fell behind."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel


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

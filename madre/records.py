"""What a change to a plan leaves behind besides the plan itself: audit rows, the end of its
intent, a confirmation's hash, a job request for the Spawner.

The rules produce these (`madre.rules.lifecycle`), the store writes them in the same
transaction as the plan (`madre.store.repository`). Plain frozen values: no database here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any


@dataclasses.dataclass(frozen=True)
class AuditRow:
    """One madre_actions row to append. Never carries a token in clear."""

    action: str
    reason: str = ""
    module: str = "madre"
    plan_id: str | None = None
    intent_id: str | None = None
    session_id: str | None = None
    actor: str | None = None
    detail: dict[str, Any] | None = None
    plan_status: str | None = None  # set by the store: the plan's status once this is saved


@dataclasses.dataclass(frozen=True)
class IntentClose:
    """How an intents_log row ends (or where it stands): its result_status and a note."""

    intent_id: str
    result_status: str
    notes: str | None = None


@dataclasses.dataclass(frozen=True)
class IntentRecord:
    """An intents_log row to write: the request as it came in, before anything is decided."""

    intent_id: str
    source: str
    payload: dict[str, Any]
    session_id: str | None
    idempotency_key: str | None = None  # a claimed key (hashed with its principal)
    request_hash: str | None = None  # what was asked with it
    # A retried correlation id whose first attempt never made a plan (it was refused with a
    # 503, or cut short by a crash): its row is taken over instead of inserted, once.
    retake: bool = False


@dataclasses.dataclass(frozen=True)
class Confirmation:
    """A confirmation issued for a plan: the token's hash (never the token), its expiry,
    and the digest of the plan content the token is bound to."""

    token_hash: str
    expires_at: dt.datetime
    plan_digest: str | None = None


@dataclasses.dataclass(frozen=True)
class JobRequest:
    """A daughter_tasks row a SPAWNER_REQUEST step asks the Spawner for."""

    step_id: str
    task_type: str
    description: str | None
    params: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Change:
    """What one or more transitions of a plan leave to write with it: audit rows, how its
    intent stands, a job to request, and the moment a confirmation was used."""

    audit: tuple[AuditRow, ...] = ()
    close: IntentClose | None = None
    job: JobRequest | None = None
    confirmed_at: dt.datetime | None = None

    def then(self, later: Change) -> Change:
        """This change followed by `later` (written together, `later`'s close wins)."""
        return Change(
            audit=self.audit + later.audit,
            close=later.close or self.close,
            job=later.job or self.job,
            confirmed_at=later.confirmed_at or self.confirmed_at,
        )

    @property
    def empty(self) -> bool:
        return not self.audit and self.close is None and self.job is None and (
            self.confirmed_at is None)


NO_CHANGE = Change()

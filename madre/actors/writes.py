"""The writes the Store actor takes: one named, typed message per kind of write, each
queued with the future its caller waits on (`madre.actors.store_client` sends them)."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import pykka

from madre.model import Plan
from madre.records import AuditRow, Change, Confirmation, IntentClose, IntentRecord


class RecordIntent(NamedTuple):
    """Write the intents_log row of an intent before anything is decided about it."""

    intent: IntentRecord


class CreatePlan(NamedTuple):
    """Write a new plan with its change (its first transitions), its confirmation when it
    has one, and its intent's row when not written yet. `decision`, the policy's audit row
    about the intent, is written first; the reply is its id (an answer's `action_id`)."""

    plan: Plan
    change: Change
    confirmation: Confirmation | None = None
    intent: IntentRecord | None = None
    decision: AuditRow | None = None


class SavePlan(NamedTuple):
    """Save a plan read at `expected_version` (and `expected_epoch`), with the change that
    moved it. With `claim`, this instance becomes its owner (the plan carries the new epoch)
    and holds a fresh lease. Replies with the plan as saved; StaleWrite when the stored plan
    moved on meanwhile (or has another owner now)."""

    plan: Plan
    expected_version: int
    change: Change
    keep_stored_json: bool = False
    expected_epoch: int | None = None
    claim: bool = False


class RecordDenial(NamedTuple):
    """A request refused before any plan: its intent row (when not written yet), closed as
    denied, and the audit row saying why. Replies with that row's id."""

    intent: IntentRecord | None
    close: IntentClose
    audit: AuditRow


class CloseIntent(NamedTuple):
    """An intent that ends without a plan (a dry run): its row, written if not yet, closed."""

    intent: IntentRecord | None
    close: IntentClose


class AppendAudit(NamedTuple):
    """Audit rows that change no plan (a refused confirmation, a restart)."""

    rows: tuple[AuditRow, ...]


class RememberAnswer(NamedTuple):
    """Keep the first answer to a request with an Idempotency-Key (its token left out)."""

    intent_id: str
    answer_json: str


class ReleaseKey(NamedTuple):
    """A keyed request failed before it answered: free its key for a retry."""

    intent_id: str


class CloseOrphanIntents(NamedTuple):
    """Close (audited) the intents recorded before `before` that never got a plan and were
    taken in by one of `instance_ids` (dead), or by no named instance with
    `include_unowned`; replies the count."""

    before: dt.datetime
    instance_ids: tuple[str, ...] = ()
    include_unowned: bool = True


class SaveInstance(NamedTuple):
    """Write an instance's liveness row; `dead` moves it out of the live ones."""

    instance_id: str
    value: str
    new: bool = False
    dead: bool = False


class RenewLeases(NamedTuple):
    """The heartbeat: this instance's liveness row and the lease of every plan it runs.
    Replies with the ids of the plans it still owns."""

    owner: str
    value: str
    lease_until: dt.datetime


class ClaimPlans(NamedTuple):
    """Take over plans that must run and have no live owner; replies (plan id, epoch)s."""

    owner: str
    dead_owners: tuple[str, ...]
    lease_until: dt.datetime
    limit: int = 100


class ReleaseLeases(NamedTuple):
    """A stopping instance lets its running plans go (others take them at once)."""

    owner: str


Write = (RecordIntent | CreatePlan | SavePlan | RecordDenial | CloseIntent | AppendAudit
         | CloseOrphanIntents | SaveInstance | RenewLeases | ClaimPlans | ReleaseLeases
         | RememberAnswer | ReleaseKey)


class _Queued(NamedTuple):
    write: Write
    reply: pykka.Future[Any]


class Flush(NamedTuple):
    pass


class ProbeWrite(NamedTuple):
    """After a refused write: can the database take writes again? (SQLite: checkpoint the
    WAL into the database file first, so it shrinks instead of growing again.)"""


class Stats(NamedTuple):
    """Ask for (commits, writes) so far."""

"""`StoreClient`: how everyone else writes. One method per write (`madre.actors.writes`),
waiting for the commit, or for the `*_later` ones handing back a future of it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pykka

from madre.actors.writes import (
    AppendAudit,
    ClaimPlans,
    CloseIntent,
    CloseOrphanIntents,
    CreatePlan,
    ProbeWrite,
    RecordDenial,
    RecordIntent,
    ReleaseKey,
    ReleaseLeases,
    RememberAnswer,
    RenewLeases,
    SaveInstance,
    SavePlan,
    Stats,
    Write,
    _Queued,
)
from madre.errors import StoreUnavailable
from madre.model import Plan
from madre.records import AuditRow, Change, Confirmation, IntentClose, IntentRecord
from madre.store.failures import DbFailure

if TYPE_CHECKING:
    from madre.actors.store import StoreActor


class StoreClient:
    """How everyone else writes: one method per write, waiting for the commit (or, for the
    `*_later` ones, a future of it). Every wait is bounded by `timeout`."""

    def __init__(self, ref: pykka.ActorRef[StoreActor], *, timeout: float = 30.0) -> None:
        self.ref = ref
        self.timeout = timeout

    def submit(self, write: Write) -> pykka.Future[Any]:
        """Queue `write`; a future of its reply (set once it committed)."""
        reply: pykka.Future[Any] = pykka.ThreadingFuture()
        try:
            self.ref.tell(_Queued(write, reply))
        except pykka.ActorDeadError as exc:
            raise StoreUnavailable("the store is not running") from exc
        return reply

    def wait(self, future: pykka.Future[Any]) -> Any:
        try:
            return future.get(timeout=self.timeout)
        except pykka.Timeout as exc:
            raise StoreUnavailable("the database did not answer in time") from exc
        except pykka.ActorDeadError as exc:
            raise StoreUnavailable("the store stopped before writing") from exc

    def write(self, write: Write) -> Any:
        return self.wait(self.submit(write))

    # ------------------------------------------------------------------ named writes

    def record_intent(self, intent: IntentRecord) -> None:
        """Raises DuplicateIntent when that intent id is recorded already."""
        self.write(RecordIntent(intent))

    def create_plan(self, plan: Plan, change: Change, *, confirmation: Confirmation | None = None,
                    intent: IntentRecord | None = None, decision: AuditRow | None = None
                    ) -> int | None:
        return self.write(  # type: ignore[no-any-return]
            CreatePlan(plan, change, confirmation, intent, decision))

    def create_plan_later(self, plan: Plan, change: Change, *,
                          confirmation: Confirmation | None = None,
                          intent: IntentRecord | None = None, decision: AuditRow | None = None
                          ) -> pykka.Future[int | None]:
        """`create_plan` without waiting: a future of the decision's audit row id. `plan`
        must not change until it is set (the store writes it as it is then)."""
        return self.submit(CreatePlan(plan, change, confirmation, intent, decision))

    def save_plan(self, plan: Plan, change: Change, *, expected_version: int | None = None,
                  keep_stored_json: bool = False, expected_epoch: int | None = None,
                  claim: bool = False) -> Plan:
        """Save `plan` with `change`, conditionally on the version (and epoch) read. With
        `claim`, this instance takes the plan (the plan carries the new owner and epoch,
        `expected_epoch` the one read)."""
        version = plan.version if expected_version is None else expected_version
        return self.write(SavePlan(  # type: ignore[no-any-return]
            plan, version, change, keep_stored_json, expected_epoch, claim))

    def save_plan_later(self, plan: Plan, change: Change) -> pykka.Future[Plan]:
        """`save_plan` without waiting: a future of the plan as saved."""
        return self.submit(SavePlan(plan, plan.version, change))

    def record_denial(self, intent: IntentRecord | None, close: IntentClose,
                      audit: AuditRow) -> int:
        return int(self.write(RecordDenial(intent, close, audit)))

    def close_intent(self, intent: IntentRecord | None, close: IntentClose) -> None:
        self.write(CloseIntent(intent, close))

    def append_audit(self, rows: Sequence[AuditRow], *, wait: bool = True) -> None:
        future = self.submit(AppendAudit(tuple(rows)))
        if wait:
            self.wait(future)

    def close_orphan_intents(self, *, before: dt.datetime, instance_ids: Sequence[str] = (),
                             include_unowned: bool = True) -> int:
        return int(self.write(CloseOrphanIntents(before, tuple(instance_ids), include_unowned)))

    def save_instance(self, instance_id: str, value: str, *, new: bool = False) -> None:
        self.write(SaveInstance(instance_id, value, new))

    def bury_instance(self, instance_id: str, value: str, *, before: dt.datetime) -> int:
        """Mark an instance dead and close (audited) the intents it never planned."""
        closed = self.close_orphan_intents(before=before, instance_ids=(instance_id,),
                                           include_unowned=False)
        self.write(SaveInstance(instance_id, value, False, dead=True))
        return closed

    def renew_leases(self, owner: str, value: str, *, lease_until: dt.datetime) -> set[str]:
        return self.write(RenewLeases(owner, value, lease_until))  # type: ignore[no-any-return]

    def claim_plans(self, owner: str, *, dead_owners: Sequence[str],
                    lease_until: dt.datetime, limit: int = 100) -> list[tuple[str, int]]:
        return self.write(  # type: ignore[no-any-return]
            ClaimPlans(owner, tuple(dead_owners), lease_until, limit))

    def release_leases(self, owner: str) -> int:
        return int(self.write(ReleaseLeases(owner)))

    def remember_answer(self, intent_id: str, answer_json: str) -> None:
        self.write(RememberAnswer(intent_id, answer_json))

    def release_key(self, intent_id: str) -> None:
        self.write(ReleaseKey(intent_id))

    def probe_write(self) -> DbFailure | None:
        """After a refused write: whether the database takes writes again (None) or why not."""
        return self.ref.ask(ProbeWrite(), timeout=self.timeout)  # type: ignore[no-any-return]

    def stats(self) -> tuple[int, int]:
        """(transactions committed, writes carried) since the store started."""
        return tuple(self.ref.ask(Stats(), timeout=self.timeout))  # type: ignore[return-value]

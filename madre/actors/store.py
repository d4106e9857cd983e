"""The Store actor: the one writer of the database, with group commit.

It takes named writes (`CreatePlan`, `SavePlan`, `RecordIntent`, `RecordDenial`,
`CloseIntent`, `AppendAudit`, `CloseOrphanIntents`), each with a reply future. The actor
queues them and tells itself `Flush`; pykka delivers that only after every message already
in the inbox, so under load one transaction (one fsync) carries a whole batch, and when
idle a write commits alone with no added delay. A write that fails makes the batch run
again one write per transaction, so it fails alone; replies are set only after COMMIT
returned, so "acknowledged" means "durable". The actor keeps its connection for its life.

After each commit, the listener (`on_commit`) hears what was committed, as records in commit
order (the metrics count them; the trail and the event streams are woken by it and read the
committed rows themselves, so a kill between commit and listener loses them nothing), and
`on_outcome` hears how the database took the batch (the health board's db state).
Reads never come here: they go to the repository from the thread that needs them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import peewee
import pykka

from madre.actors.writes import (
    AppendAudit,
    ClaimPlans,
    CloseIntent,
    CloseOrphanIntents,
    CreatePlan,
    Flush,
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
from madre.errors import DuplicateIntent, StoreUnavailable
from madre.model import Plan, utcnow
from madre.records import AuditRow, IntentRecord
from madre.store.columns import SCOPE_DEAD_INSTANCE, SCOPE_INSTANCE
from madre.store.db import is_sqlite, write_transaction
from madre.store.failures import DbFailure, describe
from madre.store.ordered import RowId
from madre.store.repository import Repository, stamp

log = logging.getLogger("madre.store")

MAX_BATCH = 256


# --------------------------------------------------------------------------- the actor


class StoreActor(pykka.ThreadingActor):
    """Applies writes to the repository in group-committed transactions."""

    def __init__(self, repository: Repository,
                 on_commit: Callable[[list[dict[str, Any]]], None] | None = None, *,
                 on_outcome: Callable[[DbFailure | None], None] | None = None,
                 lease_seconds: float = 10.0, clock: Callable[[], dt.datetime] = utcnow,
                 notify: bool = False,
                 on_rest: Callable[[Plan], None] | None = None) -> None:
        super().__init__()
        self._repo = repository
        # Hears each plan a save brought to rest (WAITING, DONE, ERROR), once it committed and
        # before its writer hears back: whoever waits for it wakes one thread hop sooner.
        self._on_rest = on_rest
        self._on_commit = on_commit
        self._on_outcome = on_outcome  # hears how each batch went: None ok, else the cause
        self._lease = dt.timedelta(seconds=lease_seconds)
        self._now = clock
        # Several instances (PostgreSQL): each commit NOTIFYs the others, so their event
        # streams and plan watchers wake (they poll too: a missed notice only costs time).
        self._notify = notify
        self._pending: list[_Queued] = []
        self._settled: list[str] = []  # plans this transaction brought to rest
        self._flush_scheduled = False
        self.commits = 0  # transactions committed: fewer than `writes` under load (group commit)
        self.writes = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Queued):
            self._pending.append(message)
            if self._flush_scheduled:
                return None
            if self.actor_inbox.empty():  # nothing else to gather: commit it now
                self._flush()
            else:  # the writes already queued behind it join its transaction
                self._flush_scheduled = True
                self.actor_ref.tell(Flush())
        elif isinstance(message, Flush):
            self._flush()
        elif isinstance(message, Stats):
            return (self.commits, self.writes)
        elif isinstance(message, ProbeWrite):
            return self._probe()
        else:
            return super().on_receive(message)
        return None

    # ------------------------------------------------------------------ applying one write

    def _apply(self, write: Write, trail: list[dict[str, Any]]) -> Any:
        """Run one write against the repository; add its forensic records to `trail`."""
        repo = self._repo
        if isinstance(write, SavePlan):
            plan, change = write.plan, write.change
            rows = stamp(change.audit, plan.status)
            saved = repo.save_plan(plan, expected_version=write.expected_version,
                                   expected_epoch=write.expected_epoch, audit=rows,
                                   close=change.close, job=change.job,
                                   confirmed_at=change.confirmed_at,
                                   keep_stored_json=write.keep_stored_json,
                                   lease_until=self._now() + self._lease if write.claim else None)
            trail.extend(map(_trail_entry, rows))
            if not saved.active:
                self._settled.append(saved.plan_id)
            return saved
        if isinstance(write, CreatePlan):
            rows = stamp(write.change.audit, write.plan.status)
            if write.intent is not None:
                repo.record_intent(write.intent)
                trail.append(_intent_entry(write.intent))
            action_id = None
            if write.decision is not None:
                action_id = repo.append_audit_returning_id(write.decision)
                trail.append(_trail_entry(write.decision))
            repo.create_plan(write.plan, audit=rows, close=write.change.close,
                             confirmation=write.confirmation,
                             lease_until=self._now() + self._lease)
            trail.extend(map(_trail_entry, rows))
            return action_id
        if isinstance(write, RenewLeases):
            repo.save_instance(write.owner, write.value, new=False)
            return repo.renew_leases(write.owner, lease_until=write.lease_until)
        if isinstance(write, ClaimPlans):
            return repo.claim_plans(write.owner, now=self._now(), lease_until=write.lease_until,
                                    dead_owners=write.dead_owners, limit=write.limit)
        if isinstance(write, ReleaseLeases):
            return repo.release_leases(write.owner)
        if isinstance(write, SaveInstance):
            repo.save_instance(write.instance_id, write.value, new=write.new,
                               scope=SCOPE_DEAD_INSTANCE if write.dead else SCOPE_INSTANCE)
            return None
        if isinstance(write, RecordIntent):
            repo.record_intent(write.intent)
            trail.append(_intent_entry(write.intent))
            return None
        if isinstance(write, RecordDenial | CloseIntent):
            if write.intent is not None:
                repo.record_intent(write.intent)
                trail.append(_intent_entry(write.intent))
            repo.close_intent(write.close)
            if isinstance(write, CloseIntent):
                return None
            trail.append(_trail_entry(write.audit))
            return repo.append_audit_returning_id(write.audit)
        if isinstance(write, AppendAudit):
            repo.append_audit(write.rows)
            trail.extend(map(_trail_entry, write.rows))
            return None
        if isinstance(write, CloseOrphanIntents):
            closed = repo.close_orphan_intents_of(write.instance_ids, before=write.before,
                                                  include_unowned=write.include_unowned)
            rows = tuple(AuditRow(action="intent_interrupted", intent_id=r.intent_id,
                                  session_id=r.session_id, actor="madre",
                                  reason="the instance that took it in stopped before "
                                         "planning it") for r in closed)
            repo.append_audit(rows)
            trail.extend(map(_trail_entry, rows))
            return len(closed)
        if isinstance(write, RememberAnswer):
            return repo.remember_answer(write.intent_id, write.answer_json)
        if isinstance(write, ReleaseKey):
            return repo.release_key(write.intent_id)
        raise TypeError(f"not a write the store knows: {type(write).__name__}")

    # ------------------------------------------------------------------ group commit

    def _flush(self) -> None:
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        self._flush_scheduled = bool(self._pending)
        if self._pending:
            self.actor_ref.tell(Flush())
        committed: list[dict[str, Any]] = []
        try:
            outcomes = self._commit_batch(batch, committed)
        except Exception as exc:  # BEGIN or COMMIT failed: the database is unavailable
            failure = describe(exc)
            log.error("group commit of %d writes failed: %s", len(batch), failure.sentence())
            unavailable = StoreUnavailable(failure.sentence())
            outcomes = [(queued, None, unavailable) for queued in batch]
            self._report(failure)
        self.commits += 1
        self.writes += len(batch)
        self._after_commit(committed)
        refused: DbFailure | None = None
        for queued, result, error in outcomes:
            if error is None:
                if isinstance(result, Plan) and not result.active and self._on_rest is not None:
                    self._rested(result)
                queued.reply.set(result)
                continue
            if isinstance(error, peewee.IntegrityError) and isinstance(
                    queued.write, RecordIntent | CreatePlan | RecordDenial | CloseIntent):
                error = DuplicateIntent(f"intent already recorded: {error}")
            elif _is_database_failure(error):
                refused = describe(error)
                error = StoreUnavailable(refused.sentence())
            queued.reply.set_exception((type(error), error, error.__traceback__))
        if refused is not None:
            self._report(refused)
        elif any(error is None for _, _, error in outcomes):
            self._report(None)

    def _commit_batch(
        self, batch: list[_Queued], committed: list[dict[str, Any]]
    ) -> list[tuple[_Queued, Any, BaseException | None]]:
        """Run the batch in one transaction; if a write fails, roll back and run each write in
        a transaction of its own, so the bad one fails alone and the others still commit.
        (Savepoints per write would cost two statements each on every batch.) The forensic
        records of what did commit are added to `committed`, in commit order."""
        database = self._repo.database
        if database.is_closed():
            database.connect()
        op_error: BaseException | None = None
        trail: list[dict[str, Any]] = []
        self._settled = []
        try:
            with write_transaction(database), self._repo.ordered.kept() as ordered:
                outcomes_ok: list[tuple[_Queued, Any, BaseException | None]] = []
                for queued in batch:
                    try:
                        outcomes_ok.append((queued, self._apply(queued.write, trail), None))
                    except Exception as exc:
                        op_error = exc
                        raise
                try:  # the rows kept to the end: a duplicate intent id fails here
                    self._tell_others(trail)
                    ordered.write()
                except Exception as exc:
                    op_error = exc
                    raise
            committed.extend(trail)
            return [(queued, _resolved(result), None) for queued, result, _ in outcomes_ok]
        except Exception:
            if len(batch) == 1:
                if op_error is not None:
                    # The write itself failed (a duplicate intent id, a stale plan save): its
                    # own error goes back to its caller, as on the one-by-one path below.
                    return [(batch[0], None, op_error)]
                raise  # BEGIN or COMMIT failed: the database is unavailable
        outcomes: list[tuple[_Queued, Any, BaseException | None]] = []
        for queued in batch:
            trail = []
            self._settled = []
            try:
                with write_transaction(database), self._repo.ordered.kept() as ordered:
                    result = self._apply(queued.write, trail)
                    self._tell_others(trail)
                    ordered.write()
                outcomes.append((queued, _resolved(result), None))
                committed.extend(trail)
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                outcomes.append((queued, None, exc))
        return outcomes

    def _report(self, refused: DbFailure | None) -> None:
        """Tell the health board how the database took this batch (None: it committed): the
        last write's outcome is what /health and /readyz say about the database."""
        if self._on_outcome is None:
            return
        try:
            self._on_outcome(refused)
        except Exception:  # a listener must never break the writer
            log.exception("write outcome listener failed")

    def _probe(self) -> DbFailure | None:
        """Try the database after a refused write; report and return the outcome."""
        database = self._repo.database
        try:
            if database.is_closed():
                database.connect()
            if is_sqlite(database):
                # A full disk leaves the WAL holding every byte it could get; moving it into
                # the database file (which needs the space back) is what frees it.
                database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            with write_transaction(database):
                database.execute_sql("SELECT 1")
            outcome = None
        except Exception as exc:  # noqa: BLE001 - the outcome is the answer
            outcome = describe(exc)
        self._report(outcome)
        return outcome

    def _tell_others(self, trail: list[dict[str, Any]]) -> None:
        """NOTIFY the other instances, inside the transaction (delivered at commit): that
        events were recorded, and which plans came to rest (their watchers wake; an actor
        still running one elsewhere stops)."""
        if self._notify and (trail or self._settled):
            self._repo.notify(self._repo.instance_id or "", self._settled)

    def _rested(self, plan: Plan) -> None:
        assert self._on_rest is not None
        try:
            self._on_rest(plan)
        except Exception:  # a listener must never break the writer
            log.exception("rest listener failed")

    def _after_commit(self, committed: list[dict[str, Any]]) -> None:
        """Tell the listener what was committed; never fails a write."""
        if self._on_commit is not None:
            try:
                self._on_commit(committed)
            except Exception:  # a listener must never break the writer
                log.exception("commit listener failed")

    def on_stop(self) -> None:
        if self._pending:
            self._flush_scheduled = False
            while self._pending:
                self._flush()
        self._repo.database.close()

    def on_failure(self, *exc_info: Any) -> None:
        for queued in self._pending:
            queued.reply.set_exception(exc_info)  # type: ignore[arg-type]
        self._pending.clear()


def _is_database_failure(error: BaseException) -> bool:
    """The database (not the write's own content) refused: disk, lock, connection."""
    return isinstance(error, peewee.DatabaseError | peewee.InterfaceError) and not isinstance(
        error, peewee.IntegrityError)


def _resolved(result: Any) -> Any:
    """A write's answer once committed: the id of a row written at the end, not its handle."""
    return result.value if isinstance(result, RowId) else result


def _trail_entry(row: AuditRow) -> dict[str, Any]:
    entry = {"event": row.action, "module": row.module, "reason": row.reason or None,
             "plan_id": row.plan_id, "intent_id": row.intent_id, "session_id": row.session_id,
             "actor": row.actor, "plan_status": row.plan_status, "detail": row.detail}
    return {k: v for k, v in entry.items() if v is not None}


def _intent_entry(intent: IntentRecord) -> dict[str, Any]:
    entry = {"event": "intent_received", "intent_id": intent.intent_id,
             "session_id": intent.session_id, "module": "madre", "actor": intent.source}
    return {k: v for k, v in entry.items() if v is not None}

"""The Store actor: the one writer of the database, with group commit.

Every write is a `Write(op, reply)` message; `op` is a function of the Repository. The
actor queues writes and tells itself `Flush`; pykka delivers that only after every message
already in the inbox, so under load one transaction (one fsync) carries a whole batch, and
when idle a write commits alone with no added delay. A write that fails makes the batch run
again one write per transaction, so it fails alone; replies are set only after COMMIT
returned, so "acknowledged" means "durable". The actor keeps its connection for its life.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import pykka

from madre.errors import StoreUnavailable
from madre.store.db import write_transaction
from madre.store.repository import Repository

log = logging.getLogger("madre.store")

T = TypeVar("T")
MAX_BATCH = 256


class Write(NamedTuple):
    op: Callable[[Repository], Any]
    reply: pykka.Future[Any]


class Flush(NamedTuple):
    pass


class Stats(NamedTuple):
    """Ask for (commits, writes) so far."""


class StoreActor(pykka.ThreadingActor):
    def __init__(self, repository: Repository,
                 on_commit: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        super().__init__()
        self._repo = repository
        self._on_commit = on_commit
        self._pending: list[Write] = []
        self._flush_scheduled = False
        self.commits = 0  # transactions committed: fewer than `writes` under load (group commit)
        self.writes = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Write):
            self._pending.append(message)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.actor_ref.tell(Flush())
        elif isinstance(message, Flush):
            self._flush()
        elif isinstance(message, Stats):
            return (self.commits, self.writes)
        else:
            return super().on_receive(message)
        return None

    def _flush(self) -> None:
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        self._flush_scheduled = bool(self._pending)
        if self._pending:
            self.actor_ref.tell(Flush())
        committed: list[dict[str, Any]] = []
        try:
            outcomes = self._commit_batch(batch, committed)
        except Exception as exc:
            log.exception("group commit of %d writes failed", len(batch))
            failure = StoreUnavailable(f"the database refused the write: {exc}")
            outcomes = [(write, None, failure) for write in batch]
        self.commits += 1
        self.writes += len(batch)
        self._after_commit(committed)
        for write, result, error in outcomes:
            if error is None:
                write.reply.set(result)
            else:
                write.reply.set_exception((type(error), error, error.__traceback__))

    def _commit_batch(
        self, batch: list[Write], committed: list[dict[str, Any]]
    ) -> list[tuple[Write, Any, BaseException | None]]:
        """Run the batch in one transaction; if a write fails, roll back and run each write in
        a transaction of its own, so the bad one fails alone and the others still commit.
        (Savepoints per write would cost two statements each on every batch.) The forensic
        records of what did commit are added to `committed`, in commit order."""
        database, repo = self._repo.database, self._repo
        if database.is_closed():
            database.connect()
        op_error: BaseException | None = None
        try:
            with write_transaction(database):
                outcomes_ok: list[tuple[Write, Any, BaseException | None]] = []
                for write in batch:
                    try:
                        outcomes_ok.append((write, write.op(repo), None))
                    except Exception as exc:
                        op_error = exc
                        raise
            committed.extend(repo.take_trail())
            return outcomes_ok
        except Exception:
            repo.take_trail()  # rolled back: none of it happened
            if len(batch) == 1:
                if op_error is not None:
                    # The write itself failed (a duplicate intent id, a superseded plan save):
                    # its own error goes back to its caller, as on the one-by-one path below.
                    return [(batch[0], None, op_error)]
                raise  # BEGIN or COMMIT failed: the database is unavailable
        outcomes: list[tuple[Write, Any, BaseException | None]] = []
        for write in batch:
            try:
                with write_transaction(database):
                    outcomes.append((write, write.op(repo), None))
                committed.extend(repo.take_trail())
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                repo.take_trail()
                outcomes.append((write, None, exc))
        return outcomes

    def _after_commit(self, committed: list[dict[str, Any]]) -> None:
        """Tell the listeners what was committed; never fails a write."""
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
        for write in self._pending:
            write.reply.set_exception(exc_info)  # type: ignore[arg-type]
        self._pending.clear()


class StoreClient:
    """How everyone else writes: submit an op, get a future, or wait for it with a timeout."""

    def __init__(self, ref: pykka.ActorRef[StoreActor], repository: Repository, *,
                 timeout: float = 30.0) -> None:
        self.ref = ref
        self.repo = repository
        self.timeout = timeout

    def submit(self, op: Callable[[Repository], T]) -> pykka.Future[T]:
        reply: pykka.Future[T] = pykka.ThreadingFuture()
        try:
            self.ref.tell(Write(op, reply))
        except pykka.ActorDeadError as exc:
            raise StoreUnavailable("the store is not running") from exc
        return reply

    def stats(self) -> tuple[int, int]:
        """(transactions committed, writes carried) since the store started."""
        return tuple(self.ref.ask(Stats(), timeout=self.timeout))  # type: ignore[return-value]

    def call(self, op: Callable[[Repository], T], *, timeout: float | None = None) -> T:
        try:
            return self.submit(op).get(timeout=timeout or self.timeout)
        except pykka.Timeout as exc:
            raise StoreUnavailable("the database did not answer in time") from exc
        except pykka.ActorDeadError as exc:
            raise StoreUnavailable("the store stopped before writing") from exc

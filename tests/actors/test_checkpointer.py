"""The checkpointer (SQLite): it moves every page of the write-ahead log into the database
file, commits wake it once per gathering however many they are, a failing checkpoint is said
once and raises nothing, and a Madre on SQLite runs one (on PostgreSQL none)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import peewee
import pytest

from madre import Madre
from madre.actors.checkpointer import (
    GATHER_SECONDS,
    CheckpointClient,
    Checkpointer,
    Moved,
)
from madre.actors.doorbell import Doorbell
from madre.contracts.intake import ChatRequest
from madre.store.db import open_database


class Later:
    """The scheduler's call_later, held: the test delivers what is due itself."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, fn: Callable[[], None]) -> None:
        self.calls.append((delay, fn))

    def run_all(self) -> None:
        calls, self.calls = self.calls, []
        for _, fn in calls:
            fn()


@pytest.fixture
def database(tmp_path: Any) -> Iterator[peewee.Database]:
    """A SQLite file opened as Madre opens it, with a table and some committed rows: pages in
    the log that no checkpoint moved yet (the writer's own starts at 10,000 pages)."""
    db = open_database(f"sqlite:///{tmp_path}/wal.db")
    with db.connection_context():
        db.execute_sql("CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT)")
        for i in range(50):
            with db.atomic():
                db.execute_sql("INSERT INTO rows (body) VALUES (?)", (f"row {i} " * 40,))
    yield db
    db.close_all()


@pytest.fixture
def checkpointer(database: peewee.Database) -> Iterator[tuple[CheckpointClient, Later, Any]]:
    later, ring = Later(), Doorbell()
    ref = Checkpointer.start(database, ring)
    try:
        yield CheckpointClient(ref, ring, later), later, ref
    finally:
        ref.stop()


def left_in_log(database: peewee.Database) -> int:
    """Pages of the log not in the database file yet (a checkpoint of our own tells)."""
    with database.connection_context():
        _, logged, moved = database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(logged) - int(moved)


def test_a_checkpoint_moves_every_page_of_the_log_into_the_database_file(
        checkpointer, database) -> None:
    client, _, _ = checkpointer

    moved = client.now(timeout=10)

    assert moved is not None and moved.log_pages > 0, moved
    assert moved.moved_pages == moved.log_pages
    assert left_in_log(database) == 0


def test_commits_wake_the_checkpointer_once_per_gathering_and_again_after_it_ran(
        checkpointer) -> None:
    client, later, ref = checkpointer

    for _ in range(5):  # five commits in a row: one checkpoint, GATHER_SECONDS later
        client.wake()
    assert [delay for delay, _ in later.calls] == [GATHER_SECONDS]
    later.run_all()
    client.now(timeout=10)  # answered after the checkpoint the wake-up delivered
    assert ref.proxy().checkpoints.get(timeout=10) == 2

    client.wake()  # that checkpoint answered the doorbell: the next commit rings again
    assert len(later.calls) == 1


def test_a_wake_up_delivered_after_the_checkpointer_stopped_is_dropped(checkpointer) -> None:
    client, later, ref = checkpointer
    client.wake()
    ref.stop()

    later.run_all()  # the scheduler fires after Madre stopped the actor: nothing raises


class Failing:
    """A database whose checkpoints fail as a full disk fails them."""

    def connection_context(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def execute_sql(self, sql: str) -> Any:
        raise peewee.OperationalError("database or disk is full")


def test_a_failing_checkpoint_is_said_once_and_raises_nothing(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="madre.store")
    ring = Doorbell()
    ref = Checkpointer.start(Failing(), ring)
    client = CheckpointClient(ref, ring, Later())
    try:
        assert [client.now(timeout=10) for _ in range(3)] == [None, None, None]
        assert ref.is_alive()
    finally:
        ref.stop()
    said = [r.getMessage() for r in caplog.records if "WAL checkpoint failed" in r.getMessage()]
    assert len(said) == 1 and "database or disk is full" in said[0], said


def test_a_madre_on_sqlite_checkpoints_its_log_itself_and_one_on_postgresql_has_none(
        madre: Madre, database_url: str) -> None:
    madre.chat(ChatRequest(message="hello"), wait=5)
    if not database_url.startswith("sqlite"):
        assert madre.checkpoints is None
        return
    assert madre.checkpoints is not None
    moved = madre.checkpoints.now(timeout=10)
    assert isinstance(moved, Moved) and moved.moved_pages == moved.log_pages > 0

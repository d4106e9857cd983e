"""The Store actor alone, over a repository on a database of its own (SQLite in tmp_path, and
PostgreSQL when configured): named writes, group commit, a failing write failing alone,
stale saves refused, the commit listener told what committed. No other actor runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from madre.actors.store import StoreActor
from madre.actors.store_client import StoreClient
from madre.actors.writes import RecordIntent
from madre.errors import DuplicateIntent, StaleWrite
from madre.model import Plan, Status, new_id, utcnow
from madre.records import NO_CHANGE, AuditRow, Change, IntentClose, IntentRecord
from madre.rules import lifecycle
from madre.store.repository import Repository


class Listener:
    """The commit listener: keeps what each commit recorded; can hold the Store actor's
    thread inside a commit until released (to make writes pile up in its inbox)."""

    def __init__(self) -> None:
        self.commits: list[list[dict[str, Any]]] = []
        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()
        self.fail = False

    def __call__(self, records: list[dict[str, Any]]) -> None:
        self.commits.append(records)
        if self.hold.is_set():
            self.hold.clear()
            self.held.set()
            assert self.release.wait(10)
        if self.fail:
            raise RuntimeError("a listener that breaks")


@pytest.fixture
def listener() -> Listener:
    return Listener()


@pytest.fixture
def store(repo: Repository, listener: Listener) -> Iterator[StoreClient]:
    ref = StoreActor.start(repo, on_commit=listener)
    try:
        yield StoreClient(ref, timeout=10)
    finally:
        listener.release.set()
        ref.stop(block=True, timeout=10)


def intent(intent_id: str | None = None) -> IntentRecord:
    return IntentRecord(intent_id or new_id(), "test", {"message": "hi"}, "s-1")


def a_plan() -> Plan:
    return Plan(intent_id=new_id(), session_id=new_id(), source="test")


def test_a_write_is_acknowledged_once_another_connection_can_read_it(store, repo) -> None:
    plan = a_plan()
    store.create_plan(plan, NO_CHANGE, intent=intent(plan.intent_id))

    assert repo.load_plan(plan.plan_id) == plan
    assert repo.find_intent(plan.intent_id) is not None


def test_writes_that_pile_up_while_one_commits_go_out_in_one_transaction(store, listener
                                                                         ) -> None:
    listener.hold.set()
    store.append_audit([AuditRow(action="first")], wait=False)
    assert listener.held.wait(10)  # the actor is inside the first commit's listener now
    futures = [store.submit(RecordIntent(intent())) for _ in range(10)]
    listener.release.set()
    for future in futures:
        store.wait(future)

    assert store.stats() == (2, 11)  # the first alone, then the ten in one transaction


def test_a_failing_write_fails_alone_and_the_rest_of_its_batch_commits(store, repo, listener
                                                                       ) -> None:
    taken = intent()
    store.record_intent(taken)
    listener.hold.set()
    store.append_audit([AuditRow(action="first")], wait=False)
    assert listener.held.wait(10)
    fresh = [intent() for _ in range(3)]
    futures = [store.submit(RecordIntent(fresh[0])), store.submit(RecordIntent(taken)),
               *(store.submit(RecordIntent(i)) for i in fresh[1:])]
    listener.release.set()

    store.wait(futures[0])
    with pytest.raises(DuplicateIntent):
        store.wait(futures[1])
    for future in futures[2:]:
        store.wait(future)
    assert all(repo.find_intent(i.intent_id) is not None for i in fresh)


def test_a_save_against_a_version_the_store_moved_past_changes_nothing(store, repo) -> None:
    plan = a_plan()
    store.create_plan(plan, NO_CHANGE)
    stale = plan.model_copy(deep=True)
    now = utcnow()
    started = store.save_plan(plan, lifecycle.start(plan, now=now))

    lifecycle.cancel(stale, reason="late", actor="test", now=now)
    with pytest.raises(StaleWrite):
        store.save_plan(stale, Change(audit=(AuditRow(action="must_not_land",
                                                      plan_id=plan.plan_id),)))

    stored = repo.load_plan(plan.plan_id)
    assert stored is not None and stored.status is Status.RUNNING
    assert stored.version == started.version == 1


def test_the_listener_hears_each_commit_in_order_with_the_plan_status_after_it(
        store, listener) -> None:
    plan = a_plan()
    store.create_plan(plan, NO_CHANGE, intent=intent(plan.intent_id))
    store.save_plan(plan, lifecycle.start(plan, now=utcnow()))

    events = [r["event"] for commit in listener.commits for r in commit]
    assert events == ["intent_received", "plan_started"]
    assert listener.commits[-1][-1]["plan_status"] == "RUNNING"


def test_a_listener_that_raises_never_fails_the_write(store, repo, listener) -> None:
    listener.fail = True
    record = intent()

    store.record_intent(record)

    assert repo.find_intent(record.intent_id) is not None


def test_writes_still_queued_when_the_store_stops_are_committed_first(repo, listener) -> None:
    ref = StoreActor.start(repo, on_commit=listener)
    store = StoreClient(ref, timeout=10)
    records = [intent() for _ in range(20)]
    futures = [store.submit(RecordIntent(r)) for r in records]

    ref.stop(block=True, timeout=10)

    for future in futures:
        future.get(timeout=0)
    assert all(repo.find_intent(r.intent_id) is not None for r in records)


def test_a_denial_closes_its_intent_and_answers_the_id_of_its_audit_row(store, repo) -> None:
    record = intent()
    action_id = store.record_denial(record, IntentClose(record.intent_id, "denied", "no"),
                                    AuditRow(action="denied", intent_id=record.intent_id))

    row = repo.find_intent(record.intent_id)
    assert row is not None and row.result_status == "denied"
    assert isinstance(action_id, int) and action_id > 0


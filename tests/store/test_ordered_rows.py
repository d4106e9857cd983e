"""The rows readers follow by id (intents_log, madre_actions) are kept to the end of the
Store's transaction and written there together, under the order lock on PostgreSQL; the
other statements of a write go in one round trip (`Statements.run_together`). On SQLite in
tmp_path, and on PostgreSQL when configured."""

from __future__ import annotations


import peewee
import psycopg2
import pytest

from madre.model import Plan, new_id
from madre.records import AuditRow, IntentClose, IntentRecord
from madre.store.db import is_sqlite, write_transaction
from madre.store.ordered import ORDER_LOCK
from madre.store.repository import Repository


def count(repo: Repository, table: str) -> int:
    return int(repo.database.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def context_row(key: str) -> tuple[object, ...]:
    return (None, key, "v", "global", "2026-12-02 10:00:00")


def intent(intent_id: str | None = None) -> IntentRecord:
    return IntentRecord(intent_id or new_id(), "test", {"message": "hi"}, "s-1")


def test_kept_rows_reach_the_tables_only_when_written_in_the_order_they_were_asked_for(
        repo) -> None:
    with write_transaction(repo.database), repo.ordered.kept() as ordered:
        repo.record_intent(intent("i-1"))
        repo.append_audit([AuditRow(action="first"), AuditRow(action="second")])
        third = repo.append_audit_returning_id(AuditRow(action="third"))
        assert (count(repo, "intents_log"), count(repo, "madre_actions")) == (0, 0)
        assert third.value is None

        ordered.write()

        rows = repo.database.execute_sql("SELECT id, action FROM madre_actions ORDER BY id")
        actions = [(int(i), a) for i, a in rows.fetchall()]
    assert [a for _, a in actions] == ["first", "second", "third"]
    assert third.value == actions[-1][0]
    assert count(repo, "intents_log") == 1


def test_an_intent_planned_and_closed_while_its_row_is_kept_is_written_as_it_ends(
        repo) -> None:
    plan = Plan(intent_id="i-2", session_id="s-1", source="test")
    with write_transaction(repo.database), repo.ordered.kept() as ordered:
        repo.record_intent(intent("i-2"))
        repo.create_plan(plan, audit=(), confirmation=None,
                         close=IntentClose("i-2", "done", "finished at once"))
        ordered.write()

    row = repo.database.execute_sql(
        "SELECT plan_id, result_status, notes, processed_by_madre_at FROM intents_log"
        " WHERE intent_id = 'i-2'").fetchone()
    assert tuple(row[:3]) == (plan.plan_id, "done", "finished at once") and row[3]


def test_a_second_row_of_one_intent_in_one_transaction_fails_as_the_unique_index_would(
        repo) -> None:
    with pytest.raises(peewee.IntegrityError):
        with write_transaction(repo.database), repo.ordered.kept():
            repo.record_intent(intent("i-3"))
            repo.record_intent(intent("i-3"))

    assert count(repo, "intents_log") == 0


def test_rows_kept_by_a_transaction_that_failed_are_dropped_with_it(repo) -> None:
    with pytest.raises(RuntimeError):
        with write_transaction(repo.database), repo.ordered.kept():
            repo.append_audit([AuditRow(action="rolled_back")])
            raise RuntimeError("the write failed")
    with write_transaction(repo.database), repo.ordered.kept() as ordered:
        repo.append_audit([AuditRow(action="next")])
        ordered.write()

    actions = repo.database.execute_sql("SELECT action FROM madre_actions").fetchall()
    assert [a for (a,) in actions] == ["next"]


def test_outside_the_stores_transaction_rows_are_written_at_once(repo) -> None:
    repo.append_audit([AuditRow(action="now")])

    assert count(repo, "madre_actions") == 1


def order_lock_holders(url: str) -> int:
    """Sessions holding the order lock, as another connection sees them (a bigint key shows
    in pg_locks as its high and low 32 bits)."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'"
                        " AND classid = %s AND objid = %s AND objsubid = 1 AND granted",
                        (ORDER_LOCK >> 32, ORDER_LOCK & 0xFFFFFFFF))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_on_postgresql_the_order_lock_is_held_from_the_kept_rows_to_commit_only(
        repo, database_url) -> None:
    if is_sqlite(repo.database):
        pytest.skip("the order lock is PostgreSQL's: SQLite has one writer at a time")
    plan = Plan(intent_id="i-4", session_id="s-1", source="test")
    with write_transaction(repo.database), repo.ordered.kept() as ordered:
        repo.record_intent(intent("i-4"))
        repo.create_plan(plan, audit=(AuditRow(action="plan_created"),), confirmation=None,
                         close=None)
        assert order_lock_holders(database_url) == 0  # the plan's rows did not take it

        ordered.write()

        assert order_lock_holders(database_url) == 1
    assert order_lock_holders(database_url) == 0


def test_statements_run_together_answer_the_row_count_of_the_last(repo) -> None:
    sql = repo.sql
    steps = [sql.step("close_intent", ("done", None, None, "nobody")),
             *sql.insert_rows("insert_context", [context_row("k")] * 2),
             ("UPDATE context SET value = 'w' WHERE key = 'k'", [])]

    with write_transaction(repo.database):
        changed = sql.run_together(steps)

    assert changed == 2


def test_a_failing_statement_among_ones_run_together_raises_and_rolls_back_the_rest(
        repo) -> None:
    sql = repo.sql
    steps = [*sql.insert_rows("insert_context", [context_row("k")]),
             ("INSERT INTO no_such_table VALUES (1)", [])]

    with pytest.raises(peewee.DatabaseError):
        with write_transaction(repo.database):
            sql.run_together(steps)

    assert count(repo, "context WHERE key = 'k'") == 0


def test_more_rows_than_sqlite_takes_parameters_for_go_in_several_statements(repo) -> None:
    rows = [context_row(f"k{i}") for i in range(450)]  # 2,250 parameters
    steps = repo.sql.insert_rows("insert_context", rows)

    with write_transaction(repo.database):
        repo.sql.run_together(steps)

    assert count(repo, "context WHERE value = 'v'") == 450
    if is_sqlite(repo.database):
        assert len(steps) == 3 and all(len(params) <= 999 for _, params in steps)
    else:  # psycopg2 puts the parameters in the text: no limit, one statement
        assert len(steps) == 1

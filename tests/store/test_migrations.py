"""A database made by an older Madre (or by the original) gains the columns Madre needs: on
SQLite and on PostgreSQL (a database made for each test), two instances starting together
migrate it once (the advisory lock), `madre db status` / `madre db migrate` as commands, and
MADRE_MIGRATE=off refusing to start on an old schema."""

from __future__ import annotations

import logging
import os
import pathlib
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from madre import Madre, Settings
from madre.contracts.intake import ChatRequest
from madre.errors import ConfigError
from madre.store.migrations import NEWEST, STEPS


def test_a_tasks_table_with_only_the_original_columns_is_migrated_on_start(tmp_path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE tasks (id INTEGER PRIMARY KEY, uuid VARCHAR(36) UNIQUE NOT NULL,"
            " name VARCHAR(255) NOT NULL, module VARCHAR(50) NOT NULL,"
            " action VARCHAR(100) NOT NULL, status VARCHAR(20), created_at DATETIME,"
            " updated_at DATETIME, result TEXT, error TEXT)")
        conn.execute("INSERT INTO tasks (uuid, name, module, action, status) VALUES"
                     " ('legacy-1', 'madre_plan', 'madre', 'chat', 'pending')")
    settings = Settings(database_url=f"sqlite:///{path}", forensic_dir=str(tmp_path / "f"),
                        switch_url="http://127.0.0.1:9", health_interval_seconds=60)
    with Madre(settings) as madre:
        columns = {c.name for c in madre.database.get_columns("tasks")}
        assert {"plan_json", "version", "deadline", "session_id"} <= columns
        answer = madre.chat(ChatRequest(message="hello"), wait=0)
        assert answer.intent_id
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT uuid FROM tasks WHERE uuid = 'legacy-1'").fetchone()


def test_starting_twice_on_the_same_database_migrates_nothing_the_second_time(tmp_path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/m.db",
                        forensic_dir=str(tmp_path / "f"), health_interval_seconds=60)
    from madre.store.migrations import ensure_schema

    with Madre(settings) as madre:
        assert ensure_schema(madre.database, madre.models) == []


def test_a_version_3_database_loses_its_redundant_context_index_and_keeps_its_plans(
        tmp_path) -> None:
    path = tmp_path / "v3.db"
    settings = Settings(database_url=f"sqlite:///{path}", forensic_dir=str(tmp_path / "f"),
                        switch_url="http://127.0.0.1:9", health_interval_seconds=60)
    with Madre(settings) as madre:
        plan_id = madre.chat(ChatRequest(message="hello"), wait=0).plan_id
    with sqlite3.connect(path) as conn:  # as version 3 left it: with the foreign key's index
        conn.execute("CREATE INDEX context_task_id ON context (task_id)")
        conn.execute("UPDATE context SET value = '3' WHERE key = 'madre:schema_version'")

    with Madre(settings) as madre:
        assert madre.get_plan(plan_id) is not None
    with sqlite3.connect(path) as conn:
        indexes = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'context'")}
        version = conn.execute(
            "SELECT value FROM context WHERE key = 'madre:schema_version'").fetchone()
        lookup = conn.execute("EXPLAIN QUERY PLAN SELECT * FROM context WHERE task_id = ?",
                              (plan_id,)).fetchall()
    assert "context_task_id" not in indexes and "context_task_id_key" in indexes
    assert version == (str(NEWEST),) and NEWEST == 4
    assert "USING INDEX context_task_id_key" in str(lookup)


# --------------------------------------------------------------------------- PostgreSQL


ROOT = pathlib.Path(__file__).resolve().parents[2]
ORIGINAL_TASKS = (
    "CREATE TABLE tasks (id SERIAL PRIMARY KEY, uuid VARCHAR(36) UNIQUE NOT NULL,"
    " name VARCHAR(255) NOT NULL, module VARCHAR(50) NOT NULL,"
    " action VARCHAR(100) NOT NULL, status VARCHAR(20), created_at TIMESTAMP,"
    " updated_at TIMESTAMP, result TEXT, error TEXT)")


@pytest.fixture
def old_postgres() -> Iterator[str]:
    """A database of its own holding only the original's `tasks` table (and one row)."""
    admin = os.environ.get("MADRE_TEST_DATABASE_URL")
    if not admin:
        pytest.skip("needs PostgreSQL: set MADRE_TEST_DATABASE_URL")
    import psycopg2
    from processes import fresh_postgres

    with fresh_postgres(admin) as url:
        conn = psycopg2.connect(url)
        with conn, conn.cursor() as cur:
            cur.execute(ORIGINAL_TASKS)
            cur.execute("INSERT INTO tasks (uuid, name, module, action, status) VALUES"
                        " ('legacy-1', 'madre_plan', 'madre', 'chat', 'pending')")
        conn.close()
        yield url


def pg_settings(url: str, tmp_path: pathlib.Path, **overrides: object) -> Settings:
    return Settings(database_url=url, forensic_dir=str(tmp_path / "f"),
                    switch_url="http://127.0.0.1:9", health_interval_seconds=60,
                    **overrides)  # type: ignore[arg-type]


def test_an_original_tasks_table_on_postgresql_is_migrated_on_start(old_postgres,
                                                                    tmp_path) -> None:
    with Madre(pg_settings(old_postgres, tmp_path)) as madre:
        columns = {c.name for c in madre.database.get_columns("tasks")}
        assert {"plan_json", "version", "owner", "lease_until", "epoch"} <= columns
        assert madre.chat(ChatRequest(message="hello"), wait=0).intent_id
        legacy = madre.database.execute_sql(
            "SELECT uuid FROM tasks WHERE uuid = 'legacy-1'").fetchone()
        assert legacy == ("legacy-1",)


def test_two_instances_starting_together_on_an_old_schema_migrate_it_once(
        old_postgres, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="madre.store")
    barrier = threading.Barrier(2)
    started: list[Madre] = []
    failed: list[BaseException] = []

    def start(name: str) -> None:
        barrier.wait()
        try:
            started.append(Madre(pg_settings(old_postgres, tmp_path / name,
                                             instance_id=name)).start())
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            failed.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in ("m1", "m2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not failed and len(started) == 2, failed
        migrated = [r.getMessage() for r in caplog.records
                    if r.getMessage().startswith("schema migrated to version")]
        assert sorted(migrated) == sorted(f"schema migrated to version {s.version}: {s.title}"
                                          for s in STEPS), migrated
    finally:
        for madre in started:
            madre.stop()


def test_madre_migrate_off_refuses_to_start_on_an_old_schema_saying_what_to_run(
        old_postgres, tmp_path) -> None:
    with pytest.raises(ConfigError) as refused:
        Madre(pg_settings(old_postgres, tmp_path, migrate="off")).start()
    assert f"needs {NEWEST}" in str(refused.value)
    assert "madre db migrate" in str(refused.value)

    env = {**cli_env(old_postgres), "MADRE_MIGRATE": "off", "VX11_TOKEN": "t" * 24,
           "MADRE_PORT": "0", "MADRE_FORENSIC_DIR": str(tmp_path / "f")}
    served = subprocess.run([sys.executable, str(ROOT / "run.py")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert served.returncode != 0
    assert "madre db migrate" in served.stdout + served.stderr


def cli_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MADRE_")}
    return {**env, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}


def madre_db(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "madre", "db", *args], env=cli_env(url),
                          capture_output=True, text=True, timeout=60, check=False)


def test_madre_db_status_and_migrate_run_as_commands_and_two_migrations_at_once_run_once(
        old_postgres) -> None:
    before = madre_db(old_postgres, "status")
    assert before.returncode == 1, before.stderr
    assert "a schema from before versions" in before.stdout
    assert "/madre_t_" in before.stdout and "postgres@" not in before.stdout

    results: list[subprocess.CompletedProcess[str]] = []
    runs = [threading.Thread(target=lambda: results.append(madre_db(old_postgres, "migrate")))
            for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(90)

    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    outputs = sorted(r.stdout for r in results)
    assert sum("already at the newest version" in o for o in outputs) == 1, outputs
    # "<database>: 1: ...; 2: ...": looked for after the database's name, which may end in
    # a digit ("madre_t_...f3: already at the newest version").
    ran = [" " + o.partition(": ")[2] for o in outputs]
    assert sum(f" {NEWEST}: " in r for r in ran) == 1, outputs
    after = madre_db(old_postgres, "status")
    assert after.returncode == 0 and f"schema version {NEWEST} (the newest)" in after.stdout

"""A database made by an older Madre (or by the original) gains the columns Madre needs."""

from __future__ import annotations

import sqlite3

from madre import Madre, Settings
from madre.contracts.intake import ChatRequest


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

"""Fixtures: a database (SQLite file, and PostgreSQL when configured), loopback stand-ins of
the VX11 modules, a running Madre (and `start_madre` for more, with other settings), an HTTP
client over it, and a real uvicorn server. Plain helpers (TOKEN, make_settings, table reads,
HTTP calls) are in helpers.py.

Every test that takes `madre` runs twice: on SQLite (a file in tmp_path) and on PostgreSQL.
The PostgreSQL run needs MADRE_TEST_DATABASE_URL (`.ci/run` sets it); without it those
runs are skipped with that reason.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import TOKEN, make_settings

from madre import Madre, Settings, create_app
from madre.standins import ENV_VARS, LoopbackServer, StandinCluster
from madre.store.db import open_database
from madre.store.migrations import KEY_SCHEMA_VERSION, SCOPE_SCHEMA, ensure_schema
from madre.store.models import TABLE_NAMES, build_models
from madre.store.repository import Repository

PG_ENV = "MADRE_TEST_DATABASE_URL"


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(PG_ENV)
    return f"postgresql: {url}" if url else f"postgresql: skipped ({PG_ENV} is not set)"


def _reset_postgres(url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url.replace("postgresql+pool://", "postgresql://"))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            existing = [t for t in TABLE_NAMES if _table_exists(cur, t)]
            if existing:
                cur.execute("SELECT value FROM context WHERE key = %s AND scope = %s",
                            (KEY_SCHEMA_VERSION, SCOPE_SCHEMA)) if "context" in existing else None
                version = cur.fetchone() if "context" in existing else None
                cur.execute(f"TRUNCATE {', '.join(existing)} RESTART IDENTITY CASCADE")
                if version is not None:  # keep the schema's version: no migration next start
                    cur.execute("INSERT INTO context (task_id, key, value, scope, created_at)"
                                " VALUES (NULL, %s, %s, %s, now())",
                                (KEY_SCHEMA_VERSION, version[0], SCOPE_SCHEMA))
    finally:
        conn.close()


def _table_exists(cur: Any, name: str) -> bool:
    cur.execute("SELECT to_regclass(%s)", (f"public.{name}",))
    return cur.fetchone()[0] is not None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/madre.db"
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"PostgreSQL run skipped: set {PG_ENV}=postgresql://user@host/db to run it")
    _reset_postgres(url)
    return url


@pytest.fixture
def repo(database_url: str) -> Iterator[Repository]:
    """A repository alone over `database_url`'s schema (no actor, no Madre)."""
    database = open_database(database_url)
    models = build_models(database)
    ensure_schema(database, models)
    yield Repository(database, models)
    database.close_all() if hasattr(database, "close_all") else database.close()


@pytest.fixture(scope="session")
def standins_session() -> Iterator[StandinCluster]:
    with StandinCluster(token=TOKEN) as cluster:
        yield cluster


@pytest.fixture
def standins(standins_session: StandinCluster) -> Iterator[StandinCluster]:
    """The six stand-ins (token TOKEN), all "ok", with nothing recorded and no Madre URL."""
    standins_session.reset()
    standins_session.madre_url = None
    yield standins_session
    standins_session.release_all()
    standins_session.reset()


@pytest.fixture
def unreachable_modules() -> Iterator[dict[str, str]]:
    """SWITCH_URL, HERMES_URL, ... all at a loopback port that refuses every connection: a
    socket bound (so nothing else can take the port) that never listens. For a Madre whose
    modules must be down, whatever runs on the default ports 8002-8008."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        yield {variable: url for variable in ENV_VARS.values()}


@pytest.fixture
def modes(request: pytest.FixtureRequest) -> dict[str, str]:
    """Stand-in modes a test wants in force before Madre starts (parametrize it with
    indirect=True; the test's own `settings` fixture applies them)."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def settings(database_url: str, standins: StandinCluster) -> Settings:
    return make_settings(database_url, standins)


@pytest.fixture
def madre(settings: Settings) -> Iterator[Madre]:
    with Madre(settings) as runtime:
        yield runtime


RUNTIME_OPTIONS = ("clock", "step_runner", "recovery")  # Madre's own keyword arguments


@pytest.fixture
def start_madre(database_url: str, standins: StandinCluster) -> Iterator[Callable[..., Madre]]:
    """Start extra Madres on this test's database; keyword arguments are settings, except
    `clock`, `step_runner` and `recovery`, which go to Madre itself. All stopped after."""
    started: list[Madre] = []

    def start(**overrides: Any) -> Madre:
        options = {k: overrides.pop(k) for k in RUNTIME_OPTIONS if k in overrides}
        url = overrides.pop("database_url", database_url)
        runtime = Madre(make_settings(url, standins, **overrides), **options).start()
        started.append(runtime)
        return runtime

    yield start
    for runtime in reversed(started):
        runtime.stop()


@pytest.fixture
def client(madre: Madre) -> Iterator[Any]:
    from starlette.testclient import TestClient

    with TestClient(create_app(madre), headers={"X-VX11-Token": TOKEN}) as http:
        yield http


@pytest.fixture
def live_url(madre: Madre, standins: StandinCluster) -> Iterator[str]:
    """Madre's app served by a real uvicorn on a loopback port; the Spawner stand-in
    reports finished jobs to it."""
    with LoopbackServer(create_app(madre), lifespan="on", name="madre") as server:
        standins.madre_url = server.url
        yield server.url


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Every test ends with no non-daemon thread it started still alive."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate()
              if t not in before and t.is_alive() and not t.daemon]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads outlived the test: {still}"


@pytest.fixture(autouse=True)
def forensic_trail_in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's Madres keep their forensic trail in that test's tmp_path (out of the
    working tree): the trail copies its database, so two tests never share one."""
    monkeypatch.setenv("MADRE_FORENSIC_DIR", str(tmp_path / "forensic"))

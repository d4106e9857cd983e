"""`python run.py` as a real process: it serves, stops cleanly on signals, refuses bad settings."""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from served import RUN, Served, madre_env


@pytest.fixture
def served(tmp_path: pathlib.Path, unreachable_modules: dict[str, str]
           ) -> Iterator[tuple[Served, str]]:
    """`python run.py` with its defaults but two: the port is the system's pick, and the
    modules' addresses refuse connections, so what it does never depends on what else runs
    on this machine (stand-ins on the default ports 8002-8008 included)."""
    env = madre_env(MADRE_LOG_LEVEL="INFO", MADRE_HEALTH_INTERVAL_SECONDS="30",
                    **unreachable_modules)
    process = Served(tmp_path, env, merge_stderr=True)
    try:
        yield process, process.serving()
    finally:
        process.close()


def test_run_py_serves_on_sqlite_at_data_runtime_vx11_db(served, tmp_path) -> None:
    _, url = served
    answer = requests.get(url + "/health", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["module"] == "madre"
    assert (tmp_path / "data" / "runtime" / "vx11.db").is_file()


def test_run_py_answers_a_chat_with_the_default_token(served) -> None:
    _, url = served
    answer = requests.post(url + "/madre/chat", json={"message": "hello madre"},
                           headers={"X-VX11-Token": "vx11-local-token"}, timeout=30)
    assert answer.status_code == 200
    assert answer.json()["provider"] == "fallback_local"


def test_run_py_logs_json_lines(served) -> None:
    process, url = served
    entry = json.loads(process.wait_for("madre serving"))
    assert entry["level"] == "INFO" and "time" in entry and entry["logger"] == "madre"
    assert entry["url"] == url and entry["database"].endswith("/data/runtime/vx11.db")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl_c"])
def test_a_signal_stops_the_server_and_every_actor(served, sig) -> None:
    process, _ = served
    assert process.signal(sig) == 0
    process.wait_for("madre stopped")


def run_once(tmp_path: pathlib.Path, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = madre_env(**env_overrides)
    return subprocess.run([sys.executable, str(RUN)], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=60)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MADRE_PORT", "eighty"), ("DATABASE_URL", "mysql://x/y"), ("SWITCH_URL", "localhost:8002"),
     ("MADRE_CONFIRM_TTL_SECONDS", "-5"), ("MADRE_LOG_FORMAT", "xml")],
)
def test_an_invalid_setting_stops_start_up_naming_the_variable(tmp_path, variable, value) -> None:
    done = run_once(tmp_path, **{variable: value})
    assert done.returncode == 2
    assert variable in done.stderr
    assert "Traceback" not in done.stderr


def test_the_default_token_on_a_public_address_is_refused(tmp_path) -> None:
    done = run_once(tmp_path, MADRE_HOST="0.0.0.0", VX11_TOKEN="vx11-local-token")
    assert done.returncode == 2
    assert "VX11_TOKEN" in done.stderr

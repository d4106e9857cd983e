"""`python run.py` as a real process: it serves, stops cleanly on signals, refuses bad settings."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import requests
from helpers import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUN = ROOT / "run.py"


class Served:
    """A `python run.py` process whose log lines are read as they come."""

    def __init__(self, cwd: pathlib.Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(RUN)], cwd=cwd, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, text: str, timeout: float = 30) -> str:
        """The first log line containing `text`, read already or waited for."""
        for line in self.seen:
            if text in line:
                return line
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"process ended before logging {text!r}: {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@pytest.fixture
def served(tmp_path: pathlib.Path) -> Iterator[tuple[Served, str]]:
    port = free_port()
    env = {**os.environ, "MADRE_PORT": str(port), "MADRE_LOG_LEVEL": "INFO",
           "MADRE_HEALTH_INTERVAL_SECONDS": "30"}
    for name in ("DATABASE_URL", "VX11_TOKEN", "MADRE_HOST"):
        env.pop(name, None)
    process = Served(tmp_path, env)
    try:
        process.wait_for_line("Uvicorn running on")
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(timeout=10)


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
    process, _ = served
    entry = json.loads(process.wait_for_line("madre serving"))
    assert entry["level"] == "INFO" and "time" in entry and entry["logger"] == "madre"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl_c"])
def test_a_signal_stops_the_server_and_every_actor(served, sig) -> None:
    process, _ = served
    assert process.stop(sig) == 0
    process.wait_for_line("madre stopped")


def run_once(tmp_path: pathlib.Path, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MADRE_PORT": str(free_port()), **env_overrides}
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

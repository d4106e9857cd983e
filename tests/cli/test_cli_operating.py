"""The `madre` command as an operator uses it, run as subprocesses against a live server:
exit codes that say whether the work was done, `-h`, `madre intent`, `madre config show`,
`madre modules` (its ports, and which database its Spawner reads), values not cut in a pipe,
errors in red on a terminal (FORCE_COLOR stands in for one here).

Exit codes: 0 done; 1 it did not work (refused, denied, the plan ended ERROR, Madre
degraded); 2 usage; 3 the server could not be reached.
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
import requests
from helpers import TOKEN, final
from test_cli import Cli, ok, run_madre, table_rows

from madre import Madre
from madre.cli.output import render_chat
from madre.contracts.intake import IntentResponse
from madre.modules import MODULES
from madre.settings import database_shown
from madre.standins import StandinCluster

START = 30.0


@pytest.fixture
def cli(live_url: str) -> Cli:
    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_madre(*args, env={"MADRE_URL": live_url, "VX11_TOKEN": TOKEN, **env})

    return run


# --------------------------------------------------------------------------- exit codes


def test_chat_exits_1_when_the_plan_ended_error_and_says_so_on_stderr(cli: Cli, standins
                                                                      ) -> None:
    standins.behaviours["shub"].set("fail")

    result = cli("chat", "mix these 3 stems")

    assert result.returncode == 1
    assert result.stdout.split()[0] == "ERROR"  # the outcome is printed all the same
    assert result.stderr.startswith("madre: the plan ended ERROR")
    as_json = cli("--json", "chat", "mix these 3 stems")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["status"] == "ERROR"


def test_chat_of_a_denied_order_exits_1(cli: Cli) -> None:
    result = cli("chat", "delete madre")

    assert result.returncode == 1
    assert "denied" in result.stderr


def test_confirm_exits_1_when_the_plan_it_confirmed_ended_error(cli: Cli, standins) -> None:
    held = json.loads(ok(cli("--json", "control", "shub", "delete")))
    standins.behaviours["shub"].set("fail")

    result = cli("confirm", held["plan_id"], held["confirm_token"])

    assert result.returncode == 1
    assert f"madre show {held['plan_id']}" in result.stderr


def test_health_exits_1_when_madre_is_degraded_and_names_what_is_down(cli: Cli, madre: Madre,
                                                                      standins) -> None:
    madre.prober.probe_once()
    assert cli("health").returncode == 0
    standins.behaviours["manifestator"].set("fail")
    madre.prober.probe_once()

    result = cli("health")

    assert result.returncode == 1
    assert "degraded" in result.stdout
    assert result.stderr.strip() == "madre: Madre is degraded: down: manifestator"


def test_the_exit_codes_are_in_the_help() -> None:
    out = ok(run_madre("--help"))
    assert "Exit codes:" in out
    for code in ("0  done", "1  it did not work", "2  usage", "3  the server could not be"):
        assert code in out


@pytest.mark.parametrize("args", [["-h"], ["chat", "-h"], ["audit", "verify", "-h"],
                                  ["config", "show", "-h"], ["modules", "-h"]],
                         ids=lambda a: " ".join(a))
def test_dash_h_is_help_everywhere(args: list[str]) -> None:
    assert ok(run_madre(*args)).startswith("Usage: ")


# --------------------------------------------------------------------------- output


def test_a_step_result_is_printed_whole_in_a_pipe(cli: Cli) -> None:
    rows = table_rows(ok(cli("chat", "mix these 3 stems")).split("\n\n")[1])

    [shub] = [r for r in rows if r[0] == "CALL_SHUB"]
    result = json.loads(shub[2])  # whole: it parses
    assert result["params"]["original_message"] == "mix these 3 stems"
    assert len(shub[2]) > 60


def test_a_step_result_is_cut_to_the_width_of_the_terminal() -> None:
    answer = {"status": "DONE", "response": "ok", "actions": [
        {"step": "CALL_SHUB", "status": "DONE", "result": {"text": "x" * 500}}]}

    for width in (80, 200):
        [row] = [line for line in render_chat(answer, width=width) if "CALL_SHUB" in line]
        assert len(row) == width and row.endswith("…")
    [whole] = [line for line in render_chat(answer, width=None) if "CALL_SHUB" in line]
    assert "x" * 500 in whole


def test_errors_are_red_on_a_terminal_and_never_with_no_color(live_url: str) -> None:
    env = {"MADRE_URL": live_url, "VX11_TOKEN": "wrong"}

    red = run_madre("plans", env={**env, "FORCE_COLOR": "1"})
    plain = run_madre("plans", env={**env, "FORCE_COLOR": "1", "NO_COLOR": "1"})
    piped = run_madre("plans", env=env)

    assert red.returncode == plain.returncode == piped.returncode == 1
    assert red.stderr.startswith("\x1b[31mmadre: forbidden")
    assert plain.stderr.startswith("madre: forbidden") and "\x1b[" not in plain.stderr
    assert "\x1b[" not in piped.stderr


# --------------------------------------------------------------------------- intent


def test_intent_submits_text_or_an_action_and_prints_the_plan(cli: Cli) -> None:
    parsed = json.loads(ok(cli("--json", "intent", "mix these 3 stems", "--source",
                               "hormiguero")))
    IntentResponse.model_validate(parsed)
    assert parsed["plan_id"] and parsed["risk"] == "LOW"

    out = ok(cli("intent", "--action", "status", "--target", "hermes"))
    assert out.split()[0] in ("PENDING", "RUNNING", "DONE")
    assert "follow it: madre show " in out


def test_a_high_intent_prints_its_token_and_the_confirm_command(cli: Cli) -> None:
    out = ok(cli("intent", "--action", "delete", "--target", "shub", "--param", "all=true"))

    assert out.split()[0] == "WAITING"
    assert "confirm token: " in out
    [command] = [line.strip() for line in out.splitlines() if "madre confirm " in line]
    plan_id, token = command.split()[2:]
    assert ok(cli("confirm", plan_id, token)).split()[0] == "confirmed"


def test_a_denied_intent_exits_1_and_one_with_nothing_to_do_is_a_usage_error(cli: Cli) -> None:
    denied = cli("intent", "--action", "stop", "--target", "madre")
    assert denied.returncode == 1 and "denied" in denied.stderr

    empty = cli("intent")
    assert empty.returncode == 2 and "--action" in empty.stderr


def test_a_repeated_correlation_id_gets_the_first_answer(cli: Cli) -> None:
    first = json.loads(ok(cli("--json", "intent", "hello", "--correlation-id", "c-77")))
    again = json.loads(ok(cli("--json", "intent", "hello", "--correlation-id", "c-77")))

    assert again["duplicate"] is True and again["intent_id"] == first["intent_id"] == "c-77"


# --------------------------------------------------------------------------- config show


def test_config_show_prints_every_setting_secrets_masked_and_where_it_comes_from() -> None:
    env = {"VX11_TOKEN": "s3cret-token", "MADRE_SPAWNER_TOKEN": "sp4wner",
           "DATABASE_URL": "postgresql://madre:hunter2@db.internal/madre", "MADRE_PORT": "9001"}
    result = run_madre("config", "show", env=env)
    out = ok(result)

    rows = {r[0]: r for r in table_rows(out)[1:]}
    assert rows["VX11_TOKEN"] == ["VX11_TOKEN", "********", "environment"]
    assert rows["MADRE_SPAWNER_TOKEN"][1] == "********"
    assert rows["DATABASE_URL"][1] == "postgresql://madre:****@db.internal/madre"
    assert rows["MADRE_PORT"][1:] == ["9001", "environment"]
    assert rows["MADRE_CONFIRM_TTL_SECONDS"][2] == "default"
    for secret in ("s3cret-token", "sp4wner", "hunter2"):
        assert secret not in out

    listed = json.loads(ok(run_madre("config", "show", "--json", env=env)))
    assert {"variable": "MADRE_PORT", "value": "9001", "source": "environment"} in listed


def test_config_show_with_an_invalid_setting_exits_2_naming_it() -> None:
    result = run_madre("config", "show", env={"MADRE_PORT": "eighty"})
    assert result.returncode == 2 and "MADRE_PORT" in result.stderr


# --------------------------------------------------------------------------- modules


class Modules:
    """`madre modules ARGS` running in `cwd`; its output read line by line."""

    def __init__(self, cwd: pathlib.Path, *args: str, env: dict[str, str] | None = None
                 ) -> None:
        clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "VX11_TOKEN")}
        self.proc = subprocess.Popen([sys.executable, "-m", "madre", "modules", *args],
                                     cwd=cwd, env={**clean, "VX11_TOKEN": TOKEN, **(env or {})},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, text: str) -> list[str]:
        """The lines printed until one containing `text` (included)."""
        while True:
            line = self.lines.get(timeout=START)
            assert line is not None, f"`madre modules` ended: {self.seen}"
            self.seen.append(line)
            if text in line:
                return self.seen

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=START)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=START)


ANY_PORTS = [arg for m in MODULES for arg in (f"--{m.name}-port", "0")]


@pytest.fixture
def modules(tmp_path: pathlib.Path) -> Iterator[Callable[..., Modules]]:
    started: list[Modules] = []

    def start(*args: str, cwd: pathlib.Path | None = None, **env: str) -> Modules:
        where = cwd or tmp_path / "elsewhere"
        where.mkdir(exist_ok=True)
        process = Modules(where, *args, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def test_modules_serves_on_the_ports_asked_and_says_how_to_point_madre_at_them(
        modules) -> None:
    process = modules(*ANY_PORTS)
    lines = process.until("Ctrl-C stops them.")

    urls = {line.split()[0]: line.split()[1] for line in lines[:len(MODULES)]}
    assert set(urls) == {m.name for m in MODULES}
    for name, url in urls.items():
        assert requests.get(url + "/health", timeout=5).json()["module"] == name
    [hint] = [line for line in lines if "SWITCH_URL=" in line]
    assert f"SWITCH_URL={urls['switch']}" in hint and f"SPAWNER_URL={urls['spawner']}" in hint
    assert process.stop(signal.SIGTERM) == 0  # a service manager's stop, as Ctrl-C
    for url in urls.values():
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/health", timeout=5)


def test_modules_started_elsewhere_says_which_database_it_reads_and_creates_none(
        modules, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    process = modules(*ANY_PORTS, cwd=elsewhere)
    lines = process.until("Ctrl-C stops them.")

    expected = elsewhere.resolve() / "data" / "runtime" / "vx11.db"
    assert f"spawner jobs  read from sqlite:///{expected}, reported to" in "\n".join(lines)
    [warning] = [line for line in lines if "there is no database at" in line]
    assert str(expected) in warning and "--database-url" in warning
    assert process.stop() == 0
    assert not expected.exists()


def test_modules_given_madres_database_picks_up_its_spawner_jobs_from_another_directory(
        modules, madre: Madre, live_url: str, standins: StandinCluster) -> None:
    process = modules(*ANY_PORTS, "--madre-url", live_url,
                      "--database-url", madre.settings.database_url)
    lines = process.until("Ctrl-C stops them.")
    assert database_shown(madre.settings.database_url) in "\n".join(lines)
    assert not [line for line in lines if "there is no database" in line]

    answer = requests.post(live_url + "/madre/chat", json={"message": "run the backup job"},
                           headers={"X-VX11-Token": TOKEN}, timeout=30).json()
    assert answer["status"] == "WAITING", answer

    assert final(madre, answer["plan_id"], timeout=START).status == "DONE"
    assert process.stop() == 0


def test_modules_on_a_port_already_taken_says_so_and_exits_1(modules) -> None:
    first = modules(*ANY_PORTS)
    taken = first.until("switch")[-1].split()[1].rsplit(":", 1)[1]
    first.until("Ctrl-C stops them.")

    second = modules("--switch-port", taken, *ANY_PORTS[2:])
    assert second.proc.wait(timeout=START) == 1
    said = "\n".join(second.until("--switch-port"))
    assert "Traceback" not in said and taken in said
    assert first.stop() == 0

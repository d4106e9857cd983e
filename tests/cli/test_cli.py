"""The `madre` client commands, run as a person runs them: `python -m madre ...` in a
subprocess, against a real uvicorn serving a running Madre (the `live_url` fixture).
`madre tail` runs as a long-lived subprocess whose output threads read line by line;
`madre audit verify` needs no server.

The server is found through MADRE_URL / VX11_TOKEN or through --url / --token. Output for
people is checked line by line; --json output must parse and equal what the API answers.
Exit codes: 0 done, 1 the server refused, 2 usage, 3 the server could not be reached.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from helpers import TOKEN, free_port
from helpers import table_rows as sql_rows

from madre import Madre, create_app
from madre.cli.main import main as cli_main
from madre.cli.options import Connection
from madre.cli.output import colour_enabled, render_event, styler, table
from madre.client import ServerEvent, parse_sse
from madre.contracts.commands import CancelResponse
from madre.contracts.events import Event
from madre.contracts.health import HealthResponse
from madre.contracts.intake import (
    ChatRequest,
    ChatResponse,
    ControlRequest,
    ControlResponse,
)
from madre.forensics import ForensicTrail
from madre.standins import LoopbackServer

Cli = Callable[..., subprocess.CompletedProcess[str]]
HEADERS = {"X-VX11-Token": TOKEN}
TIMEOUT = 60  # seconds for one CLI run; chat and confirm wait for their plan
CONFIRM_LINE = re.compile(r"^\s*madre confirm (\S+) (\S+)$", re.MULTILINE)


def run_madre(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m madre ARGS` with this process's environment less any Madre client settings,
    plus `env`."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MADRE_URL", "VX11_TOKEN", "NO_COLOR")}
    return subprocess.run([sys.executable, "-m", "madre", *args], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.fixture
def cli(live_url: str) -> Cli:
    """The CLI pointed at the live server through the environment (MADRE_URL, VX11_TOKEN)."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_madre(*args, env={"MADRE_URL": live_url, "VX11_TOKEN": TOKEN})

    return run


@pytest.fixture
def api(live_url: str) -> Callable[..., Any]:
    """A plain HTTP call to the live server: the answer's JSON (asserting a 200)."""
    def call(method: str, path: str, **kwargs: Any) -> Any:
        resp = requests.request(method, live_url + path, headers=HEADERS, timeout=TIMEOUT,
                                **kwargs)
        assert resp.status_code == 200, resp.text
        return resp.json()

    return call


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def table_rows(output: str) -> list[list[str]]:
    """The rows of the first table in `output` (header first), split on runs of 2+ spaces."""
    lines = [line for line in output.splitlines() if line.strip()]
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


def low_plan(api: Callable[..., Any]) -> str:
    answer = api("POST", "/madre/chat", json={"message": "mix these 3 stems"})
    assert answer["status"] == "DONE", answer
    return str(answer["plan_id"])


def waiting_plan(api: Callable[..., Any]) -> tuple[str, str]:
    answer = api("POST", "/madre/control", json={"target": "shub", "action": "delete"})
    assert answer["status"] == "pending_confirmation", answer
    return str(answer["plan_id"]), str(answer["confirm_token"])


# --------------------------------------------------------------------------- chat


def test_chat_prints_the_status_line_the_response_and_the_steps(
    cli: Cli, api: Callable[..., Any],
) -> None:
    out = ok(cli("chat", "mix these 3 stems", "--session", "sess-cli"))
    lines = out.splitlines()
    status = lines[0].split()
    assert status[0] == "DONE"
    assert status[status.index("plan") + 1]
    assert status[status.index("session") + 1] == "sess-cli"
    assert status[status.index("mode") + 1] == "AUDIO_ENGINEER"
    plan_id = status[status.index("plan") + 1]
    assert lines[1].strip(), "the second line is Madre's response sentence"
    rows = table_rows(out[out.index("STEP"):])
    assert rows[0] == ["STEP", "STATUS", "RESULT"]
    assert [r[:2] for r in rows[1:]] == [["CALL_SWITCH", "DONE"], ["CALL_SHUB", "DONE"],
                                         ["NOOP", "DONE"]]
    assert api("GET", f"/madre/plans/{plan_id}")["session_id"] == "sess-cli"


def test_chat_json_is_the_chat_response_the_api_gives(cli: Cli) -> None:
    answer = json.loads(ok(cli("--json", "chat", "mix these 3 stems")))
    assert set(answer) == set(ChatResponse.model_fields)
    ChatResponse.model_validate(answer)
    assert answer["status"] == "DONE"


def test_a_dry_run_chat_plans_without_running(cli: Cli, api: Callable[..., Any]) -> None:
    out = ok(cli("chat", "mix these 3 stems", "--dry-run"))
    assert out.startswith("PENDING")
    assert "Dry run" in out
    assert api("GET", "/madre/plans")["plans"] == []


# --------------------------------------------------------------------------- control, confirm


def test_control_with_a_high_action_prints_the_token_and_the_confirm_command_to_run(
    live_url: str, api: Callable[..., Any],
) -> None:
    out = ok(run_madre("--url", live_url, "--token", TOKEN, "control", "shub", "delete"))
    assert out.splitlines()[0].split()[:1] == ["pending_confirmation"]
    assert "risk HIGH" in out
    [(plan_id, token)] = CONFIRM_LINE.findall(out)
    assert f"confirm token: {token}" in out
    assert api("GET", f"/madre/plans/{plan_id}")["status"] == "WAITING"

    # The command it printed is the one to run next, and it runs the plan.
    confirmed = ok(run_madre("--url", live_url, "--token", TOKEN, "confirm", plan_id, token))
    assert "DONE" in confirmed
    assert api("GET", f"/madre/plans/{plan_id}")["status"] == "DONE"


def test_confirm_prints_the_plan_status_done(cli: Cli, api: Callable[..., Any]) -> None:
    plan_id, token = waiting_plan(api)
    out = ok(cli("confirm", plan_id, token))
    assert out.splitlines()[0].split() == ["confirmed", "plan", plan_id, "plan", "status", "DONE"]


def test_confirm_with_a_wrong_token_exits_1_with_the_servers_error(
    cli: Cli, api: Callable[..., Any],
) -> None:
    plan_id, _ = waiting_plan(api)
    result = cli("confirm", plan_id, "not-the-token")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "invalid_token" in result.stderr
    assert api("GET", f"/madre/plans/{plan_id}")["status"] == "WAITING"


@pytest.mark.parametrize("token", ["-Sx8bQ_a1", "-hQ8b_a1", "-xyh-9", "--looks-like-an-option", "-"])
def test_a_token_starting_with_a_dash_is_read_as_the_token_not_as_an_option(
    cli: Cli, api: Callable[..., Any], token: str,
) -> None:
    plan_id, _ = waiting_plan(api)
    result = cli("confirm", plan_id, token)
    assert result.returncode == 1, result  # the server judged it: not a usage error
    assert "invalid_token" in result.stderr


def test_confirming_twice_exits_1_with_not_waiting(cli: Cli, api: Callable[..., Any]) -> None:
    plan_id, token = waiting_plan(api)
    ok(cli("confirm", plan_id, token))
    again = cli("confirm", plan_id, token)
    assert again.returncode == 1
    assert "not_waiting" in again.stderr


def test_control_json_is_the_control_response_the_api_gives(cli: Cli) -> None:
    answer = json.loads(ok(cli("control", "shub", "delete", "--json")))
    assert set(answer) == set(ControlResponse.model_fields)
    assert answer["status"] == "pending_confirmation"
    assert answer["confirm_token"]


def test_control_params_are_sent_as_json_values_when_they_are_json(
    cli: Cli, api: Callable[..., Any],
) -> None:
    answer = json.loads(ok(cli("--json", "control", "hermes", "status", "--param", "count=3",
                               "--param", "name=007", "--param", "flags=[1,2]")))
    detail = api("GET", f"/madre/plans/{answer['plan_id']}")
    assert detail["intent"]["dsl"]["parameters"] == {"count": 3, "name": "007", "flags": [1, 2]}


def test_a_denied_control_exits_1_and_says_why(cli: Cli) -> None:
    result = cli("control", "madre", "stop")
    assert result.returncode == 1
    assert result.stdout.startswith("denied")
    assert "never" in result.stdout


def test_control_confirms_with_token_confirm_as_the_original_clients_do(
    cli: Cli, api: Callable[..., Any],
) -> None:
    plan_id, token = waiting_plan(api)
    out = ok(cli("control", "shub", "delete", "--token-confirm", token, "--plan", plan_id))
    assert out.startswith("accepted")
    assert plan_id in out


def test_a_param_without_an_equals_sign_is_a_usage_error(cli: Cli) -> None:
    result = cli("control", "shub", "scan", "--param", "count")
    assert result.returncode == 2
    assert "KEY=VALUE" in result.stderr


# --------------------------------------------------------------------------- plans, show


def test_plans_prints_a_header_and_one_row_per_plan_newest_first(
    cli: Cli, api: Callable[..., Any],
) -> None:
    done = low_plan(api)
    waiting, _ = waiting_plan(api)
    rows = table_rows(ok(cli("plans")))
    assert rows[0] == ["PLAN", "STATUS", "RISK", "MODE", "STEPS", "SOURCE", "CREATED",
                       "EXPIRES", "REASON"]
    assert [r[:3] for r in rows[1:]] == [[waiting, "WAITING", "HIGH"], [done, "DONE", "LOW"]]


def test_plans_shows_when_a_plan_waiting_for_a_confirmation_expires(
    cli: Cli, api: Callable[..., Any],
) -> None:
    done = low_plan(api)
    waiting, _ = waiting_plan(api)
    [listed] = [p for p in api("GET", "/madre/plans")["plans"] if p["plan_id"] == waiting]
    expires = dt.datetime.fromisoformat(listed["expires_at"])
    detail = api("GET", f"/madre/plans/{waiting}")
    assert expires == dt.datetime.fromisoformat(detail["confirmation"]["expires_at"])

    rows = {r[0]: r for r in table_rows(ok(cli("plans")))[1:]}
    assert rows[waiting][7] == expires.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    assert rows[done][7] == "-"


def test_plans_filters_by_status(cli: Cli, api: Callable[..., Any]) -> None:
    done = low_plan(api)
    waiting, _ = waiting_plan(api)
    assert [r[0] for r in table_rows(ok(cli("plans", "--status", "WAITING")))[1:]] == [waiting]
    assert [r[0] for r in table_rows(ok(cli("plans", "--status", "done")))[1:]] == [done]
    assert ok(cli("plans", "--status", "ERROR")).strip() == "no plans"


def test_plans_filters_by_session(cli: Cli, api: Callable[..., Any]) -> None:
    mine = api("POST", "/madre/chat", json={"message": "mix these 3 stems",
                                            "session_id": "mine"})["plan_id"]
    low_plan(api)
    assert [r[0] for r in table_rows(ok(cli("plans", "--session", "mine")))[1:]] == [mine]


def test_plans_json_equals_the_api_answer(cli: Cli, api: Callable[..., Any]) -> None:
    low_plan(api)
    waiting_plan(api)
    assert json.loads(ok(cli("--json", "plans"))) == api("GET", "/madre/plans")


def test_plans_shows_one_page_and_all_follows_next_cursor_to_the_end(
    cli: Cli, api: Callable[..., Any],
) -> None:
    ids = [waiting_plan(api)[0] for _ in range(3)][::-1]  # newest first
    one_page = cli("plans", "--limit", "2")
    assert [r[0] for r in table_rows(ok(one_page))[1:]] == ids[:2]
    assert "--all" in one_page.stderr
    everything = json.loads(ok(cli("plans", "--limit", "2", "--all", "--json")))
    assert [p["plan_id"] for p in everything["plans"]] == ids
    assert everything["next_cursor"] is None
    assert [r[0] for r in table_rows(ok(cli("plans", "--all", "--limit", "1")))[1:]] == ids


def test_a_status_that_does_not_exist_is_a_usage_error(cli: Cli) -> None:
    result = cli("plans", "--status", "FINISHED")
    assert result.returncode == 2
    assert "--status" in result.stderr


def test_show_lists_the_intent_the_steps_and_the_history(
    cli: Cli, api: Callable[..., Any],
) -> None:
    plan_id = low_plan(api)
    out = ok(cli("show", plan_id))
    assert out.splitlines()[0].split() == ["plan", plan_id]
    assert re.search(r"^status\s+DONE", out, re.MULTILINE)
    assert re.search(r"^confirmation\s+not required", out, re.MULTILINE)
    steps = out[out.index("steps (3)"):out.index("history")]
    rows = table_rows(steps)[1:]
    assert rows[0] == ["#", "TYPE", "STATUS", "ATTEMPTS", "ERROR", "RESULT"]
    assert [r[1:4] for r in rows[1:]] == [["CALL_SWITCH", "DONE", "1"],
                                          ["CALL_SHUB", "DONE", "1"], ["NOOP", "DONE", "1"]]
    assert "plan_done" in out[out.index("history"):]


def test_show_of_a_waiting_plan_says_the_confirmation_is_awaited(
    cli: Cli, api: Callable[..., Any],
) -> None:
    plan_id, token = waiting_plan(api)
    out = ok(cli("show", plan_id))
    assert re.search(r"^status\s+WAITING \(for confirmation\)", out, re.MULTILINE)
    assert re.search(r"^confirmation\s+required, waiting", out, re.MULTILINE)
    assert token not in out


def test_show_json_equals_the_api_plan_detail(cli: Cli, api: Callable[..., Any]) -> None:
    plan_id = low_plan(api)
    assert json.loads(ok(cli("show", plan_id, "--json"))) == api("GET",
                                                                 f"/madre/plans/{plan_id}")


def test_show_of_an_unknown_plan_exits_1_with_not_found(cli: Cli) -> None:
    result = cli("show", "no-such-plan")
    assert result.returncode == 1
    assert "not_found" in result.stderr


def test_a_refusal_with_json_prints_the_servers_envelope_on_stdout(cli: Cli) -> None:
    result = cli("--json", "show", "no-such-plan")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "not_found"


# --------------------------------------------------------------------------- health


def test_health_prints_madre_and_every_dependency_without_needing_the_token(
    live_url: str,
) -> None:
    out = ok(run_madre("--url", live_url, "--token", "wrong", "health"))
    assert re.match(r"madre\s+version \S+\s+status (ok|degraded)", out)
    rows = table_rows(out[out.index("DEPENDENCY"):])
    assert rows[0] == ["DEPENDENCY", "STATE", "CHECKED", "ERROR"]
    assert {r[0] for r in rows[1:]} >= {"switch", "hermes", "hormiguero", "manifestator",
                                         "shub", "spawner"}


def test_health_json_is_the_health_response(cli: Cli) -> None:
    answer = json.loads(ok(cli("health", "--json")))
    HealthResponse.model_validate(answer)
    assert answer["module"] == "madre"


# --------------------------------------------------------------------------- finding the server


def test_an_unreachable_server_exits_3_and_says_so_on_stderr() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["plans"], ["chat", "hello"], ["confirm", "p", "t"]):
        result = run_madre(*args, env={"MADRE_URL": url, "VX11_TOKEN": TOKEN})
        assert result.returncode == 3, result
        assert result.stdout == ""
        assert f"cannot reach Madre at {url}" in result.stderr


def test_a_wrong_token_exits_1_with_forbidden_on_stderr(live_url: str) -> None:
    result = run_madre("plans", env={"MADRE_URL": live_url, "VX11_TOKEN": "not-the-token"})
    assert result.returncode == 1
    assert "forbidden" in result.stderr
    assert "VX11_TOKEN" in result.stderr  # where to fix it


def test_options_win_over_the_environment(live_url: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = run_madre("--url", live_url, "--token", TOKEN, "plans",
                       env={"MADRE_URL": closed, "VX11_TOKEN": "not-the-token"})
    assert ok(result).strip() == "no plans"


def test_connection_options_may_follow_the_subcommand(live_url: str) -> None:
    out = ok(run_madre("plans", "--json", "--url", live_url, "--token", TOKEN))
    assert json.loads(out) == {"plans": [], "next_cursor": None}


def test_a_url_that_is_not_a_url_is_a_usage_error() -> None:
    result = run_madre("--url", "not a url", "plans")
    assert result.returncode == 2
    assert "not a URL" in result.stderr


def test_the_commands_are_the_ones_documented_and_no_stubs() -> None:
    out = ok(run_madre("--help"))
    listing = out[out.index("Commands:"):out.index("Exit codes:")]
    commands = set(re.findall(r"^  (\w+)\s", listing, re.MULTILINE))
    assert commands == {"serve", "modules", "chat", "control", "intent", "plans", "show",
                        "confirm", "cancel", "tail", "audit", "health", "config", "instances",
                        "db", "pending", "approve", "reject", "principals"}


# --------------------------------------------------------------------------- colour


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_statuses_are_coloured_only_on_a_terminal_and_never_with_no_color() -> None:
    assert colour_enabled(_Terminal(), {})
    assert not colour_enabled(io.StringIO(), {})
    assert not colour_enabled(_Terminal(), {"NO_COLOR": "1"})
    assert not colour_enabled(_Terminal(), {"TERM": "dumb"})
    assert styler(True)("DONE") != "DONE"
    assert styler(False)("DONE") == "DONE"


def test_colour_does_not_break_the_alignment_of_a_table() -> None:
    rows = [["a", "DONE", "x"], ["longer", "WAITING", "y"]]
    coloured = table(["ID", "STATUS", "NOTE"], rows, {1: styler(True)})
    stripped = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in coloured]
    assert stripped == table(["ID", "STATUS", "NOTE"], rows)
    assert stripped[1].index("x") == stripped[2].index("y")


def test_piped_output_carries_no_colour_codes(cli: Cli, api: Callable[..., Any]) -> None:
    low_plan(api)
    assert "\x1b[" not in ok(cli("plans"))


# --------------------------------------------------------------------------- cancel


def test_cancel_prints_the_plans_final_state(cli: Cli, api: Callable[..., Any]) -> None:
    plan_id, _ = waiting_plan(api)
    out = ok(cli("cancel", plan_id, "--reason", "wrong stems", "--by", "ops-alice"))
    lines = out.splitlines()
    assert lines[0].split() == ["cancelled", "plan", plan_id, "plan", "status", "ERROR"]
    assert lines[1] == "reason: cancelled: wrong stems"
    detail = api("GET", f"/madre/plans/{plan_id}")
    assert detail["status"] == "ERROR" and detail["reason"] == "cancelled: wrong stems"
    [row] = [h for h in detail["history"] if h["action"] == "plan_cancelled"]
    assert row["actor"] == "vx11" and row["detail"] == {"claimed_by": "ops-alice"}


def test_cancel_json_is_the_cancel_response(cli: Cli, api: Callable[..., Any]) -> None:
    plan_id, _ = waiting_plan(api)
    answer = json.loads(ok(cli("--json", "cancel", plan_id)))
    CancelResponse.model_validate(answer)
    assert answer == {"status": "cancelled", "plan_id": plan_id, "plan_status": "ERROR",
                      "reason": "cancelled"}


def test_cancelling_a_done_plan_exits_1_with_not_cancellable(
    cli: Cli, api: Callable[..., Any],
) -> None:
    plan_id = low_plan(api)
    result = cli("cancel", plan_id)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "not_cancellable" in result.stderr
    assert api("GET", f"/madre/plans/{plan_id}")["status"] == "DONE"


def test_cancelling_an_unknown_plan_exits_1_with_not_found(cli: Cli) -> None:
    result = cli("cancel", "no-such-plan")
    assert result.returncode == 1
    assert "not_found" in result.stderr


# --------------------------------------------------------------------------- tail


class Tail:
    """`python -m madre tail ARGS` running; stdout and stderr read by threads, line by line."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("MADRE_URL", "VX11_TOKEN", "NO_COLOR")}
        self.proc = subprocess.Popen([sys.executable, "-m", "madre", "tail", *args],
                                     env={**clean, **env}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.out: queue.Queue[str | None] = queue.Queue()
        self.err: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._pump, args=(stream, q), daemon=True)
                        for stream, q in ((self.proc.stdout, self.out),
                                          (self.proc.stderr, self.err))]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _pump(stream: Any, into: queue.Queue[str | None]) -> None:
        for line in stream:
            into.put(line.rstrip("\n"))
        into.put(None)

    def line(self, timeout: float = TIMEOUT) -> str:
        """The next line on stdout."""
        line = self.out.get(timeout=timeout)
        assert line is not None, f"tail ended; stderr: {self.errors}"
        return line

    def lines(self, n: int) -> list[str]:
        return [self.line() for _ in range(n)]

    def note(self, text: str, timeout: float = TIMEOUT) -> str:
        """The first line on stderr containing `text` (after those read before)."""
        while True:
            line = self.err.get(timeout=timeout)
            assert line is not None, f"tail ended before saying {text!r}: {self.errors}"
            self.errors.append(line)
            if text in line:
                return line

    def connected(self) -> Tail:
        self.note("following events at")
        return self

    def finish(self) -> tuple[int, list[str], str]:
        """Wait for the exit: (exit code, the stdout lines not read yet, all of stderr)."""
        code = self.proc.wait(timeout=TIMEOUT)
        rest = []
        while (line := self.out.get(timeout=TIMEOUT)) is not None:
            rest.append(line)
        while (line := self.err.get(timeout=TIMEOUT)) is not None:
            self.errors.append(line)
        return code, rest, "\n".join(self.errors)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        for thread in self.threads:
            thread.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def tail(live_url: str) -> Iterator[Callable[..., Tail]]:
    """Start `madre tail` against the live server (or `url`); every one killed after."""
    started: list[Tail] = []

    def start(*args: str, url: str = live_url, token: str = TOKEN) -> Tail:
        process = Tail(*args, env={"MADRE_URL": url, "VX11_TOKEN": token})
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.close()


def event_columns(line: str) -> list[str]:
    """A tail line's columns: time, plan id, action, status, reason."""
    columns = re.split(r"\s{2,}", line.strip())
    assert len(columns) == 5, line
    return columns


def test_tail_count_3_prints_three_event_lines_for_traffic_after_it_started(
    tail: Callable[..., Tail], api: Callable[..., Any],
) -> None:
    before = low_plan(api)
    process = tail("--count", "3").connected()
    plan_id = low_plan(api)
    code, lines, _ = process.finish()
    assert code == 0
    rows = [event_columns(line) for line in lines]
    assert [r[1] for r in rows] == [plan_id] * 3 and before not in "".join(lines)
    assert [r[2:4] for r in rows] == [["decision:LOW", "-"], ["plan_created", "PENDING"],
                                      ["plan_started", "RUNNING"]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", rows[0][0])
    assert rows[1][4] == "3 steps"


def test_tail_json_prints_one_json_event_per_line(
    tail: Callable[..., Tail], api: Callable[..., Any],
) -> None:
    plan_id = low_plan(api)
    code, lines, _ = tail("--json", "--since", "0", "--count", "8").finish()
    assert code == 0
    events = [json.loads(line) for line in lines]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert {e["plan_id"] for e in events} == {plan_id}
    assert events[-1]["action"] == "plan_done" and events[-1]["plan_status"] == "DONE"
    for event in events:
        Event.model_validate(event)


def test_tail_since_0_replays_what_was_recorded_before_it_started(
    tail: Callable[..., Tail], api: Callable[..., Any],
) -> None:
    first = low_plan(api)
    second = low_plan(api)
    code, lines, _ = tail("--since", "0", "--count", "16").finish()
    assert code == 0
    rows = [event_columns(line) for line in lines]
    assert [r[1] for r in rows] == [first] * 8 + [second] * 8


def test_tail_filters_by_plan_session_and_status(
    tail: Callable[..., Tail], api: Callable[..., Any],
) -> None:
    mine = api("POST", "/madre/chat", json={"message": "mix these 3 stems",
                                            "session_id": "tail-mine"})["plan_id"]
    low_plan(api)
    held, _ = waiting_plan(api)
    by_plan = tail("--since", "0", "--plan", mine, "--count", "8").finish()[1]
    assert {event_columns(line)[1] for line in by_plan} == {mine}
    by_session = tail("--since", "0", "--session", "tail-mine", "--count", "8").finish()[1]
    assert by_session == by_plan
    waiting = tail("--since", "0", "--status", "waiting", "--count", "2").finish()[1]
    assert [event_columns(line)[1:4] for line in waiting] == [
        [held, "confirmation_required:HIGH", "WAITING"], [held, "plan_created", "WAITING"]]


def test_tail_reconnects_after_the_connection_drops_and_misses_nothing(madre: Madre) -> None:
    port = free_port()
    first = LoopbackServer(create_app(madre), port=port, lifespan="on", name="madre-1",
                           shutdown_timeout=1.0).start()
    second = None
    process = Tail("--json", "--count", "16", env={"MADRE_URL": first.url, "VX11_TOKEN": TOKEN})
    try:
        process.connected()
        before = madre.chat(ChatRequest(message="mix these 3 stems"))
        seen = [json.loads(line) for line in process.lines(8)]
        assert {e["plan_id"] for e in seen} == {before.plan_id}
        first.stop()  # the connection drops; what happens now, tail is not connected for
        process.note("reconnecting")
        during = madre.chat(ChatRequest(message="mix these 3 stems"))
        second = LoopbackServer(create_app(madre), port=port, lifespan="on",
                                name="madre-2").start()
        process.note("reconnected; going on after event")
        code, lines, _ = process.finish()
        assert code == 0
        rest = [json.loads(line) for line in lines]
        assert {e["plan_id"] for e in rest} == {during.plan_id}
        all_ids = [r["id"] for r in sql_rows(madre, "madre_actions")]
        assert [e["id"] for e in seen + rest] == all_ids  # none missed, none repeated
    finally:
        process.close()
        first.stop()
        if second is not None:
            second.stop()


def test_ctrl_c_stops_tail_cleanly_with_exit_0(tail: Callable[..., Tail]) -> None:
    process = tail().connected()
    process.proc.send_signal(signal.SIGINT)
    code, lines, errors = process.finish()
    assert code == 0
    assert lines == []
    assert "Traceback" not in errors


def test_tail_of_an_unreachable_server_exits_3(tail: Callable[..., Tail]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, lines, errors = tail("--count", "1", url=url).finish()
    assert code == 3
    assert lines == []
    assert f"cannot reach Madre at {url}" in errors


def test_tail_with_a_wrong_token_exits_1_with_forbidden(tail: Callable[..., Tail]) -> None:
    code, _, errors = tail("--count", "1", token="not-the-token").finish()
    assert code == 1
    assert "forbidden" in errors


def test_tail_with_a_status_that_does_not_exist_is_a_usage_error(cli: Cli) -> None:
    result = cli("tail", "--status", "FINISHED")
    assert result.returncode == 2
    assert "--status" in result.stderr


def test_the_new_commands_exit_3_when_the_server_cannot_be_reached() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["cancel", "some-plan"], ["tail", "--count", "1"]):
        result = run_madre(*args, env={"MADRE_URL": url, "VX11_TOKEN": TOKEN})
        assert result.returncode == 3, result
        assert result.stdout == ""
        assert f"cannot reach Madre at {url}" in result.stderr


def test_a_tail_line_colours_its_status_on_a_terminal_only() -> None:
    event = {"created_at": "2031-03-01T10:00:00+00:00", "plan_id": "p-1",
             "action": "plan_done", "plan_status": "DONE", "reason": "3 steps"}
    coloured = render_event(event, styler(True))
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == render_event(event)
    assert event_columns(render_event(event)) == ["2031-03-01 10:00:00Z", "p-1", "plan_done",
                                                   "DONE", "3 steps"]


# --------------------------------------------------------------------------- audit verify


def test_audit_verify_is_a_command_that_needs_no_server(tmp_path) -> None:
    ForensicTrail(tmp_path).append([{"event": "intent_received", "intent_id": "i-1"}])
    result = run_madre("--url", f"http://127.0.0.1:{free_port()}", "audit", "verify",
                       str(tmp_path))
    assert ok(result).strip() == "OK: 1 record in 1 file, chain intact"


def test_tail_catches_up_when_the_server_drops_it_for_lagging_and_repeats_nothing(
    start_madre: Callable[..., Madre],
) -> None:
    runtime = start_madre(events_max_lag=5)
    for _ in range(300):
        runtime.control(ControlRequest(target="madre", action="stop"))  # one event each
    with LoopbackServer(create_app(runtime), lifespan="on", name="madre-lagging") as server:
        process = Tail("--json", "--since", "0", "--count", "300",
                       env={"MADRE_URL": server.url, "VX11_TOKEN": TOKEN})
        try:
            code, lines, errors = process.finish()
        finally:
            process.close()
    assert code == 0
    assert "dropped this stream" in errors
    ids = [json.loads(line)["id"] for line in lines]
    assert ids == [r["id"] for r in sql_rows(runtime, "madre_actions")]


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 64])
def test_the_clients_event_reader_reads_events_cut_anywhere_across_chunks(cut: int) -> None:
    wire = (b": ping\r\n\r\nid: 7\r\nevent: plan_done\r\ndata: {\"a\": 1}\r\n\r\n"
            b"id: 8\nevent: step_done:CALL_SHUB\ndata: line one\ndata: line two\n\n"
            + "id: 9\revent: plan_error\rdata: caf\u00e9\r\r".encode())
    chunks = [wire[i:i + cut] for i in range(0, len(wire), cut)]
    assert list(parse_sse(iter(chunks))) == [
        ServerEvent("7", "plan_done", '{"a": 1}'),
        ServerEvent("8", "step_done:CALL_SHUB", "line one\nline two"),
        ServerEvent("9", "plan_error", "café"),
    ]


def test_a_dash_token_holding_an_h_is_the_token_and_options_after_it_still_count() -> None:
    # 1 token in 64 starts with "-", and many of those hold an "h": never the help flag
    command = cli_main.commands["confirm"]
    ctx = command.make_context("confirm", ["PLAN", "-Sh8bQ_a1", "--timeout", "3", "--json"])
    assert ctx.params == {"plan_id": "PLAN", "token": "-Sh8bQ_a1"}
    connection = ctx.find_object(Connection)
    assert connection is not None and connection.timeout == 3 and connection.as_json

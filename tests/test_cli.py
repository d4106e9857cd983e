"""The `madre` client commands, run as a person runs them: `python -m madre ...` in a
subprocess, against a real uvicorn serving a running Madre (the `live_url` fixture).

The server is found through MADRE_URL / VX11_TOKEN or through --url / --token. Output for
people is checked line by line; --json output must parse and equal what the API answers.
Exit codes: 0 done, 1 the server refused, 2 usage, 3 the server could not be reached.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import requests
from helpers import TOKEN, free_port

from madre.cli_output import colour_enabled, styler, table
from madre.contracts import ChatResponse, ControlResponse, HealthResponse

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
    assert rows[0] == ["PLAN", "STATUS", "RISK", "MODE", "STEPS", "SOURCE", "CREATED", "REASON"]
    assert [r[:3] for r in rows[1:]] == [[waiting, "WAITING", "HIGH"], [done, "DONE", "LOW"]]


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
    commands = set(re.findall(r"^  (\w+)\s", out[out.index("Commands:"):], re.MULTILINE))
    assert commands == {"serve", "modules", "chat", "control", "plans", "show", "confirm",
                        "health"}


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

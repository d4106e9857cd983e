"""Operator logs of a real `python run.py`: JSON lines on stdout that `jq` reads, with the
ids of the plan they are about (plan_id, intent_id, session_id), the step, the duration;
plain text with MADRE_LOG_FORMAT=text; never a token.

Each test serves Madre as a subprocess (`served.Served`, on a port the system picks)
against the loopback stand-ins, sends traffic over HTTP, then stops it (SIGTERM) and reads
everything it printed. Lines are read by a thread into a queue as they come; nothing
sleeps. Request ids, access lines and the format chosen for a terminal are in
test_logs_requests.py.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import requests
from helpers import TOKEN, post_ok


HEADERS = {"X-VX11-Token": TOKEN}



def low_chat(url: str) -> dict[str, Any]:
    answer = post_ok(url, "/madre/chat", {"message": "mix these 3 stems", "session_id": "s-logs"})
    assert answer["status"] == "DONE", answer
    return answer


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def outcome(entries: list[dict[str, Any]], plan_id: str) -> dict[str, Any]:
    """The one log entry saying how the plan ended."""
    [entry] = [e for e in entries if e.get("plan_id") == plan_id and "status" in e]
    return entry


# --------------------------------------------------------------------------- JSON lines


def test_every_line_madre_prints_on_stdout_is_a_json_object(serve) -> None:
    process, url = serve()
    low_chat(url)
    lines = process.stop()
    assert len(lines) >= 3  # serving, the plan's outcome, stopped
    for entry in parsed(lines):
        assert isinstance(entry, dict)
        assert {"time", "level", "logger", "message"} <= set(entry)


def test_jq_reads_the_log(serve) -> None:
    process, url = serve()
    plan_id = low_chat(url)["plan_id"]
    lines = process.stop()
    jq = subprocess.run(["jq", "-r", f'select(.plan_id == "{plan_id}") | .status'],
                        input="\n".join(lines) + "\n", capture_output=True, text=True,
                        timeout=30, check=False)
    assert jq.returncode == 0, jq.stderr
    assert jq.stdout.split() == ["DONE"]


def test_the_plan_outcome_line_carries_the_plans_ids_its_status_and_its_duration(
        serve) -> None:
    process, url = serve()
    answer = low_chat(url)
    entry = outcome(parsed(process.stop()), answer["plan_id"])
    assert entry["intent_id"] == answer["intent_id"]
    assert entry["session_id"] == "s-logs"
    assert entry["status"] == "DONE"
    assert entry["message"] == "plan DONE"
    assert entry["level"] == "INFO"
    assert isinstance(entry["duration_ms"], int | float) and entry["duration_ms"] >= 0
    assert entry["time"].endswith("+00:00")


def test_a_failed_step_is_logged_with_its_step_and_duration(serve, standins) -> None:
    process, url = serve()
    standins.behaviours["shub"].set("fail")
    answer = post_ok(url, "/madre/chat", {"message": "mix these 3 stems"})
    assert answer["status"] == "ERROR"
    entries = parsed(process.stop())
    [failed] = [e for e in entries if e.get("step") == "CALL_SHUB"]
    assert failed["level"] == "WARNING"
    assert failed["plan_id"] == answer["plan_id"]
    assert failed["intent_id"] == answer["intent_id"]
    assert failed["duration_ms"] >= 0
    assert outcome(entries, answer["plan_id"])["status"] == "ERROR"


# --------------------------------------------------------------------------- text


def test_with_madre_log_format_text_the_lines_are_text_carrying_plan_id(serve) -> None:
    process, url = serve(MADRE_LOG_FORMAT="text")
    plan_id = low_chat(url)["plan_id"]
    lines = process.stop()
    for line in lines:
        with pytest.raises(ValueError):
            json.loads(line)
    [done] = [line for line in lines if f"plan_id={plan_id}" in line]
    assert " INFO " in done and "plan DONE" in done
    assert "status=DONE" in done and "duration_ms=" in done


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_token_ever_appears_in_the_log_even_at_debug_level(serve, log_format) -> None:
    process, url = serve(MADRE_LOG_FORMAT=log_format, MADRE_LOG_LEVEL="DEBUG")
    first = post_ok(url, "/madre/chat", {"message": "delete the shub cache"})
    assert first["status"] == "WAITING" and first["confirm_token"]
    wrong = requests.post(f"{url}/madre/plans/{first['plan_id']}/confirm",
                          json={"confirm_token": first["confirm_token"][::-1]},
                          headers=HEADERS, timeout=30)
    assert wrong.status_code == 403
    post_ok(url, f"/madre/plans/{first['plan_id']}/confirm",
         {"confirm_token": first["confirm_token"]})
    # the old clients' way: the token in the query string
    second = post_ok(url, "/madre/control", {"target": "hermes", "action": "delete"})
    post_ok(url, f"/madre/plans/{second['plan_id']}/confirm", {},
         params={"confirm_token": second["confirm_token"]})
    bad_auth = requests.get(url + "/madre/plans", headers={"X-VX11-Token": "guessed-token"},
                            timeout=30)
    assert bad_auth.status_code == 403

    printed = "\n".join(process.stop()) + process.stderr()
    assert first["plan_id"] in printed  # the log is about these plans...
    for secret in (first["confirm_token"], first["confirm_token"][::-1],
                   second["confirm_token"], TOKEN, "guessed-token"):
        assert secret not in printed  # ...and shows none of their tokens, nor the server's

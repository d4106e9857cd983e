"""A real `python run.py`, seen from its log: one access line per request with its request id,
that id carried into the plan's lines, no uvicorn colour codes in JSON, text for a terminal
and JSON otherwise, and "madre serving" logged only once the port is bound.

Servers listen on a port the system picks (MADRE_PORT=0) and name it in "madre serving".
"""

from __future__ import annotations

import json
import os
import pathlib
import pty
import re
import signal
import subprocess
import sys
import threading
import uuid
from typing import Any

import pytest
import requests
from helpers import TOKEN
from served import RUN, START, Served, madre_env


HEADERS = {"X-VX11-Token": TOKEN}
ANSI = re.compile(r"\x1b\[")


def entries(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def access_lines(lines: list[str], request_id: str) -> list[dict[str, Any]]:
    return [e for e in entries(lines)
            if e["logger"] == "madre.access" and e.get("request_id") == request_id]


# --------------------------------------------------------------------------- request ids


def test_each_request_gets_one_access_line_with_method_route_status_duration_and_its_id(
        serve) -> None:
    process, url = serve()
    ids = [f"req-{n}-{uuid.uuid4()}" for n in range(3)]
    for request_id in ids:
        resp = requests.get(f"{url}/madre/plans/{uuid.uuid4()}",
                            headers={**HEADERS, "X-Request-ID": request_id}, timeout=30)
        assert resp.status_code == 404
        assert resp.headers["X-Request-ID"] == request_id
    lines = process.stop()

    for request_id in ids:
        [line] = access_lines(lines, request_id)
        assert line["method"] == "GET"
        assert line["route"] == "/madre/plans/{plan_id}"
        assert line["status"] == 404
        assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
        assert line["message"] == "GET /madre/plans/{plan_id} 404"


def test_a_request_without_an_id_is_given_one_in_x_request_id_and_its_access_line(
        serve) -> None:
    process, url = serve()
    resp = requests.get(url + "/madre/plans", headers=HEADERS, timeout=30)
    minted = resp.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", minted)
    refused = requests.get(url + "/madre/plans", timeout=30)  # no token: still one line
    assert refused.status_code == 401
    lines = process.stop()

    [line] = access_lines(lines, minted)
    assert (line["route"], line["status"]) == ("/madre/plans", 200)
    [refusal] = access_lines(lines, refused.headers["X-Request-ID"])
    assert refusal["status"] == 401


def test_an_unusable_request_id_is_replaced_by_a_fresh_one(serve) -> None:
    _, url = serve()
    resp = requests.get(url + "/health", headers={"X-Request-ID": "has spaces " + "x" * 200},
                        timeout=30)
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])


def test_the_request_id_of_a_chat_is_in_its_plans_log_lines_and_its_module_calls(
        serve, standins) -> None:
    process, url = serve()
    standins.behaviours["shub"].set("fail")
    resp = requests.post(url + "/madre/chat", json={"message": "mix these 3 stems"},
                         headers={**HEADERS, "X-Request-ID": "chat-42"}, timeout=30)
    answer = resp.json()
    assert answer["status"] == "ERROR"
    lines = process.stop()

    plan_lines = [e for e in entries(lines) if e.get("plan_id") == answer["plan_id"]]
    assert {e["logger"] for e in plan_lines} == {"madre.plan"}
    assert {e["message"] for e in plan_lines} >= {"plan ERROR"}
    assert any(e.get("step") == "CALL_SHUB" for e in plan_lines)  # the step that failed
    assert {e.get("request_id") for e in plan_lines} == {"chat-42"}
    assert {c.headers.get("x-request-id") for c in standins.recorder.calls("shub")} == {"chat-42"}


# --------------------------------------------------------------------------- the lines


def test_json_lines_carry_no_color_message_and_no_ansi_codes(serve) -> None:
    process, url = serve(MADRE_LOG_FORMAT="json")
    requests.get(url + "/health", timeout=30)
    lines = process.stop()

    assert any("Uvicorn running on" in e["message"] for e in entries(lines))
    for line in lines:
        assert "color_message" not in json.loads(line)
        assert not ANSI.search(line)


def _on_a_terminal(cwd: pathlib.Path, env: dict[str, str]) -> str:
    """Run `python run.py` with stdout on a pseudo-terminal until it logs "madre serving";
    everything it printed by then."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(RUN)], cwd=cwd, env=env, stdout=terminal,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    os.close(terminal)
    seen: list[bytes] = []
    served = threading.Event()

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            seen.append(chunk)
            if b"madre serving" in b"".join(seen):
                served.set()
        served.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert served.wait(START), "Madre did not log 'madre serving'"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=START)
        reader.join(timeout=5)
        os.close(controller)
    return b"".join(seen).decode(errors="replace")


def test_a_terminal_gets_text_lines_and_a_pipe_json(tmp_path, standins) -> None:
    env = madre_env(**standins.env(), DATABASE_URL="sqlite:///m.db")
    printed = _on_a_terminal(tmp_path, env)

    [serving] = [line for line in printed.splitlines() if "madre serving" in line]
    with pytest.raises(ValueError):
        json.loads(serving)
    assert " INFO " in serving and "url=http://127.0.0.1:" in serving


def test_madre_log_format_json_gives_json_even_on_a_terminal(tmp_path, standins) -> None:
    env = madre_env(**standins.env(), DATABASE_URL="sqlite:///m.db", MADRE_LOG_FORMAT="json")
    printed = _on_a_terminal(tmp_path, env)

    [serving] = [line for line in printed.splitlines() if "madre serving" in line]
    assert json.loads(serving)["url"].startswith("http://127.0.0.1:")


# --------------------------------------------------------------------------- serving


def test_madre_serving_names_the_port_bound_and_a_second_server_there_does_not_say_it(
        serve, tmp_path) -> None:
    _, url = serve()
    port = url.rsplit(":", 1)[1]
    assert requests.get(url + "/health", timeout=30).status_code == 200
    other = tmp_path / "second"
    other.mkdir()

    second = Served(other, madre_env(MADRE_PORT=port, DATABASE_URL="sqlite:///m.db"),
                    merge_stderr=True)
    try:
        assert second.proc.wait(timeout=START) == 1
        lines = second.rest()
    finally:
        second.close()

    assert not [line for line in lines if "madre serving" in line]
    [refusal] = [json.loads(line) for line in lines if "could not listen" in line]
    assert refusal["level"] == "ERROR" and port in refusal["message"]
    assert "Traceback" not in "\n".join(lines)

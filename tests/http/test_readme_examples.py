"""The original README's curl examples (seed/madre-v7-README.md, "Ejemplos de Curl") work as
written against a real server: the same headers, the same bodies, byte for byte.

The README sends the default token `vx11-local-token`, so these tests serve a Madre (and
stand-ins) configured with it, on a loopback port of the system's choosing instead of 8001.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from helpers import make_settings

from madre import Madre, create_app
from madre.settings import DEFAULT_TOKEN
from madre.standins import LoopbackServer, StandinCluster

README_HEADERS = {"X-VX11-Token": "vx11-local-token", "Content-Type": "application/json"}
CHAT_SIMPLE = '{"message":"mix these 3 stems","session_id":"sess-123"}'
CHAT_AUDIO = '{"message":"apply eq and compression to vocal stem","session_id":"sess-123"}'
CONTROL_DELETE = '{"target":"shub","action":"delete","params":{}}'
TIMEOUT = 15  # seconds; chat waits for its plan


@pytest.fixture(scope="module")
def readme_standins() -> Iterator[StandinCluster]:
    with StandinCluster(token=DEFAULT_TOKEN) as cluster:
        yield cluster


@pytest.fixture
def readme_url(database_url: str, readme_standins: StandinCluster) -> Iterator[str]:
    readme_standins.reset()
    settings = make_settings(database_url, readme_standins, token=DEFAULT_TOKEN)
    try:
        with Madre(settings) as madre, LoopbackServer(create_app(madre), lifespan="on",
                                                      name="madre-readme") as server:
            yield server.url
    finally:
        readme_standins.release_all()


def post(url: str, data: str) -> dict[str, Any]:
    resp = requests.post(url, headers=README_HEADERS, data=data, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_the_readme_health_check_works_as_written(readme_url: str) -> None:
    # curl -s http://127.0.0.1:8001/health -H "X-VX11-Token: vx11-local-token"
    resp = requests.get(f"{readme_url}/health", headers={"X-VX11-Token": "vx11-local-token"},
                        timeout=TIMEOUT)
    assert resp.status_code == 200
    body = resp.json()
    assert body["module"] == "madre"
    assert body["status"] in ("ok", "degraded")


def test_the_readme_simple_chat_works_as_written(readme_url: str) -> None:
    answer = post(f"{readme_url}/madre/chat", CHAT_SIMPLE)
    assert answer["session_id"] == "sess-123"
    assert answer["status"] == "DONE"
    assert answer["mode"] == "AUDIO_ENGINEER"
    assert [a["step"] for a in answer["actions"]] == ["CALL_SWITCH", "CALL_SHUB", "NOOP"]


def test_the_readme_audio_chat_stays_in_audio_engineer_mode_for_the_same_session(
    readme_url: str,
) -> None:
    post(f"{readme_url}/madre/chat", CHAT_SIMPLE)
    answer = post(f"{readme_url}/madre/chat", CHAT_AUDIO)
    assert answer["session_id"] == "sess-123"
    assert answer["mode"] == "AUDIO_ENGINEER"
    assert answer["status"] == "DONE"


def test_the_readme_control_delete_waits_for_confirmation(readme_url: str) -> None:
    answer = post(f"{readme_url}/madre/control", CONTROL_DELETE)
    assert answer["status"] == "pending_confirmation"
    assert answer["risk"] == "HIGH"
    assert answer["confirm_token"] and answer["plan_id"]

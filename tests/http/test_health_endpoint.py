"""GET /health reads cached probes: it answers at once even when every dependency hangs, and
says "degraded" once the prober has found modules down.

The background prober runs one round when Madre starts and then sleeps for an hour; each
test refreshes the board itself with `madre.prober.probe_once()`. The stand-ins are put in
the test's modes (`modes`) BEFORE Madre starts, so that start-up round sees what the test's
own round sees and can never overwrite it with an older answer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from helpers import make_settings
from starlette.testclient import TestClient

from madre import Madre, Settings
from madre.standins import ALL_MODULES, Recorder, StandinCluster

QUICK = 0.5  # seconds: a /health that blocked on a probe would raise requests' Timeout
ALL_HANG = {m: "hang" for m in ALL_MODULES}


@pytest.fixture
def settings(database_url: str, standins: StandinCluster, modes: dict[str, str]) -> Settings:
    for module, mode in modes.items():
        standins.behaviours[module].mode = mode  # type: ignore[assignment]
    return make_settings(database_url, standins, health_interval_seconds=3600.0)


def health(client: TestClient) -> dict[str, Any]:
    resp = client.get("/health")
    assert resp.status_code == 200
    return resp.json()


hanging = pytest.mark.parametrize("modes", [ALL_HANG], indirect=True, ids=["all-hang"])


@hanging
def test_health_answers_at_once_while_every_dependency_hangs(live_url: str) -> None:
    resp = requests.get(f"{live_url}/health", timeout=QUICK)
    assert resp.status_code == 200
    assert resp.json()["module"] == "madre"


@hanging
def test_health_answers_at_once_while_a_probe_round_is_hanging(
    madre: Madre, live_url: str, standins: StandinCluster
) -> None:
    mark = time.monotonic()
    prober = threading.Thread(target=madre.prober.probe_once, name="test-probe-round")
    prober.start()
    try:
        def all_probes_hanging(r: Recorder) -> bool:
            hanging = {q.module for q in r.requests() if q.path == "/health" and q.time >= mark}
            return hanging == set(ALL_MODULES)

        assert standins.recorder.wait_for(all_probes_hanging, timeout=10)
        resp = requests.get(f"{live_url}/health", timeout=QUICK)
        assert resp.status_code == 200
    finally:
        prober.join()
    assert requests.get(f"{live_url}/health", timeout=QUICK).json()["status"] == "degraded"


@hanging
def test_health_is_degraded_with_every_module_down_once_probes_time_out(
    madre: Madre, client: TestClient
) -> None:
    madre.prober.probe_once()
    body = health(client)
    assert body["status"] == "degraded"
    assert body["deps"] == {m: "down" for m in ALL_MODULES}
    assert body["db"] == "ok"


@pytest.mark.parametrize("modes", [{"shub": "fail"}], indirect=True, ids=["shub-fails"])
def test_one_failing_module_is_enough_to_be_degraded(madre: Madre, client: TestClient) -> None:
    madre.prober.probe_once()
    body = health(client)
    assert body["status"] == "degraded"
    assert body["deps"] == {m: "down" if m == "shub" else "up" for m in ALL_MODULES}


@hanging
def test_health_is_ok_again_once_the_modules_come_back(madre: Madre, client: TestClient,
                                                       standins: StandinCluster) -> None:
    madre.prober.probe_once()
    assert health(client)["status"] == "degraded"
    standins.reset()
    madre.prober.probe_once()
    body = health(client)
    assert body["status"] == "ok"
    assert body["deps"] == {m: "up" for m in ALL_MODULES}


@pytest.mark.parametrize("modes", [{"switch": "hang"}], indirect=True, ids=["switch-hangs"])
def test_chat_still_answers_with_the_local_parser_while_switch_hangs(
    client: TestClient,
) -> None:
    resp = client.post("/madre/chat", json={"message": "status of hermes", "dry_run": True})
    assert resp.status_code == 200
    assert resp.json()["provider"] == "fallback_local"

"""GET /health reads cached probes: it answers at once even when every dependency hangs, and
says "degraded" once the prober has found modules down.

The background prober is slowed to one round an hour here; each test refreshes the board
itself with `madre.prober.probe_once()`, so what /health shows follows what the test did.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from conftest import make_settings
from starlette.testclient import TestClient

from madre import Madre, Settings
from madre.standins import ALL_MODULES, Recorder, StandinCluster

QUICK = 0.5  # seconds: a /health that blocked on a probe would raise requests' Timeout


@pytest.fixture
def settings(database_url: str, standins: StandinCluster) -> Settings:
    return make_settings(database_url, standins, health_interval_seconds=3600.0)


def hang_everything(standins: StandinCluster) -> None:
    for module in ALL_MODULES:
        standins.behaviours[module].mode = "hang"


def health(client: TestClient) -> dict[str, Any]:
    resp = client.get("/health")
    assert resp.status_code == 200
    return resp.json()


def test_health_answers_at_once_while_every_dependency_hangs(
    live_url: str, standins: StandinCluster
) -> None:
    hang_everything(standins)
    resp = requests.get(f"{live_url}/health", timeout=QUICK)
    assert resp.status_code == 200
    assert resp.json()["module"] == "madre"


def test_health_answers_at_once_while_a_probe_round_is_hanging(
    madre: Madre, live_url: str, standins: StandinCluster
) -> None:
    hang_everything(standins)
    mark = time.monotonic()
    prober = threading.Thread(target=madre.prober.probe_once, name="test-probe-round")
    prober.start()
    try:
        def all_probes_hanging(r: Recorder) -> bool:
            hanging = {q.module for q in r.requests() if q.path == "/health" and q.time >= mark}
            return hanging == set(ALL_MODULES)

        assert standins.recorder.wait_for(all_probes_hanging, timeout=5)
        resp = requests.get(f"{live_url}/health", timeout=QUICK)
        assert resp.status_code == 200
    finally:
        prober.join()
    assert requests.get(f"{live_url}/health", timeout=QUICK).json()["status"] == "degraded"


def test_health_is_degraded_with_every_module_down_once_probes_time_out(
    madre: Madre, client: TestClient, standins: StandinCluster
) -> None:
    hang_everything(standins)
    madre.prober.probe_once()
    body = health(client)
    assert body["status"] == "degraded"
    assert body["deps"] == {m: "down" for m in ALL_MODULES}
    assert body["db"] == "ok"


def test_one_failing_module_is_enough_to_be_degraded(madre: Madre, client: TestClient,
                                                     standins: StandinCluster) -> None:
    standins.behaviours["shub"].mode = "fail"
    madre.prober.probe_once()
    body = health(client)
    assert body["status"] == "degraded"
    assert body["deps"]["shub"] == "down"
    assert {m: s for m, s in body["deps"].items() if m != "shub"} == {
        m: "up" for m in ALL_MODULES if m != "shub"
    }


def test_health_is_ok_again_once_the_modules_come_back(madre: Madre, client: TestClient,
                                                       standins: StandinCluster) -> None:
    hang_everything(standins)
    madre.prober.probe_once()
    assert health(client)["status"] == "degraded"
    standins.reset()
    madre.prober.probe_once()
    body = health(client)
    assert body["status"] == "ok"
    assert body["deps"] == {m: "up" for m in ALL_MODULES}


def test_chat_still_answers_while_switch_hangs(client: TestClient,
                                               standins: StandinCluster) -> None:
    standins.behaviours["switch"].mode = "hang"
    resp = client.post("/madre/chat", json={"message": "status of hermes", "dry_run": True})
    assert resp.status_code == 200
    assert resp.json()["provider"] == "fallback_local"

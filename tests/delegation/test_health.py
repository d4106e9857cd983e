"""Dependency health: `prober.probe_once()` probes every module (GET /health, short timeout)
and the database, and GET /health reads what it found: per dependency a state, when it was
checked and why it is down; "degraded" as soon as one is down. /health itself never waits on
a probe, so it answers within half a second while every module hangs.

The stand-ins are put in the test's modes before Madre starts (`modes`), so the probe round
Madre runs at start-up sees what the test's own round sees. Every test runs on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
import requests
from helpers import free_port, make_settings

from madre import Madre, Settings
from madre.standins import ALL_MODULES, Recorder, StandinCluster

DEPENDENCIES = {*ALL_MODULES, "db"}
QUICK = 0.5  # seconds: the client timeout /health must answer within


@pytest.fixture
def settings(database_url: str, standins: StandinCluster, modes: dict[str, str]) -> Settings:
    for module, mode in modes.items():
        standins.behaviours[module].mode = mode  # type: ignore[assignment]
    return make_settings(database_url, standins, health_interval_seconds=3600.0)


def with_modes(name: str | None = None, **modes: str) -> Any:
    name = name or ",".join(f"{m}-{v}" for m, v in modes.items())
    return pytest.mark.parametrize("modes", [modes], indirect=True, ids=[name])


def health(client: Any) -> dict[str, Any]:
    resp = client.get("/health")
    assert resp.status_code == 200, resp.text
    return resp.json()


def checked_at(check: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(check["checked_at"])


def test_every_module_and_the_database_have_a_state_a_check_time_and_an_error_field(
        madre: Madre, client: Any) -> None:
    before = dt.datetime.now(dt.UTC)
    madre.prober.probe_once()

    checks = health(client)["checks"]

    assert set(checks) == DEPENDENCIES
    for name, check in checks.items():
        assert set(check) == {"state", "checked_at", "error"}, name
        assert check["state"] == "up", name
        assert check["error"] is None, name
        assert checked_at(check) >= before - dt.timedelta(seconds=1), name


def test_health_is_ok_when_every_module_and_the_database_are_up(madre: Madre,
                                                               client: Any) -> None:
    madre.prober.probe_once()

    body = health(client)

    assert body["status"] == "ok"
    assert body["deps"] == {m: "up" for m in ALL_MODULES}
    assert body["db"] == "ok"


@with_modes(shub="hang")
def test_a_hanging_module_is_down_with_a_timeout_reason_and_health_degraded(
        madre: Madre, client: Any) -> None:
    madre.prober.probe_once()

    body = health(client)

    assert body["checks"]["shub"]["state"] == "down"
    assert body["checks"]["shub"]["error"] == "no answer before the read timeout"
    assert body["status"] == "degraded"
    assert {m: c["state"] for m, c in body["checks"].items() if m != "shub"} == {
        m: "up" for m in DEPENDENCIES - {"shub"}}


@with_modes(hermes="fail")
def test_a_module_whose_health_answers_500_is_down_with_that_status(madre: Madre,
                                                                    client: Any) -> None:
    madre.prober.probe_once()

    check = health(client)["checks"]["hermes"]

    assert check["state"] == "down"
    assert check["error"] == "health answered HTTP 500"


def test_a_module_that_refuses_connections_is_down_with_the_refusal(start_madre: Any) -> None:
    from starlette.testclient import TestClient

    from madre import create_app

    runtime = start_madre(manifestator_url=f"http://127.0.0.1:{free_port()}",
                          health_interval_seconds=3600.0)
    runtime.prober.probe_once()

    with TestClient(create_app(runtime)) as anonymous:
        body = health(anonymous)

    assert body["checks"]["manifestator"] == {
        "state": "down", "checked_at": body["checks"]["manifestator"]["checked_at"],
        "error": "connection refused (is the module running?)"}
    assert body["status"] == "degraded"


def test_each_probe_round_refreshes_the_check_times(madre: Madre, client: Any) -> None:
    madre.prober.probe_once()
    first = health(client)["checks"]
    madre.prober.probe_once()
    second = health(client)["checks"]

    for name in DEPENDENCIES:
        assert checked_at(second[name]) > checked_at(first[name]), name


@with_modes(switch="hang")
def test_a_module_that_comes_back_is_up_again_with_no_error_after_the_next_round(
        madre: Madre, client: Any, standins: StandinCluster) -> None:
    madre.prober.probe_once()
    assert health(client)["checks"]["switch"]["state"] == "down"

    standins.reset()
    madre.prober.probe_once()

    body = health(client)
    assert body["checks"]["switch"] == {"state": "up", "error": None,
                                        "checked_at": body["checks"]["switch"]["checked_at"]}
    assert body["status"] == "ok"


@with_modes("all-hang", **{m: "hang" for m in ALL_MODULES})
def test_health_answers_within_half_a_second_while_every_module_hangs_mid_probe(
        madre: Madre, live_url: str, standins: StandinCluster) -> None:
    mark = time.monotonic()
    round_in_flight = threading.Thread(target=madre.prober.probe_once, name="test-probe-round")
    round_in_flight.start()
    try:
        def every_probe_hanging(r: Recorder) -> bool:
            return {q.module for q in r.requests()
                    if q.path == "/health" and q.time >= mark} == set(ALL_MODULES)

        assert standins.recorder.wait_for(every_probe_hanging, timeout=10)
        started = time.monotonic()
        resp = requests.get(f"{live_url}/health", timeout=QUICK)
        took = time.monotonic() - started
    finally:
        round_in_flight.join()

    assert resp.status_code == 200
    assert took < QUICK
    body = requests.get(f"{live_url}/health", timeout=QUICK).json()
    assert body["status"] == "degraded"
    assert {m: body["checks"][m]["state"] for m in ALL_MODULES} == {m: "down"
                                                                    for m in ALL_MODULES}
    assert body["checks"]["db"]["state"] == "up"

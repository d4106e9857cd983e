"""GET /metrics: Prometheus text, parsed with prometheus_client's own parser.

After known traffic (2 LOW chats, 1 HIGH chat confirmed, 1 denied control, 1 chat whose
step fails on Shub, 1 cancelled plan) every counter equals exactly what happened. Counters
are fed from what the Store actor commits: an action's records are committed before its
answer, and the tests wait for plans to end (`wait_for_plan(final=True)`) before scraping.
Gauges are read at scrape time. /metrics needs the token unless MADRE_METRICS_OPEN.
Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from doubles import CrashingRunner
from helpers import (
    TOKEN,
    WAIT,
    assert_envelope,
    chat,
    control,
    final,
    ok_json,
    plan_actors_left,
)
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from madre import Madre, create_app
from madre.standins import StandinCluster

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of GET /metrics by (sample name, labels)."""
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.text
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; a labelled counter never incremented is absent, which is 0."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum of every sample `name`, whatever its labels."""
    return sum(v for (n, _), v in samples.items() if n == name)


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """{label value: sample value} of the non-zero samples `name`, which have one label."""
    return {dict(labels)[label]: v for (n, labels), v in samples.items()
            if n == name and v and label in dict(labels)}




@dataclasses.dataclass
class Traffic:
    low: list[str]
    high: str
    failed: str
    cancelled: str


@pytest.fixture
def traffic(madre: Madre, client: TestClient, standins: StandinCluster) -> Traffic:
    """The known traffic, every plan ended."""
    low = [chat(client, "mix these 3 stems")["plan_id"] for _ in range(2)]
    high = chat(client, "delete the shub cache")
    assert high["risk"] == "HIGH" and high["status"] == "WAITING", high
    ok_json(client.post(f"/madre/plans/{high['plan_id']}/confirm",
                        json={"confirm_token": high["confirm_token"]}))
    assert control(client, "madre", "stop")["status"] == "denied"
    standins.behaviours["shub"].set("fail")
    failed = chat(client, "mix these 3 stems")
    standins.behaviours["shub"].set("ok")
    held = control(client, "shub", "delete")
    ok_json(client.post(f"/madre/plans/{held['plan_id']}/cancel", json={"by": "ops"}))
    plans = Traffic(low=low, high=high["plan_id"], failed=failed["plan_id"],
                    cancelled=held["plan_id"])
    for plan_id in (*plans.low, plans.high, plans.failed, plans.cancelled):
        final(madre, plan_id)
    assert madre.get_plan(plans.failed).status == "ERROR"
    return plans


# --------------------------------------------------------------------------- the endpoint


def test_metrics_are_prometheus_text_that_prometheus_client_parses(client) -> None:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=")
    names = {f.name for f in text_string_to_metric_families(resp.text)}
    assert {"madre_intents", "madre_plans_finished", "madre_step_failures",
            "madre_step_duration_seconds", "madre_confirmations", "madre_supervisor_restarts",
            "madre_plan_actors_active", "madre_plans_waiting",
            "madre_circuit_breaker_state", "madre_http_requests",
            "madre_http_request_duration_seconds", "madre_fallback_parses"} <= names


def test_metrics_need_the_token(madre) -> None:
    with TestClient(create_app(madre)) as anonymous:
        assert_envelope(anonymous.get("/metrics"), 401, "auth_required")
        assert_envelope(anonymous.get("/metrics", headers={"X-VX11-Token": "wrong"}), 403,
                        "forbidden")


def test_metrics_open_serves_them_without_the_token_and_nothing_else(start_madre) -> None:
    runtime = start_madre(metrics_open=True)
    with TestClient(create_app(runtime)) as anonymous:
        assert anonymous.get("/metrics").status_code == 200
        assert_envelope(anonymous.get("/madre/plans"), 401, "auth_required")


# --------------------------------------------------------------------------- counters


def test_intents_are_counted_by_source_and_risk(client, traffic) -> None:
    samples = scrape(client)
    assert value(samples, "madre_intents_total", source="operator", risk="LOW") == 3
    assert value(samples, "madre_intents_total", source="operator", risk="HIGH") == 1
    assert value(samples, "madre_intents_total", source="control", risk="HIGH") == 2
    assert total(samples, "madre_intents_total") == 6


def test_denied_intents_are_counted_by_source(client, traffic) -> None:
    samples = scrape(client)
    assert by_label(samples, "madre_intents_denied_total", "source") == {"control": 1}


def test_finished_plans_are_counted_by_final_status(client, traffic) -> None:
    samples = scrape(client)
    assert by_label(samples, "madre_plans_finished_total", "status") == {"DONE": 3, "ERROR": 2}


def test_step_failures_are_counted_by_module(client, traffic) -> None:
    samples = scrape(client)
    assert by_label(samples, "madre_step_failures_total", "module") == {"shub": 1}


def test_step_durations_are_observed_by_module_and_outcome(client, traffic) -> None:
    samples = scrape(client)
    name = "madre_step_duration_seconds_count"
    assert value(samples, name, module="switch", outcome="ok") == 3  # 3 audio chats
    assert value(samples, name, module="shub", outcome="ok") == 3  # 2 mixes and the delete
    assert value(samples, name, module="shub", outcome="error") == 1
    assert total(samples, name) == 7
    assert value(samples, "madre_step_duration_seconds_sum", module="shub",
                 outcome="ok") > 0


def test_confirmations_issued_and_used_are_counted(client, traffic) -> None:
    samples = scrape(client)
    assert by_label(samples, "madre_confirmations_total", "outcome") == {"issued": 2,
                                                                          "used": 1}


def test_a_confirmation_that_expires_is_counted_after_the_tick(madre, client) -> None:
    held = control(client, "shub", "delete")
    assert value(scrape(client), "madre_plans_waiting") == 1
    expired = madre.tick(now=dt.datetime.fromisoformat(held["expires_at"])
                         + dt.timedelta(seconds=1))
    assert [p.plan_id for p in expired] == [held["plan_id"]]
    samples = scrape(client)
    assert by_label(samples, "madre_confirmations_total", "outcome") == {"issued": 1,
                                                                          "expired": 1}
    assert by_label(samples, "madre_plans_finished_total", "status") == {"ERROR": 1}
    assert value(samples, "madre_plans_waiting") == 0


def test_a_refused_confirmation_is_counted_as_rejected(client) -> None:
    held = control(client, "shub", "delete")
    resp = client.post(f"/madre/plans/{held['plan_id']}/confirm",
                       json={"confirm_token": "not-the-token"})
    assert_envelope(resp, 403, "invalid_token")
    assert value(scrape(client), "madre_confirmations_total", outcome="rejected") == 1


def test_no_supervisor_restart_is_counted_when_no_actor_crashed(client, traffic) -> None:
    samples = scrape(client)
    assert value(samples, "madre_supervisor_restarts_total") == 0
    assert value(samples, "madre_supervisor_gave_up_total") == 0


def test_a_crashed_plan_actor_is_counted_as_one_supervisor_restart(start_madre) -> None:
    # The real executor, except that the step whose params say `crash` raises once after its
    # call was made: its Plan actor crashes once and is restarted.
    madre = start_madre(step_runner=lambda real: CrashingRunner(real, times=1))
    with TestClient(create_app(madre), headers={"X-VX11-Token": TOKEN}) as client:
        plan_id = control(client, "hermes", "ping", params={"crash": True})["plan_id"]
        assert final(madre, plan_id).status == "DONE"
        samples = scrape(client)
    assert value(samples, "madre_supervisor_restarts_total") == 1
    assert by_label(samples, "madre_plans_finished_total", "status") == {"DONE": 1}


# --------------------------------------------------------------------------- gauges


@pytest.fixture
def patient(start_madre, standins: StandinCluster) -> Iterator[tuple[Madre, TestClient]]:
    """A Madre whose steps wait 30 s for a module, and its client; a module left hanging is
    released before it stops."""
    runtime = start_madre(step_timeout_seconds=30)
    with TestClient(create_app(runtime), headers={"X-VX11-Token": TOKEN}) as http:
        yield runtime, http
    standins.release_all()




def test_the_plan_actors_gauge_counts_the_actors_alive_now(patient, standins) -> None:
    madre, client = patient
    assert value(scrape(client), "madre_plan_actors_active") == 0
    standins.behaviours["hermes"].set("hang")
    plan_id = control(client, "hermes", "ping")["plan_id"]
    assert standins.recorder.wait_for_calls("hermes", 1, timeout=WAIT)
    assert value(scrape(client), "madre_plan_actors_active") == 1
    standins.behaviours["hermes"].set("ok")
    standins.release_all()
    final(madre, plan_id)
    assert plan_actors_left(madre) == 0
    assert value(scrape(client), "madre_plan_actors_active") == 0


def test_the_waiting_gauge_counts_plans_waiting_for_a_confirmation_or_a_job(
        madre, client) -> None:
    held = control(client, "shub", "delete")
    job = chat(client, "run the backup job")
    assert job["status"] == "WAITING"
    assert value(scrape(client), "madre_plans_waiting") == 2
    ok_json(client.post(f"/madre/plans/{held['plan_id']}/confirm",
                        json={"confirm_token": held["confirm_token"]}))
    final(madre, held["plan_id"])
    assert value(scrape(client), "madre_plans_waiting") == 1


def breaker_states(samples: Samples) -> dict[str, float]:
    return {dict(labels)["state"]: v for (n, labels), v in samples.items()
            if n == "madre_circuit_breaker_state" and dict(labels)["service"] == "switch"}


def test_the_switch_breaker_is_a_state_set_with_1_for_the_state_it_is_in(madre, client,
                                                                         standins) -> None:
    assert breaker_states(scrape(client)) == {"closed": 1, "open": 0, "half_open": 0}
    standins.behaviours["switch"].set("fail")
    for _ in range(madre.settings.breaker_failures):
        answer = chat(client, "hello there")  # parsed by the fallback parser meanwhile
        assert "fallback_parser_used" in answer["warnings"]
    assert breaker_states(scrape(client)) == {"closed": 0, "open": 1, "half_open": 0}


def test_each_madre_counts_only_its_own_traffic(madre, client, start_madre, database_url,
                                                tmp_path) -> None:
    chat(client, "mix these 3 stems")
    # On SQLite the other Madre needs a file of its own (one instance per file).
    other = start_madre(database_url=f"sqlite:///{tmp_path}/other.db"
                        if database_url.startswith("sqlite") else database_url)
    with TestClient(create_app(other), headers={"X-VX11-Token": TOKEN}) as other_client:
        assert value(scrape(other_client), "madre_intents_total", source="operator",
                     risk="LOW") == 0
    assert value(scrape(client), "madre_intents_total", source="operator", risk="LOW") == 1


def test_approvals_are_counted_by_outcome(madre: Madre, client: TestClient) -> None:
    approved = control(client, "shub", "delete")
    rejected = control(client, "hermes", "delete")
    ok_json(client.post(f"/madre/plans/{approved['plan_id']}/approve",
                        json={"plan_digest": approved["plan_digest"]}))
    assert_envelope(client.post(f"/madre/plans/{rejected['plan_id']}/approve",
                                json={"plan_digest": "0" * 64}), 409, "plan_changed")
    ok_json(client.post(f"/madre/plans/{rejected['plan_id']}/reject", json={"reason": "no"}))
    final(madre, approved["plan_id"])

    samples = scrape(client)

    assert by_label(samples, "madre_approvals_total", "outcome") == {
        "approved": 1.0, "rejected": 1.0, "plan_changed": 1.0}

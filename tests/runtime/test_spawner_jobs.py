"""Spawner jobs: a SPAWNER_REQUEST step writes a daughter_tasks row and the plan WAITS holding
no actor; the Spawner's report (`POST /madre/callback/spawn`, or its own
`/madre/daughter/{id}/complete|fail`) resumes the plan to DONE or ends it in ERROR. A report
that comes twice, or late, changes nothing and says so. The callback routes take Madre's
token or the Spawner's (MADRE_SPAWNER_TOKEN), or none at all with MADRE_CALLBACK_AUTH=none.

The first tests run the Spawner stand-in's worker, which picks the row up and reports over
real HTTP; the others send the reports themselves, so they decide what is reported and when.
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import (
    TOKEN,
    assert_envelope,
    audit_actions,
    is_subsequence,
    plan_actors_left,
    table_rows,
)
from starlette.testclient import TestClient

from madre import Madre, create_app
from madre.contracts.intake import ChatRequest, ControlRequest, IntentRequest
from madre.model import Plan, Status, StepType, WaitReason
from madre.standins import SpawnerWorker, StandinCluster

BOUND = 15.0  # seconds: a generous bound for a plan that should end in well under one
JOB = "run the backup job"
SPAWNER_TOKEN = "spawner-own-token-987"


def ended(madre: Madre, plan_id: str) -> Plan:
    plan = madre.wait_for_plan(plan_id, BOUND, final=True)
    assert plan is not None, f"plan {plan_id} did not end within {BOUND} s"
    return plan




def waiting_job(madre: Madre) -> tuple[str, int]:
    """A chat that asks for a job: (plan id, daughter_tasks id), the plan WAITING for it."""
    answer = madre.chat(ChatRequest(message=JOB))
    assert answer.status is Status.WAITING
    assert answer.plan_id is not None
    [step] = [s for s in madre.get_plan(answer.plan_id).steps
              if s.type == StepType.SPAWNER_REQUEST]
    return answer.plan_id, int(step.result["daughter_task_id"])


# --------------------------------------------------------------------------- with the worker


@pytest.fixture
def spawner(database_url: str, live_url: str, standins: StandinCluster
            ) -> Iterator[SpawnerWorker]:
    behaviour = standins.behaviours["spawner"]
    behaviour.complete_after = 0.05
    with SpawnerWorker(database_url, madre_url=live_url, token=TOKEN,
                       behaviour=behaviour, poll=0.02) as worker:
        yield worker
    behaviour.complete_after = 0.2
    behaviour.spawn_outcome = "ok"


def by_chat(madre: Madre) -> str:
    answer = madre.chat(ChatRequest(message=JOB))
    assert answer.status is Status.WAITING
    return str(answer.plan_id)


def by_intent(madre: Madre) -> str:
    return str(madre.submit_intent(IntentRequest(
        source="cli", action="run", target="spawner", params={"task_type": "backup"})).plan_id)


def by_control(madre: Madre) -> str:
    return str(madre.control(ControlRequest(target="spawner", action="run",
                                            params={"task_type": "backup"})).plan_id)


@pytest.mark.parametrize("ask", [by_chat, by_intent, by_control],
                         ids=["chat", "intent", "control"])
def test_a_job_request_waits_for_the_spawner_and_ends_done_when_it_reports(
        madre: Madre, spawner: SpawnerWorker, ask: Callable[[Madre], str]) -> None:
    plan_id = ask(madre)

    assert ended(madre, plan_id).status is Status.DONE
    assert is_subsequence(["daughter_task_requested", "plan_waiting", "job_completed",
                           "plan_done"], audit_actions(madre, plan_id))
    job = madre.get_plan(plan_id).steps[0]
    assert job.type == StepType.SPAWNER_REQUEST and job.status is Status.DONE
    assert job.result["status"] == "ok"
    assert job.result["result"]["exit_code"] == 0


def test_the_job_row_names_its_intent_plan_step_type_and_description(
        madre: Madre, spawner: SpawnerWorker) -> None:
    plan_id = by_chat(madre)
    assert ended(madre, plan_id).status is Status.DONE

    detail = madre.get_plan(plan_id)
    [row] = table_rows(madre, "daughter_tasks")
    assert row["intent_id"] == detail.intent.intent_id
    assert row["plan_id"] == plan_id
    assert row["step_id"] == detail.steps[0].step_id
    assert row["task_type"] == "job"
    assert row["description"] == JOB
    assert detail.steps[0].result["daughter_task_id"] == row["id"]


def test_a_job_the_spawner_reports_failed_ends_the_plan_in_error_naming_job_and_error(
        madre: Madre, spawner: SpawnerWorker, standins: StandinCluster) -> None:
    standins.behaviours["spawner"].spawn_outcome = "error"

    plan_id = by_chat(madre)
    plan = ended(madre, plan_id)

    job_id = madre.get_plan(plan_id).steps[0].result["daughter_task_id"]
    assert plan.status is Status.ERROR
    assert f"Spawner job {job_id} failed" in plan.reason
    assert "the stand-in job exited with code 1" in plan.reason
    assert "job_failed" in audit_actions(madre, plan_id)


# --------------------------------------------------------------------------- waiting


def test_a_plan_waiting_for_its_job_holds_no_plan_actor(madre: Madre, standins) -> None:
    plan_id, _ = waiting_job(madre)

    assert plan_actors_left(madre) == 0
    stored = madre.get_plan(plan_id)
    assert stored.status is Status.WAITING
    assert stored.wait_reason is WaitReason.SPAWNER_JOB


# --------------------------------------------------------------------------- reports by hand


def report(client: TestClient, job_id: int, status: str = "ok", **fields: Any) -> Any:
    return client.post("/madre/callback/spawn",
                       json={"daughter_task_id": job_id, "status": status, **fields})


def test_a_callback_reporting_success_is_accepted_and_resumes_the_plan_to_done(
        madre: Madre, client: TestClient) -> None:
    plan_id, job_id = waiting_job(madre)

    resp = report(client, job_id, result={"spawn_uuid": "u-1", "exit_code": 0})

    assert resp.status_code == 200
    assert resp.json() == {"status": "accepted", "daughter_task_id": job_id, "plan_id": plan_id,
                           "plan_status": "RUNNING", "detail": None}
    assert ended(madre, plan_id).status is Status.DONE
    job = madre.get_plan(plan_id).steps[0]
    assert job.result == {"daughter_task_id": job_id, "status": "ok",
                          "result": {"spawn_uuid": "u-1", "exit_code": 0}}


def test_a_callback_reporting_an_error_ends_the_plan_in_error_with_that_error(
        madre: Madre, client: TestClient) -> None:
    plan_id, job_id = waiting_job(madre)

    resp = report(client, job_id, "error", error="disk full")

    assert resp.json()["plan_status"] == "ERROR"
    plan = ended(madre, plan_id)
    assert plan.status is Status.ERROR
    assert plan.reason == (f"step 0 (SPAWNER_REQUEST) failed: Spawner job {job_id} failed: "
                           "disk full")


def test_the_same_report_sent_twice_is_answered_duplicate_the_second_time(
        madre: Madre, client: TestClient) -> None:
    plan_id, job_id = waiting_job(madre)

    first = report(client, job_id)
    second = report(client, job_id)

    assert first.json()["status"] == "accepted"
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert second.json()["plan_id"] == plan_id
    assert ended(madre, plan_id).status is Status.DONE
    actions = audit_actions(madre, plan_id)
    assert actions.count("job_completed") == 1
    assert actions.count("job_report_ignored") == 1
    assert actions.count("plan_done") == 1


def test_a_duplicate_report_changes_nothing_in_the_plan(madre: Madre, client: TestClient) -> None:
    plan_id, job_id = waiting_job(madre)
    report(client, job_id, result={"run": 1})
    ended(madre, plan_id)
    before = madre.get_plan(plan_id)

    report(client, job_id, result={"run": 2})

    after = madre.get_plan(plan_id)
    assert after.model_dump(exclude={"history"}) == before.model_dump(exclude={"history"})
    assert [e.action for e in after.history][len(before.history):] == ["job_report_ignored"]


def test_a_late_failure_report_after_done_is_a_duplicate_and_the_plan_stays_done(
        madre: Madre, client: TestClient) -> None:
    plan_id, job_id = waiting_job(madre)
    report(client, job_id)
    assert ended(madre, plan_id).status is Status.DONE

    late = client.post(f"/madre/daughter/{job_id}/fail", json={"status": "error",
                                                                "exit_code": 9})

    assert late.status_code == 200
    body = late.json()
    assert body["status"] == "duplicate" and body["plan_status"] == "DONE"
    assert "already reported" in body["detail"]
    assert madre.get_plan(plan_id).status is Status.DONE
    assert audit_actions(madre, plan_id)[-1] == "job_report_ignored"


@pytest.mark.parametrize("path", ["/madre/daughter/424242/complete",
                                  "/madre/daughter/424242/fail"])
def test_a_report_for_an_unknown_job_is_a_404_envelope(madre: Madre, client: TestClient,
                                                        path: str) -> None:
    assert_envelope(client.post(path, json={"status": "ok"}), 404, "not_found")


def test_a_callback_for_an_unknown_job_is_a_404_envelope(madre: Madre,
                                                         client: TestClient) -> None:
    body = assert_envelope(report(client, 424242), 404, "not_found")
    assert "424242" in body["detail"]


def test_the_spawners_complete_report_resumes_the_plan_and_keeps_what_it_said(
        madre: Madre, client: TestClient) -> None:
    plan_id, job_id = waiting_job(madre)

    resp = client.post(f"/madre/daughter/{job_id}/complete",
                       json={"status": "ok", "exit_code": 0, "spawn_uuid": "u"})

    assert resp.status_code == 200 and resp.json()["status"] == "accepted"
    assert ended(madre, plan_id).status is Status.DONE
    assert madre.get_plan(plan_id).steps[0].result["result"] == {
        "status": "ok", "exit_code": 0, "spawn_uuid": "u"}


def test_the_spawners_fail_report_ends_the_plan_in_error_with_the_exit_code(
        madre: Madre, client: TestClient) -> None:
    plan_id, job_id = waiting_job(madre)

    resp = client.post(f"/madre/daughter/{job_id}/fail",
                       json={"status": "error", "exit_code": 3})

    assert resp.status_code == 200 and resp.json()["plan_status"] == "ERROR"
    plan = ended(madre, plan_id)
    assert plan.status is Status.ERROR
    assert "exit code 3" in plan.reason
    assert f"Spawner job {job_id}" in plan.reason


@pytest.mark.parametrize("daughter_id", ["abc", "0", "-1", "1.5", "1e3", "%EF%BC%91",
                                         "99999999999999999999"])
@pytest.mark.parametrize("verb", ["complete", "fail"])
def test_a_job_id_that_is_not_a_positive_whole_number_is_a_404(
        madre: Madre, client: TestClient, daughter_id: str, verb: str) -> None:
    resp = client.post(f"/madre/daughter/{daughter_id}/{verb}", json={"status": "ok"})

    assert_envelope(resp, 404, "not_found")


# --------------------------------------------------------------------------- callback auth


CALLBACKS = ["callback", "complete", "fail"]


def post_report(http: TestClient, route: str, job_id: int, headers: dict[str, str]) -> Any:
    if route == "callback":
        return http.post("/madre/callback/spawn", headers=headers,
                         json={"daughter_task_id": job_id, "status": "ok"})
    return http.post(f"/madre/daughter/{job_id}/{route}", headers=headers,
                     json={"status": "ok" if route == "complete" else "error", "exit_code": 0})


@pytest.fixture
def open_client(start_madre: Callable[..., Madre]) -> Iterator[Callable[..., Any]]:
    """start(**settings) → (Madre, a TestClient over it that sends no token by itself)."""
    clients: list[TestClient] = []

    def start(**overrides: Any) -> tuple[Madre, TestClient]:
        runtime = start_madre(health_interval_seconds=3600.0, **overrides)
        http = TestClient(create_app(runtime))
        http.__enter__()
        clients.append(http)
        return runtime, http

    yield start
    for http in clients:
        http.__exit__(None, None, None)


@pytest.mark.parametrize("route", CALLBACKS)
def test_the_callback_routes_accept_the_spawners_own_token(open_client, route: str) -> None:
    runtime, http = open_client(spawner_token=SPAWNER_TOKEN)
    plan_id, job_id = waiting_job(runtime)

    resp = post_report(http, route, job_id, {"X-VX11-Token": SPAWNER_TOKEN})

    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "accepted"
    assert ended(runtime, plan_id).status in (Status.DONE, Status.ERROR)


@pytest.mark.parametrize("route", CALLBACKS)
def test_the_callback_routes_still_accept_madres_token_beside_the_spawners(open_client,
                                                                          route: str) -> None:
    runtime, http = open_client(spawner_token=SPAWNER_TOKEN)
    _, job_id = waiting_job(runtime)

    assert post_report(http, route, job_id, {"X-VX11-Token": TOKEN}).status_code == 200


@pytest.mark.parametrize("route", CALLBACKS)
@pytest.mark.parametrize(("headers", "status", "code"), [
    ({"X-VX11-Token": "not-a-token-anyone-has"}, 403, "forbidden"),
    ({}, 401, "auth_required"),
], ids=["wrong-token", "no-token"])
def test_the_callback_routes_refuse_a_wrong_or_missing_token(open_client, route: str,
                                                             headers: dict[str, str],
                                                             status: int, code: str) -> None:
    runtime, http = open_client(spawner_token=SPAWNER_TOKEN)
    plan_id, job_id = waiting_job(runtime)

    assert_envelope(post_report(http, route, job_id, headers), status, code)
    assert runtime.get_plan(plan_id).status is Status.WAITING


def test_the_spawners_token_opens_only_the_callback_routes(open_client) -> None:
    _, http = open_client(spawner_token=SPAWNER_TOKEN)

    resp = http.post("/madre/chat", headers={"X-VX11-Token": SPAWNER_TOKEN},
                     json={"message": "hello"})

    assert_envelope(resp, 403, "forbidden")


@pytest.mark.parametrize("route", CALLBACKS)
def test_with_callback_auth_none_the_callback_routes_need_no_token(open_client,
                                                                   route: str) -> None:
    runtime, http = open_client(callback_auth="none")
    plan_id, job_id = waiting_job(runtime)

    resp = post_report(http, route, job_id, {})

    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "accepted"
    assert ended(runtime, plan_id).status in (Status.DONE, Status.ERROR)


def test_with_callback_auth_none_chat_still_needs_the_token(open_client) -> None:
    _, http = open_client(callback_auth="none")

    assert_envelope(http.post("/madre/chat", json={"message": "hello"}), 401, "auth_required")
    assert_envelope(http.get("/madre/plans"), 401, "auth_required")

"""POST /madre/plans/{id}/cancel: a plan that has not finished ends in ERROR, reason
`cancelled` (`cancelled: <reason>` when one is given), audited as `plan_cancelled` with who
asked (`{"by": ...}` in the body, else the X-VX11-Actor header, else "api").

From every state a plan can be in before it ends: PENDING (queued for a place), RUNNING (a
step in flight: its late result is ignored and the Plan actor stops), WAITING for a
confirmation (the token then gets 409 not_waiting) or for a Spawner job (the job's later
report is a duplicate). A plan already DONE or ERROR gets 409 not_cancellable; an unknown
plan 404. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import (
    TOKEN,
    WAIT,
    assert_envelope,
    audit_actions,
    chat,
    control,
    final,
    intent_row,
    ok_json,
    plan_actors_left,
    table_rows,
)
from starlette.testclient import TestClient

from madre import Madre, create_app
from madre.contracts.commands import CancelResponse
from madre.model import Status, StepType
from madre.standins import StandinCluster

JOB = "run the backup job"


@pytest.fixture
def slow_madre(start_madre, standins: StandinCluster) -> Iterator[Madre]:
    """A Madre with one Plan actor place and a step timeout long enough for a hanging
    stand-in to hang until released (at the latest when the test ends, before Madre stops)."""
    yield start_madre(max_active_plans=1, step_timeout_seconds=30)
    standins.release_all()


@pytest.fixture
def slow_client(slow_madre: Madre) -> Iterator[TestClient]:
    with TestClient(create_app(slow_madre), headers={"X-VX11-Token": TOKEN}) as http:
        yield http


def cancel(client: TestClient, plan_id: str, **kwargs: Any) -> Any:
    return client.post(f"/madre/plans/{plan_id}/cancel", **kwargs)








def cancellations(madre: Madre, plan_id: str) -> list[dict[str, Any]]:
    return [r for r in table_rows(madre, "madre_actions")
            if r["plan_id"] == plan_id and r["action"] == "plan_cancelled"]


def hanging_plan(client: TestClient, standins: StandinCluster) -> str:
    """A LOW plan RUNNING its CALL_SHUB step, which hangs on the stand-in until released."""
    standins.behaviours["shub"].set("hang")
    plan_id = control(client, "shub", "ping")["plan_id"]
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)
    return str(plan_id)


def waiting_for_confirmation(client: TestClient) -> tuple[str, str]:
    answer = control(client, "shub", "delete")
    assert answer["status"] == "pending_confirmation"
    return answer["plan_id"], answer["confirm_token"]


def waiting_for_job(client: TestClient) -> tuple[str, int]:
    """A plan WAITING for a Spawner job nobody runs: (plan id, daughter_tasks id)."""
    answer = chat(client, JOB)
    assert answer["status"] == "WAITING", answer
    steps = ok_json(client.get(f"/madre/plans/{answer['plan_id']}"))["steps"]
    [job] = [s for s in steps if s["type"] == StepType.SPAWNER_REQUEST]
    return answer["plan_id"], int(job["result"]["daughter_task_id"])


# --------------------------------------------------------------------------- from each state


def test_cancelling_a_plan_queued_for_a_place_ends_it_and_it_never_runs(
        slow_madre, slow_client, standins) -> None:
    busy = hanging_plan(slow_client, standins)
    queued = control(slow_client, "hermes", "ping")["plan_id"]
    assert slow_madre.supervisor.queued() == 1
    assert slow_madre.get_plan(queued).status is Status.PENDING

    answer = ok_json(cancel(slow_client, queued))
    assert answer["plan_status"] == "ERROR"
    standins.behaviours["shub"].set("ok")
    standins.release_all()
    assert final(slow_madre, busy).status is Status.DONE
    assert plan_actors_left(slow_madre) == 0
    assert standins.recorder.calls("hermes") == []
    plan = slow_madre.get_plan(queued)
    assert plan.status is Status.ERROR and plan.reason == "cancelled"
    assert "plan_started" not in audit_actions(slow_madre, queued)


def test_cancelling_a_running_plan_ends_it_in_error_while_its_step_is_in_flight(
        slow_madre, slow_client, standins) -> None:
    plan_id = hanging_plan(slow_client, standins)
    answer = ok_json(cancel(slow_client, plan_id, json={"reason": "wrong stems"}))
    assert answer["plan_status"] == "ERROR"
    plan = slow_madre.get_plan(plan_id)
    assert plan.status is Status.ERROR and plan.reason == "cancelled: wrong stems"
    shub = next(s for s in plan.steps if s.type == StepType.CALL_SHUB)
    assert shub.status is Status.ERROR and shub.error == "cancelled"


def test_the_late_result_of_a_cancelled_plans_step_does_not_revive_it(
        slow_madre, slow_client, standins) -> None:
    plan_id = hanging_plan(slow_client, standins)
    ok_json(cancel(slow_client, plan_id))
    standins.behaviours["shub"].set("ok")
    standins.release_all()  # the step's answer now reaches a plan that has ended
    assert plan_actors_left(slow_madre) == 0  # its actor got the answer, lost its save, stopped

    plan = slow_madre.get_plan(plan_id)
    assert plan.status is Status.ERROR and plan.reason == "cancelled"
    assert [s.status for s in plan.steps] == [Status.ERROR, Status.PENDING]
    assert plan.steps[0].result is None
    actions = audit_actions(slow_madre, plan_id)
    assert actions[-1] == "plan_cancelled"
    assert "plan_done" not in actions and "step_done:CALL_SHUB" not in actions


def test_a_cancelled_running_plans_actor_stops(slow_madre, slow_client, standins) -> None:
    plan_id = hanging_plan(slow_client, standins)
    assert slow_madre.active_plan_actors() == 1
    ok_json(cancel(slow_client, plan_id))
    standins.release_all()
    assert plan_actors_left(slow_madre) == 0
    # and the place it held is free: the next plan runs at once
    standins.behaviours["shub"].set("ok")
    assert chat(slow_client, "mix these 3 stems")["status"] == "DONE"


def test_after_a_cancel_the_plans_confirmation_token_gets_409_not_waiting(
        madre, client) -> None:
    plan_id, token = waiting_for_confirmation(client)
    ok_json(cancel(client, plan_id))
    resp = client.post(f"/madre/plans/{plan_id}/confirm", json={"confirm_token": token})
    assert_envelope(resp, 409, "not_waiting")
    plan = madre.get_plan(plan_id)
    assert plan.status is Status.ERROR and plan.reason == "cancelled"
    assert plan.confirmation.confirmed_at is None


def test_a_cancelled_plan_waiting_for_confirmation_is_not_expired_later(madre, client) -> None:
    plan_id, _ = waiting_for_confirmation(client)
    ok_json(cancel(client, plan_id))
    assert madre.tick(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)) == []
    assert "confirmation_expired" not in audit_actions(madre, plan_id)
    assert madre.get_plan(plan_id).reason == "cancelled"


def test_after_a_cancel_the_report_of_the_job_the_plan_waited_for_is_a_duplicate(
        madre, client) -> None:
    plan_id, job = waiting_for_job(client)
    ok_json(cancel(client, plan_id))
    report = ok_json(client.post("/madre/callback/spawn",
                                 json={"daughter_task_id": job, "status": "ok",
                                       "result": {"exit_code": 0}}))
    assert report["status"] == "duplicate"
    assert report["plan_status"] == "ERROR"
    plan = madre.get_plan(plan_id)
    assert plan.status is Status.ERROR and plan.reason == "cancelled"
    assert audit_actions(madre, plan_id)[-2:] == ["plan_cancelled", "job_report_ignored"]


def test_the_spawners_own_report_after_a_cancel_is_a_duplicate_too(madre, client) -> None:
    plan_id, job = waiting_for_job(client)
    ok_json(cancel(client, plan_id))
    report = ok_json(client.post(f"/madre/daughter/{job}/fail", json={"exit_code": 9}))
    assert report["status"] == "duplicate"
    assert madre.get_plan(plan_id).reason == "cancelled"


# --------------------------------------------------------------------------- the answer, the audit


def test_the_answer_is_the_cancel_response_with_the_plans_final_state(client) -> None:
    plan_id, _ = waiting_for_confirmation(client)
    answer = ok_json(cancel(client, plan_id, json={"reason": "not today"}))
    assert answer == {"status": "cancelled", "plan_id": plan_id, "plan_status": "ERROR",
                      "reason": "cancelled: not today"}
    CancelResponse.model_validate(answer)


def test_a_cancel_is_audited_with_the_principal_as_actor_and_the_bodys_by_as_a_note(
        madre, client) -> None:
    plan_id, _ = waiting_for_confirmation(client)
    ok_json(cancel(client, plan_id, json={"by": "ops-alice", "reason": "duplicate"},
                   headers={"X-VX11-Actor": "not-me"}))
    [row] = cancellations(madre, plan_id)
    assert row["actor"] == "vx11"
    assert json.loads(row["detail_json"]) == {"claimed_by": "ops-alice"}
    assert row["reason"] == "cancelled: duplicate"
    assert row["plan_status"] == "ERROR"


def test_whom_the_caller_acts_for_may_come_in_the_x_vx11_actor_header_as_a_note(
        madre, client) -> None:
    plan_id, _ = waiting_for_confirmation(client)
    ok_json(cancel(client, plan_id, headers={"X-VX11-Actor": "ops-bob"}))
    [row] = cancellations(madre, plan_id)
    assert row["actor"] == "vx11"
    assert json.loads(row["detail_json"]) == {"claimed_by": "ops-bob"}


def test_a_cancel_that_names_nobody_is_audited_as_the_principal_alone(madre, client) -> None:
    plan_id, _ = waiting_for_confirmation(client)
    ok_json(cancel(client, plan_id))
    [row] = cancellations(madre, plan_id)
    assert row["actor"] == "vx11" and row["detail_json"] is None


def test_a_cancel_closes_the_plans_intent_in_error(madre, client) -> None:
    plan_id, _ = waiting_for_confirmation(client)
    ok_json(cancel(client, plan_id, json={"reason": "no"}))
    row = intent_row(madre, madre.get_plan(plan_id).intent.intent_id)
    assert row["result_status"] == "error"
    assert row["notes"] == "cancelled: no"


# --------------------------------------------------------------------------- refusals


def test_cancelling_a_done_plan_is_409_not_cancellable_and_changes_nothing(
        madre, client) -> None:
    plan_id = chat(client, "mix these 3 stems")["plan_id"]
    before = audit_actions(madre, plan_id)
    assert_envelope(cancel(client, plan_id), 409, "not_cancellable")
    assert madre.get_plan(plan_id).status is Status.DONE
    assert audit_actions(madre, plan_id) == before


def test_cancelling_a_plan_twice_is_409_not_cancellable_the_second_time(madre, client) -> None:
    plan_id, _ = waiting_for_confirmation(client)
    ok_json(cancel(client, plan_id, json={"by": "first"}))
    assert_envelope(cancel(client, plan_id, json={"by": "second"}), 409, "not_cancellable")
    assert [json.loads(r["detail_json"])["claimed_by"]
            for r in cancellations(madre, plan_id)] == ["first"]


def test_cancelling_an_unknown_plan_is_404(client) -> None:
    assert_envelope(cancel(client, "no-such-plan"), 404, "not_found")


@pytest.mark.parametrize("body", [{"reason": "x" * 501}, {"by": "y" * 65}, {"reason": 3},
                                  ["not", "an", "object"]])
def test_a_cancel_body_that_does_not_fit_is_422_and_cancels_nothing(madre, client, body) -> None:
    plan_id, _ = waiting_for_confirmation(client)
    assert_envelope(cancel(client, plan_id, json=body), 422, "validation_error")
    assert madre.get_plan(plan_id).status is Status.WAITING


def test_a_cancel_needs_the_token(madre, client) -> None:
    plan_id, _ = waiting_for_confirmation(client)
    resp = client.post(f"/madre/plans/{plan_id}/cancel", headers={"X-VX11-Token": ""})
    assert resp.status_code in (401, 403)
    assert madre.get_plan(plan_id).status is Status.WAITING

"""A plan's CALL steps go through the module's client: the base URL and route come from the
settings, every attempt carries the token and the step id as Idempotency-Key, failures are
retried 1 + MADRE_STEP_RETRIES times at most (4xx never), and `get_plan` shows, per step, how
many attempts it took, the last status code, and a readable reason.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import pytest
from helpers import TOKEN, audit_actions, free_port, make_settings, plan_actors_left

from madre import Madre, Settings
from madre.contracts.intake import ControlRequest
from madre.contracts.plans import PlanDetail
from madre.model import Status, Step, StepType
from madre.standins import CALL_PATHS, StandinCluster

RETRIES = 2
BOUND = 15.0  # seconds: a generous bound for a plan that should end in well under one


@pytest.fixture
def settings(database_url: str, standins: StandinCluster) -> Settings:
    return make_settings(database_url, standins, step_retries=RETRIES, step_timeout_seconds=0.5,
                         retry_backoff_seconds=0.01, health_interval_seconds=3600.0)


def run_shub_status(madre: Madre) -> PlanDetail:
    """Control shub status (LOW: it runs at once), waited for until the plan ends."""
    answer = madre.control(ControlRequest(target="shub", action="status"))
    assert answer.plan_id is not None
    plan = madre.wait_for_plan(answer.plan_id, BOUND, final=True)
    assert plan is not None, "the plan did not end in time"
    return madre.get_plan(answer.plan_id)


def shub_step(detail: PlanDetail) -> Step:
    [step] = [s for s in detail.steps if s.type == StepType.CALL_SHUB]
    return step




def test_a_step_goes_to_the_base_url_and_route_the_settings_give(start_madre, standins):
    # Shub's calls, configured to go to the Hermes stand-in's address and route.
    runtime = start_madre(shub_url=standins.urls["hermes"], shub_route=CALL_PATHS["hermes"],
                          health_interval_seconds=3600.0)

    detail = run_shub_status(runtime)

    assert detail.status is Status.DONE
    [arrival] = standins.recorder.calls("hermes")
    assert arrival.path == CALL_PATHS["hermes"]
    assert arrival.idempotency_key == shub_step(detail).step_id
    assert arrival.token == TOKEN
    assert standins.recorder.calls("shub") == []


def test_a_step_that_succeeds_after_two_500s_shows_three_attempts_and_status_200(madre,
                                                                                  standins):
    standins.behaviours["shub"].fail_times(2)

    detail = run_shub_status(madre)

    assert detail.status is Status.DONE
    step = shub_step(detail)
    assert step.status is Status.DONE
    assert step.attempts == 3
    assert step.status_code == 200
    assert standins.recorder.idempotency_counts("shub") == {step.step_id: 3}


def test_a_step_answering_500_is_tried_one_plus_step_retries_times_with_the_same_key(madre,
                                                                                     standins):
    standins.behaviours["shub"].mode = "fail"

    detail = run_shub_status(madre)

    step = shub_step(detail)
    assert len(standins.recorder.calls("shub")) == 1 + RETRIES
    assert standins.recorder.idempotency_counts("shub") == {step.step_id: 1 + RETRIES}
    assert {a.token for a in standins.recorder.calls("shub")} == {TOKEN}


def test_a_failed_step_shows_its_attempts_status_code_and_a_readable_reason(madre, standins):
    standins.behaviours["shub"].mode = "fail"

    detail = run_shub_status(madre)

    assert detail.status is Status.ERROR
    step = shub_step(detail)
    assert step.status is Status.ERROR
    assert step.attempts == 1 + RETRIES
    assert step.status_code == 500
    assert step.error == f"shub: answered HTTP 500 (after {1 + RETRIES} attempts)"
    assert detail.reason == f"step 0 (CALL_SHUB) failed: {step.error}"
    assert "Traceback" not in detail.reason and "requests." not in detail.reason


def test_a_step_refused_with_a_4xx_is_not_retried(madre, standins):
    standins.behaviours["shub"].mode = "unauthorized"

    detail = run_shub_status(madre)

    step = shub_step(detail)
    assert len(standins.recorder.calls("shub")) == 1
    assert step.attempts == 1
    assert step.status_code == 401
    assert step.error == "shub: refused the call with HTTP 401 (auth_required)"
    assert detail.status is Status.ERROR


def test_a_step_whose_module_is_down_shows_the_refusal_and_no_status_code(start_madre):
    runtime = start_madre(shub_url=f"http://127.0.0.1:{free_port()}", step_retries=RETRIES,
                          retry_backoff_seconds=0.01, health_interval_seconds=3600.0)

    detail = run_shub_status(runtime)

    step = shub_step(detail)
    assert detail.status is Status.ERROR
    assert step.attempts == 1 + RETRIES
    assert step.status_code is None
    assert step.error == (f"shub: connection refused (is the module running?) "
                          f"(after {1 + RETRIES} attempts)")


def test_a_step_that_times_out_says_so_and_counts_its_attempts(madre, standins):
    standins.behaviours["shub"].mode = "hang"

    detail = run_shub_status(madre)

    step = shub_step(detail)
    assert step.attempts == 1 + RETRIES
    assert step.status_code is None
    assert step.error == (f"shub: no answer before the read timeout "
                          f"(after {1 + RETRIES} attempts)")


def test_a_failing_step_is_answered_by_the_plan_not_by_a_crashed_actor(madre, standins):
    standins.behaviours["shub"].mode = "close"

    detail = run_shub_status(madre)

    assert detail.status is Status.ERROR
    assert "plan_actor_restarted" not in audit_actions(madre, detail.plan_id)
    assert plan_actors_left(madre) == 0

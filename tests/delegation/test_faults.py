"""Every fault of a module is answered: whether Shub is down, too slow, answers 500 or HTML or
garbage, or drops the connection mid-answer, a plan that calls it ends in ERROR with a reason
naming Shub, within the time its timeouts and retries allow, and no exception escapes a Plan
actor (no restart is audited, and no Plan actor is left alive).

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from helpers import audit_actions, free_port, plan_actors_left

from madre import Madre
from madre.contracts.intake import ControlRequest
from madre.model import Risk, Status, StepType
from madre.standins import StandinCluster

RETRIES = 2
STEP_TIMEOUT = 0.3
CONNECT_TIMEOUT = 0.5
BACKOFF = 0.01
BOUND = 15.0  # seconds: how long the test waits at most; the plan must end far sooner
# The longest a failing call may take: every attempt timing out, plus every backoff.
WORST = (1 + RETRIES) * (CONNECT_TIMEOUT + STEP_TIMEOUT) + sum(
    BACKOFF * 2 ** n for n in range(RETRIES))

FAULTS: dict[str, Callable[[StandinCluster], dict[str, str]]] = {}


def fault(name: str):  # noqa: ANN201
    def register(fn: Callable[[StandinCluster], dict[str, str]]):  # noqa: ANN202
        FAULTS[name] = fn
        return fn
    return register


@fault("down")
def _down(standins: StandinCluster) -> dict[str, str]:
    return {"shub_url": f"http://127.0.0.1:{free_port()}"}


@fault("slow")
def _slow(standins: StandinCluster) -> dict[str, str]:
    standins.behaviours["shub"].set("slow", delay=STEP_TIMEOUT * 6)
    return {}


@fault("500")
def _fails(standins: StandinCluster) -> dict[str, str]:
    standins.behaviours["shub"].mode = "fail"
    return {}


@fault("html")
def _html(standins: StandinCluster) -> dict[str, str]:
    standins.behaviours["shub"].mode = "html"
    return {}


@fault("garbage")
def _garbage(standins: StandinCluster) -> dict[str, str]:
    standins.behaviours["shub"].mode = "garbage"
    return {}


@fault("close")
def _close(standins: StandinCluster) -> dict[str, str]:
    standins.behaviours["shub"].mode = "close"
    return {}


REASONS = {
    "down": "connection refused",
    "slow": "no answer before the read timeout",
    "500": "answered HTTP 500",
    "html": "answered text/html, not JSON",
    "garbage": "answered application/json, not JSON",
    "close": "the answer was cut off mid-body",
}


@pytest.fixture(params=sorted(FAULTS))
def faulty(request: pytest.FixtureRequest, start_madre: Callable[..., Madre],
           standins: StandinCluster) -> tuple[str, Madre]:
    """(fault name, a Madre whose Shub has that fault)."""
    overrides = FAULTS[request.param](standins)
    runtime = start_madre(step_retries=RETRIES, step_timeout_seconds=STEP_TIMEOUT,
                          connect_timeout_seconds=CONNECT_TIMEOUT, retry_backoff_seconds=BACKOFF,
                          health_interval_seconds=3600.0, **overrides)
    return request.param, runtime




def test_a_faulty_shub_ends_the_plan_in_error_naming_shub_within_its_timeouts(faulty) -> None:
    name, madre = faulty
    started = time.monotonic()
    answer = madre.control(ControlRequest(target="shub", action="status"))
    assert answer.risk is Risk.LOW

    plan = madre.wait_for_plan(answer.plan_id, BOUND, final=True)
    took = time.monotonic() - started

    assert plan is not None, f"the plan did not end within {BOUND} s"
    assert plan.status is Status.ERROR
    assert plan.reason.startswith("step 0 (CALL_SHUB) failed: shub: ")
    assert REASONS[name] in plan.reason
    assert took < WORST + 1.0


def test_a_faulty_shub_crashes_no_plan_actor_and_leaves_none_behind(faulty) -> None:
    _, madre = faulty
    answer = madre.control(ControlRequest(target="shub", action="status"))

    plan = madre.wait_for_plan(answer.plan_id, BOUND, final=True)

    assert plan is not None and plan.status is Status.ERROR
    actions = audit_actions(madre, answer.plan_id)
    assert "plan_actor_restarted" not in actions
    assert "supervisor_gave_up" not in actions
    assert actions[-2:] == ["step_failed:CALL_SHUB", "plan_error"]
    assert plan_actors_left(madre) == 0


def test_a_faulty_shub_leaves_the_step_failed_and_the_rest_of_the_plan_unrun(faulty) -> None:
    _, madre = faulty
    answer = madre.control(ControlRequest(target="shub", action="status"))
    madre.wait_for_plan(answer.plan_id, BOUND, final=True)

    shub, rest = madre.get_plan(answer.plan_id).steps

    assert (shub.type, shub.status) == (StepType.CALL_SHUB, Status.ERROR)
    assert shub.error and shub.error.startswith("shub: ")
    assert rest.status is Status.PENDING

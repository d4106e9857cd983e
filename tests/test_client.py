"""`madre.client.MadreClient`, the typed Python client, against a live server: every method
answers the contracts' pydantic model; refusals, unreachable servers and answers that are
not Madre's come out as ClientError with the server's code and the CLI's exit code.
"""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import TOKEN, free_port
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from madre.client import REFUSED, UNREACHABLE, USAGE, ClientError, MadreClient
from madre.contracts.commands import CancelResponse, ConfirmResponse
from madre.contracts.events import Event
from madre.contracts.health import HealthResponse
from madre.contracts.intake import (
    ChatResponse,
    ControlResponse,
    ControlStatus,
    IntentResponse,
)
from madre.contracts.plans import PlanDetail, PlanList, PlanSummary
from madre.model import Risk, Status
from madre.standins import LoopbackServer


@pytest.fixture
def client(live_url: str):  # type: ignore[no-untyped-def]  # noqa: ANN201
    with MadreClient(live_url, token=TOKEN, timeout=30) as madre:
        yield madre


def test_chat_answers_a_chat_response_with_typed_fields(client) -> None:
    answer = client.chat("mix these 3 stems", session_id="sess-typed")

    assert isinstance(answer, ChatResponse)
    assert answer.status is Status.DONE and answer.risk is Risk.LOW
    assert answer.session_id == "sess-typed"
    assert [a.step for a in answer.actions][:2] == ["CALL_SWITCH", "CALL_SHUB"]


def test_a_high_control_is_confirmed_and_its_plan_read_back_typed(client) -> None:
    held = client.control("shub", "delete")
    assert isinstance(held, ControlResponse)
    assert held.status is ControlStatus.PENDING_CONFIRMATION and held.confirm_token
    assert isinstance(held.expires_at, dt.datetime)

    confirmed = client.confirm(held.plan_id, held.confirm_token)
    assert isinstance(confirmed, ConfirmResponse) and confirmed.plan_status is Status.DONE

    plan = client.get_plan(held.plan_id)
    assert isinstance(plan, PlanDetail)
    assert plan.confirmation.required and plan.confirmation.confirmed_at is not None
    assert "plan_confirmed" in [h.action for h in plan.history]


def test_plans_are_listed_in_pages_and_iterated_to_the_last(client) -> None:
    ids = [client.intent(text="mix these 3 stems").plan_id for _ in range(3)]

    page = client.list_plans(limit=2)
    assert isinstance(page, PlanList) and len(page.plans) == 2 and page.next_cursor
    every = list(client.iter_plans(limit=2))
    assert all(isinstance(p, PlanSummary) for p in every)
    assert [p.plan_id for p in every] == list(reversed(ids))


def test_intent_and_cancel_answer_their_models(client) -> None:
    submitted = client.intent(action="delete", target="hermes", source="hormiguero")
    assert isinstance(submitted, IntentResponse) and submitted.requires_confirmation

    cancelled = client.cancel(submitted.plan_id, reason="not today", by="ops")
    assert isinstance(cancelled, CancelResponse)
    assert cancelled.plan_status is Status.ERROR and cancelled.reason == "cancelled: not today"


def test_health_answers_a_health_response(client) -> None:
    health = client.health()
    assert isinstance(health, HealthResponse) and health.module == "madre"
    assert set(health.deps) == {"switch", "hermes", "hormiguero", "manifestator", "shub",
                                "spawner"}


def test_events_are_read_as_audit_events(client) -> None:
    plan_id = client.chat("mix these 3 stems").plan_id
    with client.events(plan_id=plan_id, last_event_id=0, read_timeout=30) as stream:
        first = next(iter(stream))
    event = first.record()
    assert isinstance(event, Event) and event.plan_id == plan_id
    assert event.action == first.event


def test_a_refusal_raises_client_error_with_the_servers_code(client, live_url) -> None:
    with pytest.raises(ClientError) as missing:
        client.get_plan("no-such-plan")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert missing.value.exit_code == REFUSED

    with MadreClient(live_url, token="wrong") as stranger, pytest.raises(ClientError) as refused:
        stranger.list_plans()
    assert refused.value.code == "forbidden" and refused.value.status == 403


def test_no_server_and_no_url_are_told_apart() -> None:
    with MadreClient(f"http://127.0.0.1:{free_port()}", timeout=2) as nobody:
        with pytest.raises(ClientError) as unreachable:
            nobody.health()
    assert unreachable.value.exit_code == UNREACHABLE
    with MadreClient("not a url") as nowhere, pytest.raises(ClientError) as usage:
        nowhere.health()
    assert usage.value.exit_code == USAGE


def test_an_answer_that_is_not_the_contract_raises_client_error_not_a_validation_error() -> None:
    async def not_madre(request):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        return JSONResponse({"status": "fine", "hello": "world"})

    with LoopbackServer(Starlette(routes=[Route("/health", not_madre)])) as other, \
            MadreClient(other.url) as client, pytest.raises(ClientError) as caught:
        client.health()
    assert "not a HealthResponse" in caught.value.message
    assert caught.value.exit_code == REFUSED

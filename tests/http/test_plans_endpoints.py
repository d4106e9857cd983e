"""The HTTP contract of the plan endpoints: GET /madre/plans (order, filters, limit, cursor),
GET /madre/plans/{id} (the whole plan, never its token), and POST /madre/plans/{id}/confirm
(body or query token; 403, 404, 409, 410)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import TOKEN, assert_envelope, control, detail, ok_json, settled
from starlette.testclient import TestClient

from madre import Madre, create_app
from madre.rules.tokens import hash_token
from madre.standins import StandinCluster

DETAIL_KEYS = {
    "plan_id", "session_id", "status", "reason", "wait_reason", "created_at", "updated_at",
    "intent", "steps", "confirmation", "history", "submitted_by", "plan_digest", "approvals",
    "approvals_needed", "console_url",
}
STEP_KEYS = {"type", "status", "payload", "result", "error", "attempts", "started_at",
             "finished_at"}
SUMMARY_KEYS = {"plan_id", "intent_id", "session_id", "source", "status", "mode", "risk",
                "reason", "steps", "created_at", "updated_at", "expires_at"}


def low_plan(client: TestClient, **fields: Any) -> str:
    """A LOW plan, accepted and started at once."""
    return str(control(client, "hermes", "status", **fields)["plan_id"])


def waiting_plan(client: TestClient) -> tuple[str, str]:
    """A HIGH plan waiting for its confirmation: (plan_id, confirm_token)."""
    answer = control(client, "shub", "delete", params={})
    assert answer["status"] == "pending_confirmation"
    return answer["plan_id"], answer["confirm_token"]


def listed(client: TestClient, **query: Any) -> dict[str, Any]:
    return ok_json(client.get("/madre/plans", params=query))


def ids(page: dict[str, Any]) -> list[str]:
    return [p["plan_id"] for p in page["plans"]]


def confirm(client: TestClient, plan_id: str, token: str) -> Any:
    return client.post(f"/madre/plans/{plan_id}/confirm", json={"confirm_token": token})


# --------------------------------------------------------------------------- GET /madre/plans


def test_plans_are_listed_newest_first(client: TestClient) -> None:
    made = [low_plan(client) for _ in range(3)]
    assert ids(listed(client)) == made[::-1]


def test_a_plan_summary_names_its_ids_state_and_step_count(client: TestClient) -> None:
    plan_id = low_plan(client, session_id="sess-summary")
    (summary,) = listed(client)["plans"]
    assert set(summary) == SUMMARY_KEYS
    assert summary["plan_id"] == plan_id
    assert summary["session_id"] == "sess-summary"
    assert summary["risk"] == "LOW"
    assert summary["steps"] >= 1


def test_plans_can_be_filtered_by_status(madre: Madre, client: TestClient) -> None:
    done = low_plan(client)
    assert settled(madre, done).status == "DONE"
    waiting, _ = waiting_plan(client)
    assert ids(listed(client, status="WAITING")) == [waiting]
    assert ids(listed(client, status="DONE")) == [done]


def test_the_status_filter_ignores_case(client: TestClient) -> None:
    waiting, _ = waiting_plan(client)
    assert ids(listed(client, status="waiting")) == [waiting]


def test_plans_can_be_filtered_by_session_id(client: TestClient) -> None:
    mine = [low_plan(client, session_id="sess-a") for _ in range(2)]
    low_plan(client, session_id="sess-b")
    assert ids(listed(client, session_id="sess-a")) == mine[::-1]


def test_the_list_is_empty_with_no_next_cursor_when_nothing_matches(client: TestClient) -> None:
    low_plan(client)
    assert listed(client, session_id="nobody") == {"plans": [], "next_cursor": None}


def test_limit_caps_the_page_and_a_next_cursor_points_at_the_rest(client: TestClient) -> None:
    made = [low_plan(client) for _ in range(3)]
    first = listed(client, limit=2)
    assert ids(first) == made[:0:-1]
    assert first["next_cursor"]
    rest = listed(client, limit=2, cursor=first["next_cursor"])
    assert ids(rest) == [made[0]]
    assert rest["next_cursor"] is None


def test_cursor_paging_returns_every_plan_exactly_once(client: TestClient) -> None:
    made = [low_plan(client) for _ in range(7)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):  # 3 pages expected; the bound stops a cursor that never ends
        page = listed(client, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]


@pytest.mark.parametrize("limit", ["0", "201", "abc", "-1", "1.5", "99999999999999999999"])
def test_a_limit_outside_1_to_200_is_refused_with_422(client: TestClient, limit: str) -> None:
    body = assert_envelope(client.get("/madre/plans", params={"limit": limit}), 422,
                           "validation_error")
    assert body["errors"][0]["loc"] == ["query", "limit"]


@pytest.mark.parametrize("limit", ["1", "200"])
def test_the_limit_bounds_1_and_200_are_accepted(client: TestClient, limit: str) -> None:
    assert client.get("/madre/plans", params={"limit": limit}).status_code == 200


@pytest.mark.parametrize("cursor", ["zzz", "not a cursor", "dDow", "dDotNQ", "%%%"])
def test_a_cursor_this_server_did_not_give_is_refused_with_400(client: TestClient,
                                                               cursor: str) -> None:
    assert_envelope(client.get("/madre/plans", params={"cursor": cursor}), 400, "bad_request")


def test_an_unknown_status_filter_is_refused_with_422(client: TestClient) -> None:
    body = assert_envelope(client.get("/madre/plans", params={"status": "FINISHED"}), 422,
                           "validation_error")
    assert body["errors"][0]["loc"] == ["query", "status"]


# --------------------------------------------------------------------------- GET /madre/plans/{id}


def test_a_plan_detail_has_intent_steps_confirmation_and_history(madre: Madre,
                                                                 client: TestClient) -> None:
    plan_id = low_plan(client)
    settled(madre, plan_id)
    plan = detail(client, plan_id)
    assert set(plan) == DETAIL_KEYS
    assert plan["plan_id"] == plan_id and plan["status"] == "DONE"
    assert {"dsl", "risk", "mode", "provider"} <= set(plan["intent"])
    assert plan["intent"]["dsl"]["action"] == "status"
    assert {"required", "expires_at", "confirmed_at"} <= set(plan["confirmation"])
    assert plan["confirmation"]["required"] is False
    assert isinstance(plan["history"], list) and plan["history"]
    assert "plan_created" in [entry["action"] for entry in plan["history"]]


def test_each_step_reports_type_status_payload_result_error_attempts_and_times(
    madre: Madre, client: TestClient
) -> None:
    plan_id = low_plan(client)
    settled(madre, plan_id)
    steps = detail(client, plan_id)["steps"]
    assert [s["type"] for s in steps] == ["CALL_HERMES", "NOOP"]
    for step in steps:
        assert STEP_KEYS <= set(step)
        assert step["status"] == "DONE" and step["error"] is None
        assert isinstance(step["payload"], dict) and isinstance(step["result"], dict)
        assert step["attempts"] >= 1
        assert step["started_at"] and step["finished_at"]


def test_a_waiting_plan_detail_shows_a_required_confirmation_and_its_expiry(
    client: TestClient,
) -> None:
    plan_id, _ = waiting_plan(client)
    plan = detail(client, plan_id)
    assert plan["status"] == "WAITING" and plan["wait_reason"] == "confirmation"
    assert plan["confirmation"]["required"] is True
    assert plan["confirmation"]["expires_at"]
    assert plan["confirmation"]["confirmed_at"] is None


def test_a_plan_detail_never_shows_the_confirm_token_or_its_hash(madre: Madre,
                                                                 client: TestClient) -> None:
    plan_id, token = waiting_plan(client)
    before = client.get(f"/madre/plans/{plan_id}").text
    assert confirm(client, plan_id, token).status_code == 200
    settled(madre, plan_id)
    after = client.get(f"/madre/plans/{plan_id}").text
    for body in (before, after):
        assert token not in body
        assert hash_token(token) not in body
        assert "confirm_token" not in body


def test_a_confirmed_plan_detail_says_when_it_was_confirmed(madre: Madre,
                                                            client: TestClient) -> None:
    plan_id, token = waiting_plan(client)
    confirm(client, plan_id, token)
    settled(madre, plan_id)
    confirmation = detail(client, plan_id)["confirmation"]
    assert confirmation["required"] is True and confirmation["confirmed_at"]


def test_an_unknown_plan_is_404(client: TestClient) -> None:
    assert_envelope(client.get(f"/madre/plans/{uuid.uuid4()}"), 404, "not_found")


# --------------------------------------------------------------------------- POST .../confirm


def test_confirming_with_the_token_in_the_body_runs_the_plan_to_done(madre: Madre,
                                                                     client: TestClient) -> None:
    plan_id, token = waiting_plan(client)
    resp = confirm(client, plan_id, token)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["status"] == "confirmed" and answer["plan_id"] == plan_id
    assert answer["plan_status"] in ("RUNNING", "DONE")
    settled(madre, plan_id)
    assert detail(client, plan_id)["status"] == "DONE"


def test_a_confirmed_plan_really_calls_the_module(madre: Madre, client: TestClient,
                                                  standins: StandinCluster) -> None:
    plan_id, token = waiting_plan(client)
    assert standins.recorder.calls("shub") == []
    confirm(client, plan_id, token)
    settled(madre, plan_id)
    (call,) = standins.recorder.calls("shub")
    assert call.body["action"] == "delete"


def test_confirming_with_the_token_in_the_query_and_no_body_works_for_old_clients(
    madre: Madre, client: TestClient
) -> None:
    plan_id, token = waiting_plan(client)
    resp = client.post(f"/madre/plans/{plan_id}/confirm", params={"confirm_token": token})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "confirmed"
    settled(madre, plan_id)
    assert detail(client, plan_id)["status"] == "DONE"


def test_control_with_the_confirm_token_confirms_the_waiting_plan(madre: Madre,
                                                                  client: TestClient) -> None:
    plan_id, token = waiting_plan(client)
    answer = control(client, "shub", "delete", confirm_token=token, plan_id=plan_id)
    assert answer["status"] == "accepted" and answer["plan_id"] == plan_id
    settled(madre, plan_id)
    assert detail(client, plan_id)["status"] == "DONE"


def test_a_wrong_token_is_refused_with_403_invalid_token_and_the_plan_keeps_waiting(
    client: TestClient,
) -> None:
    plan_id, token = waiting_plan(client)
    assert_envelope(confirm(client, plan_id, token[::-1]), 403, "invalid_token")
    assert detail(client, plan_id)["status"] == "WAITING"


def test_a_token_of_another_plan_is_refused_with_403_invalid_token(client: TestClient) -> None:
    plan_id, _ = waiting_plan(client)
    _, other_token = waiting_plan(client)
    assert_envelope(confirm(client, plan_id, other_token), 403, "invalid_token")


def test_a_used_token_is_refused_with_409_not_waiting(madre: Madre, client: TestClient) -> None:
    plan_id, token = waiting_plan(client)
    assert confirm(client, plan_id, token).status_code == 200
    assert_envelope(confirm(client, plan_id, token), 409, "not_waiting")


def test_confirming_an_unknown_plan_is_404(client: TestClient) -> None:
    _, token = waiting_plan(client)
    assert_envelope(confirm(client, str(uuid.uuid4()), token), 404, "not_found")


def test_confirming_a_plan_that_never_needed_confirmation_is_409(madre: Madre,
                                                                 client: TestClient) -> None:
    plan_id = low_plan(client)
    assert settled(madre, plan_id).status == "DONE"
    assert_envelope(confirm(client, plan_id, "a" * 32), 409, "not_waiting")


@pytest.fixture
def hasty(start_madre: Callable[..., Madre]) -> Iterator[tuple[Madre, TestClient]]:
    """A Madre whose confirmation tokens expire 1 ms after they are issued: every token has
    expired by the time a confirm request can arrive, with no sleeping."""
    madre = start_madre(confirm_ttl_seconds=0.001)
    with TestClient(create_app(madre), headers={"X-VX11-Token": TOKEN}) as http:
        yield madre, http


def test_an_expired_token_is_refused_with_410_token_expired(
    hasty: tuple[Madre, TestClient],
) -> None:
    _, client = hasty
    plan_id, token = waiting_plan(client)
    assert dt.datetime.fromisoformat(detail(client, plan_id)["confirmation"]["expires_at"]
                                     .replace("Z", "+00:00")) <= dt.datetime.now(dt.UTC)
    assert_envelope(confirm(client, plan_id, token), 410, "token_expired")


def test_an_expired_confirmation_ends_the_plan_in_error(hasty: tuple[Madre, TestClient],
                                                        standins: StandinCluster) -> None:
    _, client = hasty
    plan_id, token = waiting_plan(client)
    confirm(client, plan_id, token)
    plan = detail(client, plan_id)
    assert plan["status"] == "ERROR"
    assert plan["reason"] == "confirmation_expired"
    assert plan["confirmation"]["confirmed_at"] is None
    assert standins.recorder.calls("shub") == []

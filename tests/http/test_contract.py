"""The HTTP contract (DESIGN.md, "HTTP contract"): auth, and the shapes of /health, /madre/chat,
/madre/control and /madre/intent, through the real Starlette app over a running Madre.

Plans (list, detail, confirm) are in test_http_contract_plans.py, /health under hanging
dependencies in test_http_contract_health.py, the README's curl examples in
test_http_contract_readme.py, and refusals of bad input in test_http_bad_input*.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import TOKEN, assert_envelope, chat, control, counts, detail, intent
from starlette.testclient import TestClient

from madre import Madre, create_app
from madre.standins import StandinCluster

MODULES = {"switch", "hermes", "hormiguero", "manifestator", "shub", "spawner"}
CHAT_KEYS = {
    "response", "session_id", "intent_id", "plan_id", "status", "mode", "risk",
    "requires_confirmation", "confirm_token", "expires_at", "plan_digest", "provider",
    "warnings", "targets", "actions",
}
INTENT_KEYS = {
    "intent_id", "plan_id", "task_id", "status", "risk", "requires_confirmation",
    "confirm_token", "expires_at", "plan_digest", "duplicate",
}
A_PLAN = str(uuid.uuid4())

# Every endpoint that needs the token, with a body it would accept (auth is checked first).
GUARDED = [
    ("POST", "/madre/chat", {"message": "hello"}),
    ("POST", "/madre/control", {"target": "hermes", "action": "status"}),
    ("POST", "/madre/intent", {"source": "cli", "text": "hello"}),
    ("GET", "/madre/plans", None),
    ("GET", f"/madre/plans/{A_PLAN}", None),
    ("POST", f"/madre/plans/{A_PLAN}/confirm", {"confirm_token": "x" * 32}),
]
GUARDED_IDS = [f"{method} {path.replace(A_PLAN, '{id}')}" for method, path, _ in GUARDED]


@pytest.fixture
def anonymous(madre: Madre) -> Iterator[TestClient]:
    """A client that sends no X-VX11-Token unless a request adds one."""
    with TestClient(create_app(madre)) as http:
        yield http


def parse_time(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert moment.tzinfo is not None, f"{value} carries no time zone"
    return moment


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(("method", "path", "body"), GUARDED, ids=GUARDED_IDS)
def test_a_missing_token_is_refused_with_401_auth_required(
    anonymous: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    resp = anonymous.request(method, path, json=body)
    assert_envelope(resp, 401, "auth_required")


@pytest.mark.parametrize(("method", "path", "body"), GUARDED, ids=GUARDED_IDS)
def test_a_wrong_token_is_refused_with_403_forbidden(
    anonymous: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    resp = anonymous.request(method, path, json=body, headers={"X-VX11-Token": TOKEN + "x"})
    assert_envelope(resp, 403, "forbidden")


@pytest.mark.parametrize("token", ["", "vx11-local-token", TOKEN.upper(), TOKEN[:-1]])
def test_a_near_miss_token_is_refused_with_403_forbidden(anonymous: TestClient,
                                                         token: str) -> None:
    resp = anonymous.get("/madre/plans", headers={"X-VX11-Token": token})
    assert_envelope(resp, 403, "forbidden")


@pytest.mark.parametrize(("method", "path", "body"), GUARDED, ids=GUARDED_IDS)
def test_a_refused_token_writes_nothing(
    madre: Madre, anonymous: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    before = counts(madre)
    anonymous.request(method, path, json=body)
    anonymous.request(method, path, json=body, headers={"X-VX11-Token": "wrong"})
    assert counts(madre) == before


def test_health_answers_without_a_token(anonymous: TestClient) -> None:
    resp = anonymous.get("/health")
    assert resp.status_code == 200
    assert resp.json()["module"] == "madre"


def test_health_answers_whatever_token_is_sent(anonymous: TestClient) -> None:
    resp = anonymous.get("/health", headers={"X-VX11-Token": "not-the-token"})
    assert resp.status_code == 200


def test_an_unknown_route_without_a_token_is_refused_before_routing(
    anonymous: TestClient,
) -> None:
    # Decided: the token guards the whole namespace, so a caller without it learns nothing,
    # not even which routes exist.
    assert_envelope(anonymous.get("/madre/nothing-here"), 401, "auth_required")


def test_the_right_token_is_let_through(anonymous: TestClient) -> None:
    resp = anonymous.get("/madre/plans", headers={"X-VX11-Token": TOKEN})
    assert resp.status_code == 200


@pytest.mark.parametrize(("method", "path", "body"),
                         [*GUARDED, ("GET", "/metrics", None)], ids=[*GUARDED_IDS, "GET /metrics"])
def test_the_token_as_authorization_bearer_is_let_through_on_every_route(
    anonymous: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    resp = anonymous.request(method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code not in (401, 403), resp.text


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_read_whatever_its_case(anonymous: TestClient, scheme: str) -> None:
    resp = anonymous.get("/madre/plans", headers={"Authorization": f"{scheme} {TOKEN}"})
    assert resp.status_code == 200


def test_a_wrong_bearer_token_is_refused_with_403_forbidden(anonymous: TestClient) -> None:
    resp = anonymous.get("/madre/plans", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert_envelope(resp, 403, "forbidden")


@pytest.mark.parametrize("value", [f"Basic {TOKEN}", "Bearer", "Bearer  ", TOKEN])
def test_an_authorization_that_is_not_a_bearer_token_counts_as_no_token(
        anonymous: TestClient, value: str) -> None:
    resp = anonymous.get("/madre/plans", headers={"Authorization": value})
    assert_envelope(resp, 401, "auth_required")
    assert resp.headers["www-authenticate"] == "Bearer"


def test_when_both_are_sent_the_x_vx11_token_is_the_one_checked(anonymous: TestClient) -> None:
    right_header = {"X-VX11-Token": TOKEN, "Authorization": "Bearer wrong"}
    wrong_header = {"X-VX11-Token": "wrong", "Authorization": f"Bearer {TOKEN}"}
    assert anonymous.get("/madre/plans", headers=right_header).status_code == 200
    assert_envelope(anonymous.get("/madre/plans", headers=wrong_header), 403, "forbidden")


# --------------------------------------------------------------------------- /health


def test_health_names_module_status_version_time_deps_and_db(client: TestClient) -> None:
    body = client.get("/health").json()
    assert set(body) == {"module", "status", "version", "time", "deps", "db", "checks",
                         "instance", "instances"}
    assert body["module"] == "madre"
    assert body["status"] in ("ok", "degraded")
    assert isinstance(body["version"], str) and body["version"]
    parse_time(body["time"])
    assert set(body["deps"]) == MODULES
    assert set(body["deps"].values()) <= {"up", "down", "unknown"}
    assert body["db"] in ("ok", "down")


def test_health_is_ok_with_every_dependency_up_once_probed(madre: Madre,
                                                           client: TestClient) -> None:
    madre.prober.probe_once()
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["deps"] == {m: "up" for m in MODULES}
    assert body["db"] == "ok"


# --------------------------------------------------------------------------- /madre/chat


def test_a_chat_answer_has_every_chat_response_key(client: TestClient) -> None:
    assert set(chat(client, "hello there")) == CHAT_KEYS


def test_a_low_risk_chat_message_runs_to_done_with_its_step_results(client: TestClient) -> None:
    answer = chat(client, "hello there")
    assert answer["status"] == "DONE"
    assert answer["risk"] == "LOW"
    assert answer["requires_confirmation"] is False
    assert answer["confirm_token"] is None and answer["expires_at"] is None
    assert answer["actions"], "a finished plan reports what its steps did"
    for action in answer["actions"]:
        assert set(action) == {"step", "status", "result", "error"}
        assert action["status"] == "DONE"


def test_a_destructive_chat_message_waits_for_confirmation_with_a_token(
    client: TestClient,
) -> None:
    answer = chat(client, "delete all data")
    assert answer["status"] == "WAITING"
    assert answer["risk"] == "HIGH"
    assert answer["requires_confirmation"] is True
    assert isinstance(answer["confirm_token"], str) and len(answer["confirm_token"]) >= 22
    assert parse_time(answer["expires_at"]) > dt.datetime.now(dt.UTC)
    assert answer["plan_id"]


def test_chat_mints_a_session_id_when_none_is_given(client: TestClient) -> None:
    first, second = chat(client, "hello"), chat(client, "hello")
    assert first["session_id"] and second["session_id"]
    assert first["session_id"] != second["session_id"]


def test_chat_echoes_the_session_id_it_was_given(client: TestClient) -> None:
    assert chat(client, "hello", session_id="sess-echo-1")["session_id"] == "sess-echo-1"


def test_mixing_stems_runs_in_audio_engineer_mode_with_switch_shub_and_noop(
    client: TestClient,
) -> None:
    answer = chat(client, "mix these 3 stems")
    assert answer["mode"] == "AUDIO_ENGINEER"
    assert answer["status"] == "DONE"
    assert [a["step"] for a in answer["actions"]] == ["CALL_SWITCH", "CALL_SHUB", "NOOP"]


def test_a_session_remembers_its_mode_and_another_session_does_not_share_it(
    client: TestClient,
) -> None:
    chat(client, "mix these 3 stems", session_id="sess-audio")
    assert chat(client, "hello there", session_id="sess-audio")["mode"] == "AUDIO_ENGINEER"
    assert chat(client, "hello there", session_id="sess-other")["mode"] == "MADRE"


def test_chat_says_which_parser_understood_the_message(client: TestClient) -> None:
    answer = chat(client, "hello there")
    assert answer["provider"] == "switch"
    assert "fallback_parser_used" not in answer["warnings"]


def test_chat_falls_back_to_the_local_parser_and_warns_when_switch_fails(
    client: TestClient, standins: StandinCluster
) -> None:
    standins.behaviours["switch"].mode = "fail"
    answer = chat(client, "mix these 3 stems")
    assert answer["provider"] == "fallback_local"
    assert "fallback_parser_used" in answer["warnings"]


def test_a_dry_run_chat_plans_without_running_or_saving_a_plan(madre: Madre,
                                                               client: TestClient) -> None:
    answer = chat(client, "mix these 3 stems", dry_run=True)
    assert answer["plan_id"] is None
    assert answer["actions"] == []
    assert counts(madre)["tasks"] == 0


# --------------------------------------------------------------------------- /madre/control


def test_a_low_risk_control_action_is_accepted_with_plan_and_action_ids(
    client: TestClient,
) -> None:
    answer = control(client, "hermes", "status")
    assert answer["status"] == "accepted"
    assert answer["risk"] == "LOW"
    assert isinstance(answer["plan_id"], str) and answer["plan_id"]
    assert isinstance(answer["action_id"], int)
    assert answer["confirm_token"] is None


def test_an_accepted_control_action_runs_its_plan(madre: Madre, client: TestClient) -> None:
    plan_id = control(client, "hermes", "status")["plan_id"]
    settled = madre.wait_for_plan(plan_id, 10)
    assert settled is not None and settled.status == "DONE"


def test_deleting_through_shub_is_pending_confirmation_with_a_token(client: TestClient) -> None:
    answer = control(client, "shub", "delete", params={})
    assert answer["status"] == "pending_confirmation"
    assert answer["risk"] == "HIGH"
    assert answer["plan_id"]
    assert isinstance(answer["confirm_token"], str) and len(answer["confirm_token"]) >= 22
    assert parse_time(answer["expires_at"]) > dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(("target", "action"), [("madre", "stop"), ("tentaculo_link", "delete")])
def test_stopping_madre_or_the_gateway_is_denied_without_a_plan(
    madre: Madre, client: TestClient, target: str, action: str
) -> None:
    answer = control(client, target, action)
    assert answer["status"] == "denied"
    assert answer["plan_id"] is None
    assert answer["confirm_token"] is None
    assert answer["reason"]
    assert counts(madre)["tasks"] == 0


def test_a_denied_control_action_is_audited(madre: Madre, client: TestClient) -> None:
    answer = control(client, "madre", "stop")
    audit = madre.repo.m.MadreAction
    with madre.database.connection_context():
        row = audit.get_by_id(answer["action_id"])
    assert row.action == "denied"


# --------------------------------------------------------------------------- /madre/intent


def test_an_intent_answer_has_ids_status_risk_and_confirmation_flag(client: TestClient) -> None:
    answer = intent(client, source="cli", text="hello there")
    assert set(answer) == INTENT_KEYS
    assert answer["intent_id"] and answer["plan_id"]
    assert answer["task_id"] == answer["plan_id"]
    assert answer["status"] in ("PENDING", "RUNNING", "WAITING", "DONE", "ERROR")
    assert answer["risk"] == "LOW"
    assert answer["requires_confirmation"] is False
    assert answer["duplicate"] is False


def test_an_intent_with_text_is_parsed(client: TestClient) -> None:
    answer = intent(client, source="operator", text="mix these 3 stems")
    seen = detail(client, answer["plan_id"])["intent"]
    assert seen["provider"] == "switch"
    assert seen["dsl"]["action"] == "mix"


def test_an_intent_with_action_and_target_skips_parsing(client: TestClient,
                                                        standins: StandinCluster) -> None:
    answer = intent(client, source="hormiguero", action="status", target="hermes")
    seen = detail(client, answer["plan_id"])["intent"]
    assert seen["provider"] == "structured"
    assert (seen["dsl"]["action"], seen["dsl"]["target"]) == ("status", "hermes")
    parses = [r for r in standins.recorder.calls("switch")
              if (r.body or {}).get("metadata", {}).get("purpose") == "intent_parse"]
    assert parses == []


def test_a_risky_intent_requires_confirmation_and_returns_a_token(client: TestClient) -> None:
    answer = intent(client, source="cli", action="delete", target="shub")
    assert answer["status"] == "WAITING"
    assert answer["risk"] == "HIGH"
    assert answer["requires_confirmation"] is True
    assert isinstance(answer["confirm_token"], str) and answer["expires_at"]


def test_the_same_correlation_id_twice_gives_the_same_intent_and_plan_marked_duplicate(
    madre: Madre, client: TestClient
) -> None:
    first = intent(client, source="webhook", text="hello there", correlation_id="corr-42")
    again = intent(client, source="webhook", text="hello there", correlation_id="corr-42")
    assert (again["intent_id"], again["plan_id"]) == (first["intent_id"], first["plan_id"])
    assert first["duplicate"] is False and again["duplicate"] is True
    assert counts(madre)["tasks"] == 1


def test_a_legacy_type_payload_source_intent_is_accepted(client: TestClient) -> None:
    answer = intent(client, type="scan", payload={"path": "/srv/music"}, source="hormiguero")
    seen = detail(client, answer["plan_id"])["intent"]
    assert seen["source"] == "hormiguero"
    assert seen["dsl"]["action"] == "scan"
    assert seen["dsl"]["parameters"] == {"path": "/srv/music"}

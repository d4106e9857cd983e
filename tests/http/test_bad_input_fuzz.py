"""Arbitrary JSON posted to every endpoint that takes a body never produces a 500, and every
4xx is the one envelope. Bodies are arbitrary JSON values, arbitrary objects with arbitrary
keys, and objects built from each endpoint's own field names with arbitrary values (so many
get past "missing field" and into the deeper checks and the runtime)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

FIELDS = {
    "chat": ["message", "session_id", "context", "dry_run"],
    "control": ["target", "action", "params", "confirm_token", "plan_id", "session_id"],
    "intent": ["source", "text", "domain", "action", "target", "params", "session_id",
               "correlation_id", "type", "payload"],
    "confirm": ["confirm_token"],
}
WORDS = ["hermes", "shub", "spawner", "madre", "tentaculo_link", "switch", "status", "delete",
         "stop", "mix these 3 stems", "run a job", "restart", "", " ", "AUDIO_ENGINEER"]

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
           | st.sampled_from(WORDS))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)


words = st.sampled_from(WORDS) | st.text(min_size=1, max_size=30)
objects = st.dictionaries(st.text(max_size=10), json_values, max_size=4)
# A plausible value for each field, so that many bodies pass validation and run.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "message": words, "text": words, "target": words, "action": words, "type": words,
    "domain": words, "source": words, "session_id": words, "correlation_id": words,
    "confirm_token": words, "plan_id": words, "params": objects, "payload": objects,
    "context": objects, "dry_run": st.booleans(),
}


REQUIRED = {"chat": ["message"], "control": ["target", "action"], "intent": ["text"],
            "confirm": ["confirm_token"]}


def bodies(route: str) -> st.SearchStrategy[Any]:
    """Any JSON; any object; the route's fields with any values; the route's fields with
    plausible values (most of which are valid requests that really run)."""
    anything_keyed = st.fixed_dictionaries({}, optional={f: json_values for f in FIELDS[route]})
    required = REQUIRED[route]
    plausible = st.fixed_dictionaries(
        {f: PLAUSIBLE[f] for f in required},
        optional={f: PLAUSIBLE[f] for f in FIELDS[route] if f not in required})
    return (json_values | st.dictionaries(st.text(max_size=12), json_values, max_size=6)
            | anything_keyed | plausible)


def check(resp: Any) -> None:
    event(f"HTTP {resp.status_code}")  # --hypothesis-show-statistics shows the spread
    assert resp.status_code < 500, resp.text
    if 400 <= resp.status_code < 500:
        body = resp.json()
        assert set(body) <= {"error", "detail", "errors"}, body
        assert isinstance(body["error"], str) and body["error"]
        assert isinstance(body["detail"], str) and body["detail"].strip()
        if resp.status_code == 422:
            assert body["errors"]
            for error in body["errors"]:
                assert isinstance(error["loc"], list) and isinstance(error["msg"], str)


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=bodies("chat"))
def test_arbitrary_json_to_chat_never_answers_500(client: TestClient, body: Any) -> None:
    check(client.post("/madre/chat", json=body))


@FUZZ
@given(body=bodies("control"))
def test_arbitrary_json_to_control_never_answers_500(client: TestClient, body: Any) -> None:
    check(client.post("/madre/control", json=body))


@FUZZ
@given(body=bodies("intent"))
def test_arbitrary_json_to_intent_never_answers_500(client: TestClient, body: Any) -> None:
    check(client.post("/madre/intent", json=body))


@pytest.fixture
def waiting_plan_id(client: TestClient) -> str:
    answer = client.post("/madre/control", json={"target": "shub", "action": "delete"}).json()
    return str(answer["plan_id"])


@FUZZ
@given(body=bodies("confirm"), known=st.booleans())
def test_arbitrary_json_to_confirm_never_answers_500(client: TestClient, waiting_plan_id: str,
                                                     body: Any, known: bool) -> None:
    plan_id = waiting_plan_id if known else str(uuid.uuid4())
    check(client.post(f"/madre/plans/{plan_id}/confirm", json=body))


@FUZZ
@given(raw=st.binary(max_size=200), route=st.sampled_from(["/madre/chat", "/madre/control",
                                                          "/madre/intent"]))
def test_arbitrary_bytes_declared_as_json_never_answer_500(client: TestClient, raw: bytes,
                                                           route: str) -> None:
    check(client.post(route, content=raw, headers={"Content-Type": "application/json"}))


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["limit", "cursor", "status", "session_id", "x"]),
                             st.text(max_size=30), max_size=4))
def test_arbitrary_plan_list_queries_never_answer_500(client: TestClient,
                                                      query: dict[str, str]) -> None:
    check(client.get("/madre/plans", params=query))

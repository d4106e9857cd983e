"""Bad input is refused with the one envelope and never a 500, and a refused request writes
nothing: every refusal here is checked against the row counts of the five tables.

The envelope: `{"error": code, "detail": sentence}`, plus `errors: [{loc, msg}, ...]` on a 422.
Arbitrary bodies (hypothesis) are in test_http_bad_input_fuzz.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import assert_envelope, counts
from starlette.testclient import TestClient

from madre import Madre

A_PLAN = str(uuid.uuid4())
BODY_ROUTES = ["/madre/chat", "/madre/control", "/madre/intent", f"/madre/plans/{A_PLAN}/confirm"]
ROUTE_IDS = ["chat", "control", "intent", "confirm"]
JSON = {"Content-Type": "application/json"}
OVER_LIMIT = 300 * 1024  # the default limit is 256 KiB


def assert_refusal(resp: Any, status: int, code: str) -> dict[str, Any]:
    """assert_envelope, and: served as JSON, and a 422 says where the input is wrong."""
    body = assert_envelope(resp, status, code)
    assert resp.headers["content-type"].startswith("application/json")
    if status == 422:
        assert body["errors"], "a 422 says where the input is wrong"
        for error in body["errors"]:
            assert isinstance(error["loc"], list) and isinstance(error["msg"], str)
    return body


@pytest.fixture
def refused(madre: Madre, client: TestClient) -> Iterator[Any]:
    """`refused(status, code, method, path, **request)`: send, check the envelope, and check
    that no table gained or lost a row. Returns the envelope."""

    def send(status: int, code: str, method: str, path: str, **request: Any) -> dict[str, Any]:
        before = counts(madre)
        body = assert_refusal(client.request(method, path, **request), status, code)
        assert counts(madre) == before, "a refused request must write nothing"
        return body

    yield send


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


# --------------------------------------------------------------------------- not JSON, not an object


@pytest.mark.parametrize("payload", [b'{"message": ', b"{'message': 'hi'}", b'{"message":"hi",}',
                                     b"\xff\xfe{}"], ids=["cut", "quotes", "comma", "bytes"])
@pytest.mark.parametrize("path", BODY_ROUTES, ids=ROUTE_IDS)
def test_malformed_json_is_refused_with_400_invalid_json(refused: Any, path: str,
                                                         payload: bytes) -> None:
    refused(400, "invalid_json", "POST", path, content=payload, headers=JSON)


@pytest.mark.parametrize("payload", [b"[]", b'[{"message": "hi"}]', b"5", b"null", b'"hi"',
                                     b"true"], ids=["list", "list-of-object", "number", "null",
                                                    "string", "bool"])
@pytest.mark.parametrize("path", BODY_ROUTES, ids=ROUTE_IDS)
def test_json_that_is_not_an_object_is_refused_with_422(refused: Any, path: str,
                                                        payload: bytes) -> None:
    body = refused(422, "validation_error", "POST", path, content=payload, headers=JSON)
    assert body["errors"][0]["loc"] == ["body"]


@pytest.mark.parametrize("payload", [b"", b"   \n"], ids=["empty", "whitespace"])
def test_an_empty_chat_body_is_refused_with_400_invalid_json(refused: Any,
                                                             payload: bytes) -> None:
    # Decided: an empty body is not JSON at all (400), rather than an object missing fields.
    body = refused(400, "invalid_json", "POST", "/madre/chat", content=payload, headers=JSON)
    assert "empty" in body["detail"]


@pytest.mark.parametrize("payload", [b'{"message": NaN}', b'{"message": "hi", "context": '
                                     b'{"x": Infinity}}', b'{"target": "hermes", "action": "run",'
                                     b' "params": {"x": -Infinity}}'],
                         ids=["nan", "infinity", "minus-infinity"])
def test_nan_and_infinity_are_not_json_and_are_refused_with_400(refused: Any,
                                                                payload: bytes) -> None:
    path = "/madre/control" if b"target" in payload else "/madre/chat"
    refused(400, "invalid_json", "POST", path, content=payload, headers=JSON)


@pytest.mark.parametrize("path,payload,loc", [
    ("/madre/chat", b'{"message": "hi", "context": {"x": 1e999}}', ["context", "x"]),
    ("/madre/control", b'{"target": "hermes", "action": "run", "params": {"x": [-1e999]}}',
     ["params", "x", 0]),
    ("/madre/intent", b'{"text": "hi", "params": {"n": 1E400}}', ["params", "n"]),
], ids=["context", "params-list", "intent"])
def test_a_number_too_large_to_be_finite_is_refused_with_422_naming_its_place(
        refused: Any, path: str, payload: bytes, loc: list[Any]) -> None:
    body = refused(422, "validation_error", "POST", path, content=payload, headers=JSON)
    assert body["errors"][0]["loc"] == loc


@pytest.mark.parametrize("payload", [b'{"message": "hi", "message": "stop madre"}',
                                     b'{"message": "hi", "context": {"a": 1, "a": 2}}'],
                         ids=["top", "nested"])
def test_a_key_given_twice_in_one_object_is_refused_with_400(refused: Any,
                                                             payload: bytes) -> None:
    body = refused(400, "invalid_json", "POST", "/madre/chat", content=payload, headers=JSON)
    assert "twice" in body["detail"]


# --------------------------------------------------------------------------- invalid fields


@pytest.mark.parametrize("message", [None, "", "   \t\n ", "x" * 8001],
                         ids=["missing", "empty", "whitespace", "8001-chars"])
def test_a_chat_message_that_is_missing_empty_blank_or_too_long_is_refused_with_422(
    refused: Any, message: str | None
) -> None:
    payload = {} if message is None else {"message": message}
    body = refused(422, "validation_error", "POST", "/madre/chat", json=payload)
    assert body["errors"][0]["loc"] == ["message"]


def test_a_chat_message_of_exactly_8000_characters_is_accepted(client: TestClient) -> None:
    resp = client.post("/madre/chat", json={"message": "x" * 8000, "dry_run": True})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(("field", "value"), [("message", 5), ("message", ["hi"]),
                                              ("session_id", []), ("session_id", "s" * 129),
                                              ("context", "x"), ("context", [1]),
                                              ("dry_run", "maybe"), ("dry_run", {})])
def test_a_chat_field_of_the_wrong_type_is_refused_with_422_naming_it(
    refused: Any, field: str, value: Any
) -> None:
    payload = {"message": "hello", field: value}
    body = refused(422, "validation_error", "POST", "/madre/chat", json=payload)
    assert body["errors"][0]["loc"][0] == field
    assert field in body["detail"]


@pytest.mark.parametrize("payload", [{}, {"target": "hermes"}, {"action": "status"},
                                     {"target": "", "action": "status"},
                                     {"target": "hermes", "action": "a" * 65},
                                     {"target": "hermes", "action": "status", "params": "x"},
                                     {"target": 7, "action": "status"}],
                         ids=["empty", "no-action", "no-target", "blank-target", "long-action",
                              "params-not-object", "target-not-text"])
def test_an_invalid_control_body_is_refused_with_422(refused: Any,
                                                     payload: dict[str, Any]) -> None:
    refused(422, "validation_error", "POST", "/madre/control", json=payload)


@pytest.mark.parametrize("payload", [{}, {"source": "cli"}, {"text": "   "},
                                     {"text": "x" * 8001}, {"action": "status", "params": []},
                                     {"text": "hi", "source": ""}],
                         ids=["empty", "source-only", "blank-text", "long-text",
                              "params-not-object", "blank-source"])
def test_an_invalid_intent_body_is_refused_with_422(refused: Any,
                                                    payload: dict[str, Any]) -> None:
    refused(422, "validation_error", "POST", "/madre/intent", json=payload)


@pytest.mark.parametrize("payload", [{}, {"confirm_token": ""}, {"confirm_token": 123},
                                     {"confirm_token": "t" * 257}, {"token": "abc"}],
                         ids=["empty", "blank", "number", "too-long", "wrong-name"])
def test_an_invalid_confirm_body_is_refused_with_422(refused: Any,
                                                     payload: dict[str, Any]) -> None:
    body = refused(422, "validation_error", "POST", f"/madre/plans/{A_PLAN}/confirm",
                   json=payload)
    assert body["errors"][0]["loc"] == ["confirm_token"]


# --------------------------------------------------------------------------- text Madre cannot keep


@pytest.mark.parametrize(("path", "payload", "loc"), [
    ("/madre/chat", {"message": "hi\u0000there"}, ["message"]),
    ("/madre/chat", {"message": "hi", "session_id": "a\u0000b"}, ["session_id"]),
    ("/madre/control", {"target": "madre\u0000", "action": "stop"}, ["target"]),
    ("/madre/intent", {"text": "hi", "correlation_id": "\u0000"}, ["correlation_id"]),
    ("/madre/intent", {"action": "scan", "params": {"k\u0000": 1}}, ["params", "[key]"]),
], ids=["message", "session", "target", "correlation", "params-key"])
def test_text_with_a_nul_character_is_refused_with_422(refused: Any, path: str,
                                                       payload: dict[str, Any],
                                                       loc: list[str]) -> None:
    body = refused(422, "validation_error", "POST", path, json=payload)
    assert body["errors"][0]["loc"] == loc


@pytest.mark.parametrize(("path", "raw"), [
    ("/madre/chat", b'{"message": "hi \\ud800"}'),
    ("/madre/chat", b'{"message": "hi", "context": {"\\udc00": 1}}'),
    ("/madre/control", b'{"target": "hermes", "action": "run", "params": {"a": "\\ud83d"}}'),
    ("/madre/intent", b'{"text": "hi", "params": {"a": ["\\udfff"]}}'),
], ids=["message", "context-key", "params-value", "params-list"])
def test_an_unpaired_surrogate_escape_is_refused_with_422(refused: Any, path: str,
                                                          raw: bytes) -> None:
    refused(422, "validation_error", "POST", path, content=raw, headers=JSON)


@pytest.mark.parametrize("correlation_id", ["line\nbreak", "caf\u00e9", "\U0001f3b5", "tab\there"],
                         ids=["newline", "accent", "emoji", "tab"])
def test_a_correlation_id_that_cannot_travel_in_a_header_is_refused_with_422(
    refused: Any, correlation_id: str
) -> None:
    body = refused(422, "validation_error", "POST", "/madre/intent",
                   json={"text": "hello", "correlation_id": correlation_id})
    assert body["errors"][0]["loc"] == ["correlation_id"]


def test_a_printable_ascii_correlation_id_with_spaces_and_punctuation_is_accepted(
    client: TestClient,
) -> None:
    resp = client.post("/madre/intent", json={"text": "hello",
                                              "correlation_id": "order 42/a-b_c.d~e:f"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["intent_id"] == "order 42/a-b_c.d~e:f"


def test_a_body_nested_deeper_than_32_levels_is_refused_with_422(refused: Any) -> None:
    payload = {"target": "hermes", "action": "run", "params": nested(40)}
    refused(422, "validation_error", "POST", "/madre/control", json=payload)


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"message": "x", "context": '
                                 + b'{"a": ' * 5000 + b"1" + b"}" * 5001],
                         ids=["open-brackets", "deep-object"])
def test_a_body_nested_past_the_parser_s_stack_is_refused_with_422(refused: Any,
                                                                   raw: bytes) -> None:
    refused(422, "validation_error", "POST", "/madre/chat", content=raw, headers=JSON)


def test_a_body_nested_a_few_levels_is_accepted(client: TestClient) -> None:
    resp = client.post("/madre/chat", json={"message": "hi", "context": nested(10),
                                            "dry_run": True})
    assert resp.status_code == 200, resp.text


# --------------------------------------------------------------------------- size and media type


@pytest.mark.parametrize("path", BODY_ROUTES, ids=ROUTE_IDS)
def test_a_body_over_the_size_limit_is_refused_with_413(refused: Any, path: str) -> None:
    payload = json.dumps({"message": "x" * OVER_LIMIT}).encode()
    refused(413, "payload_too_large", "POST", path, content=payload, headers=JSON)


def test_a_streamed_body_over_the_size_limit_is_refused_with_413(refused: Any) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as it arrives
        yield b'{"message": "'
        for _ in range(OVER_LIMIT // 4096):
            yield b"x" * 4096
        yield b'"}'

    refused(413, "payload_too_large", "POST", "/madre/chat", content=chunks(), headers=JSON)


def test_a_body_just_under_the_size_limit_is_read_and_judged_on_its_content(
    madre: Madre, refused: Any
) -> None:
    room = madre.settings.max_body_bytes - len(b'{"message": ""}')
    payload = b'{"message": "' + b"x" * room + b'"}'
    body = refused(422, "validation_error", "POST", "/madre/chat", content=payload, headers=JSON)
    assert body["errors"][0]["loc"] == ["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
@pytest.mark.parametrize("path", BODY_ROUTES, ids=ROUTE_IDS)
def test_a_body_that_is_not_declared_json_is_refused_with_415(refused: Any, path: str,
                                                              content_type: str) -> None:
    refused(415, "unsupported_media_type", "POST", path, content=b'{"message": "hi"}',
            headers={"Content-Type": content_type})


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8",
                                          "Application/JSON", "application/merge-patch+json"])
def test_json_media_types_with_parameters_or_suffixes_are_accepted(client: TestClient,
                                                                   content_type: str) -> None:
    resp = client.post("/madre/chat", content=b'{"message": "hi", "dry_run": true}',
                       headers={"Content-Type": content_type})
    assert resp.status_code == 200, resp.text


# --------------------------------------------------------------------------- routes and ids


def test_an_unknown_route_is_404_in_the_envelope(refused: Any) -> None:
    refused(404, "not_found", "GET", "/madre/nothing-here")


@pytest.mark.parametrize(("method", "path"), [("GET", "/madre/chat"), ("PUT", "/madre/control"),
                                              ("POST", "/madre/plans"), ("POST", "/health"),
                                              ("DELETE", f"/madre/plans/{A_PLAN}"),
                                              ("GET", f"/madre/plans/{A_PLAN}/confirm")])
def test_a_wrong_method_is_405_in_the_envelope(refused: Any, method: str, path: str) -> None:
    refused(405, "method_not_allowed", method, path)


@pytest.mark.parametrize("plan_id", [str(uuid.uuid4()), "p" * 500, "%00", "not-a-uuid",
                                     "%F0%9F%8E%B5"], ids=["uuid", "500-chars", "nul", "word",
                                                           "emoji"])
def test_an_unknown_plan_id_is_404(refused: Any, plan_id: str) -> None:
    refused(404, "not_found", "GET", f"/madre/plans/{plan_id}")


@pytest.mark.parametrize("plan_id", [str(uuid.uuid4()), "p" * 500, "%00"],
                         ids=["uuid", "500-chars", "nul"])
def test_confirming_an_unknown_plan_id_is_404_and_writes_nothing(refused: Any,
                                                                 plan_id: str) -> None:
    refused(404, "not_found", "POST", f"/madre/plans/{plan_id}/confirm",
            json={"confirm_token": "t" * 32})


@pytest.mark.parametrize(("query", "status", "code"), [
    ({"limit": "9" * 5000}, 422, "validation_error"),
    ({"limit": "\u0661"}, 422, "validation_error"),  # ARABIC-INDIC DIGIT ONE: not a limit
    ({"session_id": "s" * 129}, 422, "validation_error"),
    ({"session_id": "a\u0000b"}, 422, "validation_error"),
    ({"cursor": "dDo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"}, 400, "bad_request"),  # t:<24 digits>
    ({"cursor": "\u0000"}, 400, "bad_request"),
], ids=["limit-5000-digits", "limit-non-ascii", "long-session", "nul-session", "huge-cursor",
        "nul-cursor"])
def test_a_bad_plan_list_query_is_refused_in_the_envelope(refused: Any, query: dict[str, str],
                                                          status: int, code: str) -> None:
    refused(status, code, "GET", "/madre/plans", params=query)


# --------------------------------------------------------------------------- what is written


def test_a_denied_request_writes_only_its_intent_and_its_audit_row(madre: Madre,
                                                                   client: TestClient) -> None:
    before = counts(madre)
    resp = client.post("/madre/control", json={"target": "tentaculo_link", "action": "delete"})
    assert resp.json()["status"] == "denied"
    after = counts(madre)
    assert after["intents_log"] == before["intents_log"] + 1
    assert after["madre_actions"] == before["madre_actions"] + 1
    assert {t: n for t, n in after.items() if t not in ("intents_log", "madre_actions")} == {
        t: n for t, n in before.items() if t not in ("intents_log", "madre_actions")}


def test_a_refused_confirmation_writes_only_its_audit_row(madre: Madre,
                                                          client: TestClient) -> None:
    answer = client.post("/madre/control", json={"target": "shub", "action": "delete"}).json()
    before = counts(madre)
    resp = client.post(f"/madre/plans/{answer['plan_id']}/confirm",
                       json={"confirm_token": "wrong-" + answer["confirm_token"]})
    assert_refusal(resp, 403, "invalid_token")
    after = counts(madre)
    assert after == {**before, "madre_actions": before["madre_actions"] + 1}

"""Idempotency-Key on chat, control and intent: a retry with the same key and body gets the
first answer (`Idempotent-Replayed: true`) and starts nothing; another body is 422
`idempotency_key_reused`; a retry while the first still runs is 409; keys are per principal.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from helpers import WAIT, as_principal, assert_envelope, counts, ok_json, table_rows
from helpers import write_principals
from starlette.testclient import TestClient

from madre import create_app

REQUESTS = {
    "chat": ("/madre/chat", {"message": "mix these 3 stems"}, {"message": "mix these 4 stems"}),
    "control": ("/madre/control", {"target": "shub", "action": "delete"},
                {"target": "hermes", "action": "delete"}),
    "intent": ("/madre/intent", {"source": "ci", "action": "status", "target": "hermes"},
               {"source": "ci", "action": "status", "target": "shub"}),
}


def send(client: Any, path: str, body: dict[str, Any], key: str, **headers: str) -> Any:
    return client.post(path, json=body, headers={"Idempotency-Key": key, **headers})


@pytest.mark.parametrize("path, body, _", REQUESTS.values(), ids=REQUESTS.keys())
def test_the_same_key_and_body_answer_the_first_answer_and_start_nothing(
        madre, client, path, body, _) -> None:
    first = send(client, path, body, "retry-1")
    plans_after_first = counts(madre)["tasks"]

    again = send(client, path, body, "retry-1")

    assert first.status_code == again.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    expected = {k: v for k, v in first.json().items() if k != "confirm_token"}
    assert {k: v for k, v in again.json().items() if k != "confirm_token"} == expected
    assert counts(madre)["tasks"] == plans_after_first == 1
    assert counts(madre)["intents_log"] == 1


@pytest.mark.parametrize("path, body, other", REQUESTS.values(), ids=REQUESTS.keys())
def test_the_same_key_with_another_body_is_422_idempotency_key_reused(
        madre, client, path, body, other) -> None:
    ok_json(send(client, path, body, "reuse-1"))

    assert_envelope(send(client, path, other, "reuse-1"), 422, "idempotency_key_reused")
    assert counts(madre)["tasks"] == 1


def test_a_replayed_answer_never_shows_the_token_but_gives_the_digest_to_approve(
        madre, client) -> None:
    first = ok_json(send(client, "/madre/control", {"target": "shub", "action": "delete"},
                         "k"))
    again = ok_json(send(client, "/madre/control", {"target": "shub", "action": "delete"},
                         "k"))

    assert first["confirm_token"] and again["confirm_token"] is None
    assert again["plan_digest"] == first["plan_digest"]
    stored = [r["answer_json"] for r in table_rows(madre, "intents_log")]
    assert stored and first["confirm_token"] not in stored[0]
    ok_json(client.post(f"/madre/plans/{again['plan_id']}/approve",
                        json={"plan_digest": again["plan_digest"]}))


def test_a_keyed_confirmation_through_control_is_answered_once(madre, client) -> None:
    pending = ok_json(client.post("/madre/control", json={"target": "shub", "action": "delete"}))
    confirm = {"target": "shub", "action": "delete", "confirm_token": pending["confirm_token"]}

    first = ok_json(send(client, "/madre/control", confirm, "confirm-1"))
    again = send(client, "/madre/control", confirm, "confirm-1")

    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first
    [row] = [r for r in table_rows(madre, "intents_log") if r["result_status"] == "confirmation"]
    assert pending["plan_id"] in row["notes"]


def test_a_request_that_failed_frees_its_key_for_a_real_retry(madre, client) -> None:
    body = {"target": "shub", "action": "delete", "confirm_token": "not-a-token"}
    assert_envelope(send(client, "/madre/control", body, "k2"), 403, "invalid_token")
    again = send(client, "/madre/control", body, "k2")
    assert_envelope(again, 403, "invalid_token")
    assert "Idempotent-Replayed" not in again.headers


@pytest.mark.parametrize("value", [b"", b"x" * 256, "caf\u00e9".encode()])
def test_a_key_that_cannot_be_one_is_422(client, value) -> None:
    resp = client.post("/madre/chat", json={"message": "hi"},
                       headers={"Idempotency-Key": value})
    assert_envelope(resp, 422, "validation_error")


def test_a_retry_while_the_first_still_runs_is_409_request_in_progress(
        madre, client, standins) -> None:
    standins.behaviours["shub"].mode = "hang"
    first: dict[str, Any] = {}
    body = {"message": "mix these 3 stems"}
    worker = threading.Thread(target=lambda: first.update(
        resp=send(client, "/madre/chat", body, "slow-1")))
    worker.start()
    try:
        assert standins.recorder.wait_for_calls("shub", 1, WAIT)
        assert_envelope(send(client, "/madre/chat", body, "slow-1"), 409, "request_in_progress")
    finally:
        standins.release_all()
        worker.join(WAIT)
    assert first["resp"].status_code == 200
    assert send(client, "/madre/chat", body, "slow-1").headers["Idempotent-Replayed"] == "true"


def test_keys_are_per_principal(start_madre, tmp_path) -> None:
    runtime = start_madre(principals_file=write_principals(tmp_path / "p.toml"))
    body = {"target": "shub", "action": "mix"}
    with TestClient(create_app(runtime)) as http:
        ok_json(send(http, "/madre/control", body, "same", **as_principal("alice")))
        other = send(http, "/madre/control", body, "same", **as_principal("dave"))
    assert other.status_code == 200 and "Idempotent-Replayed" not in other.headers
    assert counts(runtime)["tasks"] == 2

"""Signed webhooks in: `POST /madre/webhook/{source}` with messages signed by the
`standardwebhooks` library, as a sender would sign them. A good signature is an intent of
that source, classified like any other; a missing or wrong signature, or a stale timestamp,
is 401 `bad_signature`; an unknown source 404; a repeated `webhook-id` the first answer
with `duplicate: true`, starting nothing.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import (
    WEBHOOK_SECRET,
    as_principal,
    assert_envelope,
    counts,
    ok_json,
    table_rows,
    write_principals,
)
from standardwebhooks import Webhook
from starlette.testclient import TestClient

from madre import Madre, create_app
from madre.model import Status

OTHER_SECRET = "whsec_" + base64.b64encode(b"not the secret of the ci source").decode()


@pytest.fixture
def hooked(start_madre, tmp_path) -> Iterator[tuple[Madre, TestClient]]:
    runtime = start_madre(principals_file=write_principals(tmp_path / "principals.toml"))
    with TestClient(create_app(runtime)) as http:  # no token: webhooks need none
        yield runtime, http


def signed(body: dict[str, Any], *, message_id: str = "msg_1", secret: str = WEBHOOK_SECRET,
           at: dt.datetime | None = None) -> tuple[bytes, dict[str, str]]:
    """`body` as a sender posts it: JSON, and the Standard Webhooks headers."""
    raw = json.dumps(body)
    moment = at or dt.datetime.now(dt.UTC)
    return raw.encode(), {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, moment, raw),
        "content-type": "application/json",
    }


def post(http: TestClient, raw: bytes, headers: dict[str, str], source: str = "ci") -> Any:
    return http.post(f"/madre/webhook/{source}", content=raw, headers=headers)


STATUS = {"action": "status", "target": "hermes"}


def test_a_signed_webhook_is_an_intent_of_its_source(hooked) -> None:
    madre, http = hooked
    answer = ok_json(post(http, *signed({**STATUS, "source": "spoofed"})))

    assert answer["duplicate"] is False and answer["risk"] == "LOW"
    plan = madre.get_plan(answer["plan_id"])
    assert plan.intent.source == "ci" and plan.submitted_by == "webhook:ci"
    [received] = [r for r in table_rows(madre, "madre_actions")
                  if r["action"] == "webhook_received"]
    assert received["actor"] == "webhook:ci" and received["plan_id"] == answer["plan_id"]
    assert json.loads(received["detail_json"]) == {"source": "ci", "webhook_id": "msg_1"}


def test_a_repeated_webhook_id_answers_the_first_answer_and_starts_nothing(hooked) -> None:
    madre, http = hooked
    raw, headers = signed(STATUS, message_id="msg_repeat")
    first = ok_json(post(http, raw, headers))

    again = ok_json(post(http, *signed(STATUS, message_id="msg_repeat")))

    assert again == {**first, "duplicate": True}
    assert counts(madre)["tasks"] == 1
    assert [r["action"] for r in table_rows(madre, "madre_actions")
            if r["action"].startswith("webhook_")] == ["webhook_received", "webhook_duplicate"]


def test_a_risky_webhook_waits_for_an_approver_like_any_intent(hooked) -> None:
    madre, http = hooked
    answer = ok_json(post(http, *signed({"action": "delete", "target": "shub"})))

    assert answer["status"] == "WAITING" and answer["risk"] == "HIGH"
    ok_json(http.post(f"/madre/plans/{answer['plan_id']}/approve",
                      json={"plan_digest": answer["plan_digest"]}, headers=as_principal("bob")))
    assert madre.wait_for_plan(answer["plan_id"], 10, final=True).status is Status.DONE


def tampered(raw: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return raw.replace(b"hermes", b"shub"), headers


def unsigned(raw: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return raw, {k: v for k, v in headers.items() if k != "webhook-signature"}


def garbled(raw: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return raw, {**headers, "webhook-signature": "v1 no comma"}


BAD = {
    "no signature": lambda: unsigned(*signed(STATUS)),
    "a garbled signature": lambda: garbled(*signed(STATUS)),
    "another secret": lambda: signed(STATUS, secret=OTHER_SECRET),
    "a changed body": lambda: tampered(*signed(STATUS)),
    "a stale timestamp": lambda: signed(
        STATUS, at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)),
    "a timestamp from the future": lambda: signed(
        STATUS, at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)),
}


@pytest.mark.parametrize("make", BAD.values(), ids=BAD.keys())
def test_a_badly_signed_webhook_is_401_bad_signature_and_changes_nothing(hooked, make) -> None:
    madre, http = hooked
    before = counts(madre)

    assert_envelope(post(http, *make()), 401, "bad_signature")

    assert counts(madre) == before


def test_a_webhook_signed_four_minutes_ago_is_still_taken(hooked) -> None:
    _, http = hooked
    ok_json(post(http, *signed(STATUS, at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=4))))


def test_an_unknown_source_is_404(hooked) -> None:
    _, http = hooked
    assert_envelope(post(http, *signed(STATUS), source="nobody"), 404, "not_found")


def test_a_signed_body_that_is_no_intent_is_422(hooked) -> None:
    _, http = hooked
    assert_envelope(post(http, *signed({"source": "ci"})), 422, "validation_error")


def test_webhooks_in_are_counted_by_outcome(hooked) -> None:
    madre, http = hooked
    ok_json(post(http, *signed(STATUS, message_id="m1")))
    ok_json(post(http, *signed(STATUS, message_id="m1")))
    post(http, *unsigned(*signed(STATUS)))

    text = madre.metrics.exposition().decode()
    for outcome in ("accepted", "duplicate", "bad_signature"):
        line = f'madre_webhook_deliveries_total{{direction="in",outcome="{outcome}"}} 1.0'
        assert line in text, outcome

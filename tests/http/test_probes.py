"""`GET /livez` and `GET /readyz`, open (no token), for load balancers.

/livez is 200 while the process serves. /readyz is 200 `ready` when the database answers
and Madre takes work, 503 (the error envelope, `not_ready`) while it is
starting, draining, or its database refuses writes; the detail says which, first. /health keeps its own body.
"""

from __future__ import annotations

from typing import Any

from helpers import assert_envelope
from starlette.testclient import TestClient

from madre import Madre, create_app
from madre.delegation.health import DependencyState
from madre.model import utcnow


def probe(madre: Madre, path: str) -> Any:
    with TestClient(create_app(madre)) as anonymous:  # no token
        return anonymous.get(path)


def test_livez_answers_200_without_a_token(madre) -> None:
    resp = probe(madre, "/livez")
    assert resp.status_code == 200 and resp.json() == {"status": "alive"}


def test_readyz_answers_200_ready_without_a_token_once_madre_runs(madre) -> None:
    resp = probe(madre, "/readyz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ready" and body["db"] == "ok"
    assert body["trail"] == "ok" and body["trail_behind"] == 0


def test_readyz_answers_503_draining_while_livez_stays_200(madre) -> None:
    madre.begin_drain()
    resp = probe(madre, "/readyz")
    body = assert_envelope(resp, 503, "not_ready")
    assert body["detail"].startswith("draining:")
    assert probe(madre, "/livez").status_code == 200


def test_readyz_answers_503_starting_before_madre_has_started(settings) -> None:
    body = assert_envelope(probe(Madre(settings), "/readyz"), 503, "not_ready")
    assert body["detail"].startswith("starting:")


def test_readyz_answers_503_db_down_with_the_cause_when_the_last_write_was_refused(
        madre) -> None:
    cause = "the database refused the write (disk full): database or disk is full"
    madre.board.set_db_write(DependencyState("down", utcnow(), cause))
    body = assert_envelope(probe(madre, "/readyz"), 503, "not_ready")
    assert body["detail"] == f"db_down: {cause}"


def test_health_keeps_its_body(madre) -> None:
    body = probe(madre, "/health").json()
    assert set(body) >= {"module", "status", "version", "time", "deps", "db"}

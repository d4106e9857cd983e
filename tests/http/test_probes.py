"""`GET /livez` and `GET /readyz`, open (no token), for load balancers.

/livez is 200 while the process serves. /readyz is 200 `ready` when the database answers
and Madre takes work, 503 (the error envelope, `not_ready`) while it is
starting, draining, or its database refuses writes; the detail says which, first. /health keeps its own body.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from helpers import assert_envelope, table_rows
from starlette.testclient import TestClient

from madre import Madre, create_app
from madre.contracts import ControlRequest
from madre.delegation.health import DependencyState
from madre.forensics import ForensicTrail
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


def test_readyz_reports_how_far_behind_the_trail_is_and_0_once_it_caught_up(
        madre, monkeypatch: pytest.MonkeyPatch) -> None:
    # The trail's writes fail on purpose (as on a full disk) while `full` is set.
    full = {"now": False}
    append = ForensicTrail.append

    def failing(self: ForensicTrail, entries: Any) -> None:
        if full["now"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        append(self, entries)

    monkeypatch.setattr(ForensicTrail, "append", failing)
    madre.trail.catch_up(timeout=30)
    copied = {t: len(table_rows(madre, t)) for t in ("intents_log", "madre_actions")}
    full["now"] = True
    for _ in range(3):  # a denied control: one intents_log row and one madre_actions row
        assert madre.control(ControlRequest(target="madre", action="stop")).status.value == (
            "denied")
    madre.trail.catch_up(timeout=30)  # tries now, fails, counts what it could not copy
    behind = sum(len(table_rows(madre, t)) - n for t, n in copied.items())
    assert behind == 6

    resp = probe(madre, "/readyz")
    assert resp.status_code == 200  # the rows are in the database: Madre still takes work
    body = resp.json()
    assert (body["status"], body["trail"], body["trail_behind"]) == ("ready", "failing", behind)

    full["now"] = False
    madre.trail.catch_up(timeout=30)
    resp = probe(madre, "/readyz")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["status"], body["trail"], body["trail_behind"]) == ("ready", "ok", 0)


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
        madre, monkeypatch: pytest.MonkeyPatch) -> None:
    cause = "the database refused the write (disk full): database or disk is full"
    madre.board.set_db_write(DependencyState("down", utcnow(), cause))
    # No write goes through after it: Madre's own background writes (the plans claimed as
    # it starts, lease renewals) would rightly report the database up again.
    monkeypatch.setattr(madre.board, "set_db_write", lambda state: None)
    body = assert_envelope(probe(madre, "/readyz"), 503, "not_ready")
    assert body["detail"] == f"db_down: {cause}"


def test_health_keeps_its_body(madre) -> None:
    body = probe(madre, "/health").json()
    assert set(body) >= {"module", "status", "version", "time", "deps", "db"}

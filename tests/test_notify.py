"""Notifications out: a plan that starts waiting for a human is announced at
MADRE_NOTIFY_URL, to a receiver on loopback that verifies every message with the
`standardwebhooks` library. It fails the first tries and sees the retries (same
`webhook-id`); a receiver that is down never holds up the plan; every try is audited.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import WAIT, WEBHOOK_SECRET, free_port, table_rows
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from madre.contracts.intake import ControlRequest
from madre.model import Status
from madre.standins import LoopbackServer


class Receiver:
    """Answers 500 to the first `fail` messages, then 204; keeps what it got, verified."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.got: list[dict[str, Any]] = []
        self.delivered = threading.Event()
        self._lock = threading.Lock()

    async def hook(self, request: Request) -> Any:
        raw = await request.body()
        payload = Webhook(WEBHOOK_SECRET).verify(raw, dict(request.headers))  # raises if bad
        with self._lock:
            self.got.append({"id": request.headers["webhook-id"], "payload": payload})
            failing = len(self.got) <= self.fail
        if failing:
            return JSONResponse({"error": "not now"}, status_code=500)
        self.delivered.set()
        return JSONResponse({}, status_code=204)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver(fail=2)
    app = Starlette(routes=[Route("/hook", hooks.hook, methods=["POST"])])
    with LoopbackServer(app, name="receiver") as server:
        yield hooks, server.url + "/hook"


def notified(start_madre: Any, url: str, **more: Any) -> Any:
    return start_madre(notify_url=url, notify_secret=WEBHOOK_SECRET,
                       notify_backoff_seconds=0.01, public_url="https://madre.example", **more)


def deliveries(madre: Any, plan_id: str) -> list[tuple[str, str]]:
    return [(r["action"], r["reason"]) for r in table_rows(madre, "madre_actions")
            if r["plan_id"] == plan_id and r["action"].startswith("notification_")]


def test_a_waiting_plan_is_announced_signed_and_retried_until_the_receiver_takes_it(
        start_madre, receiver) -> None:
    hooks, url = receiver
    madre = notified(start_madre, url)

    pending = madre.control(ControlRequest(target="shub", action="delete"))

    assert hooks.delivered.wait(WAIT) and madre.notifier.wait_idle(WAIT)
    assert len(hooks.got) == 3 and {g["id"] for g in hooks.got} == {
        f"plan-waiting-{pending.plan_id}"}
    message = hooks.got[-1]["payload"]
    assert message["type"] == "plan.waiting_for_approval"
    data = message["data"]
    assert data["plan_id"] == pending.plan_id and data["risk"] == "HIGH"
    assert data["plan_digest"] == pending.plan_digest
    assert data["expires_at"] == pending.expires_at.isoformat()
    assert "delete shub (HIGH)" in data["summary"] and data["submitted_by"] == "vx11"
    assert data["console_url"] == f"https://madre.example/console/plans/{pending.plan_id}"
    assert [a for a, _ in deliveries(madre, pending.plan_id)] == [
        "notification_failed", "notification_failed", "notification_delivered"]
    assert "HTTP 500" in deliveries(madre, pending.plan_id)[0][1]
    text = madre.metrics.exposition().decode()
    assert 'madre_webhook_deliveries_total{direction="out",outcome="failed"} 2.0' in text
    assert 'madre_webhook_deliveries_total{direction="out",outcome="delivered"} 1.0' in text


def test_a_receiver_that_is_down_never_holds_up_the_plan_and_is_given_up_on(
        start_madre) -> None:
    madre = notified(start_madre, f"http://127.0.0.1:{free_port()}/hook", notify_attempts=2)

    pending = madre.control(ControlRequest(target="shub", action="delete"))

    assert madre.get_plan(pending.plan_id).status is Status.WAITING
    assert madre.notifier.wait_idle(WAIT)
    assert [a for a, _ in deliveries(madre, pending.plan_id)] == [
        "notification_failed", "notification_failed", "notification_gave_up"]
    rows = [r for r in table_rows(madre, "madre_actions") if r["action"] == "notification_failed"]
    assert json.loads(rows[0]["detail_json"])["attempt"] == 1


def test_a_receiver_that_never_answers_holds_up_nothing_and_its_tries_back_off_doubling(
        start_madre) -> None:
    with socket.socket() as silent:  # takes connections, never answers one
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        madre = notified(start_madre, url, notify_attempts=3, notify_timeout_seconds=0.3)

        first = madre.control(ControlRequest(target="shub", action="delete"))
        second = madre.control(ControlRequest(target="hermes", action="delete"))

        # Both answered, and the second confirmed and run, while the announcements hang.
        assert madre.get_plan(first.plan_id).status is Status.WAITING
        assert madre.confirm(second.plan_id, second.confirm_token).plan_status is Status.DONE
        assert madre.notifier.wait_idle(WAIT)
    tries = deliveries(madre, first.plan_id)
    assert [a for a, _ in tries] == [
        "notification_failed", "notification_failed", "notification_failed",
        "notification_gave_up"]
    assert "ReadTimeout" in tries[0][1]
    assert tries[0][1].endswith("again in 0.01 s") and tries[1][1].endswith("again in 0.02 s")


def test_plans_that_run_at_once_are_not_announced(start_madre, receiver) -> None:
    hooks, url = receiver
    madre = notified(start_madre, url)
    madre.control(ControlRequest(target="shub", action="mix"))
    assert madre.notifier.wait_idle(WAIT) and hooks.got == []

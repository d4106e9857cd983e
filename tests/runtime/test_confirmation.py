"""Confirmations for real: a confirmed plan resumes and its gated steps reach the stand-ins;
wrong, expired, reused and concurrent tokens are refused; the token is never stored or logged.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from helpers import WAIT, table_rows

from madre import Madre
from madre.contracts.intake import ChatRequest, ControlRequest
from madre.errors import InvalidToken, NotFound, NotWaiting, TokenExpired
from madre.model import Status, StepType, WaitReason
from madre.store.models import TABLE_NAMES


def every_stored_text(madre: Madre) -> str:
    """Every value of every row of the five tables, as text, one after the other."""
    return "\n".join(
        str(value)
        for table in TABLE_NAMES
        for row in table_rows(madre, table)
        for value in row.values()
        if value is not None
    )


def ask_to_delete_on_hermes(madre: Madre) -> Any:
    pending = madre.control(ControlRequest(target="hermes", action="delete",
                                           params={"what": "cache"}))
    assert pending.confirm_token, pending
    return pending


def test_confirming_resumes_the_plan_and_the_gated_step_reaches_its_module(madre, standins):
    pending = ask_to_delete_on_hermes(madre)
    assert standins.recorder.calls("hermes") == []  # nothing ran behind the gate

    confirmed = madre.confirm(pending.plan_id, pending.confirm_token)

    assert confirmed.status == "confirmed"
    plan = madre.wait_for_plan(pending.plan_id, WAIT)
    assert plan.status is Status.DONE
    gate, call, _ = plan.steps
    assert gate.is_confirmation_gate and gate.status is Status.DONE
    assert call.type == StepType.CALL_HERMES and call.status is Status.DONE
    [received] = standins.recorder.calls("hermes")
    assert received.body["action"] == "delete"
    assert received.body["params"] == {"what": "cache"}
    assert received.idempotency_key == call.step_id


def test_confirm_waits_for_the_resumed_plan_and_reports_its_status(madre, standins):
    pending = ask_to_delete_on_hermes(madre)

    confirmed = madre.confirm(pending.plan_id, pending.confirm_token)

    assert confirmed.plan_status is Status.DONE


def test_a_confirmed_chat_request_runs_its_steps(madre, standins):
    answer = madre.chat(ChatRequest(message="restart the hormiguero"))
    assert answer.status is Status.WAITING and answer.requires_confirmation

    madre.confirm(answer.plan_id, answer.confirm_token)

    plan = madre.wait_for_plan(answer.plan_id, WAIT)
    assert plan.status is Status.DONE
    assert len(standins.recorder.calls("hormiguero")) == 1


def test_a_confirmed_plan_whose_step_fails_ends_in_error_with_a_reason(madre, standins):
    pending = ask_to_delete_on_hermes(madre)
    standins.behaviours["hermes"].mode = "fail"

    madre.confirm(pending.plan_id, pending.confirm_token)

    plan = madre.wait_for_plan(pending.plan_id, WAIT)
    assert plan.status is Status.ERROR
    assert "CALL_HERMES" in plan.reason and "hermes" in plan.reason
    assert "500" in plan.reason


def test_a_wrong_token_is_refused_and_the_plan_keeps_waiting(madre, standins):
    pending = ask_to_delete_on_hermes(madre)

    with pytest.raises(InvalidToken):
        madre.confirm(pending.plan_id, pending.confirm_token + "x")

    plan = madre.get_plan(pending.plan_id)
    assert plan.status is Status.WAITING and plan.wait_reason is WaitReason.CONFIRMATION
    assert standins.recorder.calls("hermes") == []
    # the right token still works afterwards
    madre.confirm(pending.plan_id, pending.confirm_token)
    assert madre.wait_for_plan(pending.plan_id, WAIT).status is Status.DONE


def test_a_token_of_another_plan_is_refused(madre, standins):
    first = ask_to_delete_on_hermes(madre)
    second = ask_to_delete_on_hermes(madre)

    with pytest.raises(InvalidToken):
        madre.confirm(first.plan_id, second.confirm_token)


def test_an_expired_token_is_refused_and_the_plan_ends_in_error(start_madre, standins):
    # One microsecond: a confirm always comes later than that. (With 0.001 s a fast SQLite
    # could issue, store and confirm within the millisecond, and the token was still valid.)
    runtime = start_madre(confirm_ttl_seconds=0.000001)
    pending = ask_to_delete_on_hermes(runtime)

    with pytest.raises(TokenExpired):
        runtime.confirm(pending.plan_id, pending.confirm_token)

    plan = runtime.get_plan(pending.plan_id)
    assert plan.status is Status.ERROR
    assert plan.reason == "confirmation_expired"
    assert plan.confirmation.expired
    assert standins.recorder.calls("hermes") == []
    with pytest.raises(TokenExpired):  # still the truth once the plan has ended
        runtime.confirm(pending.plan_id, pending.confirm_token)


def test_a_used_token_cannot_confirm_again(madre, standins):
    pending = ask_to_delete_on_hermes(madre)
    madre.confirm(pending.plan_id, pending.confirm_token)
    assert madre.wait_for_plan(pending.plan_id, WAIT).status is Status.DONE

    with pytest.raises(NotWaiting):
        madre.confirm(pending.plan_id, pending.confirm_token)

    assert len(standins.recorder.calls("hermes")) == 1


def test_a_plan_that_never_needed_confirmation_is_not_waiting(madre, standins):
    answer = madre.control(ControlRequest(target="hermes", action="ping"))
    madre.wait_for_plan(answer.plan_id, WAIT)

    with pytest.raises(NotWaiting):
        madre.confirm(answer.plan_id, "any-token-at-all")


def test_confirming_an_unknown_plan_is_not_found(madre, standins):
    with pytest.raises(NotFound):
        madre.confirm("00000000-0000-0000-0000-000000000000", "whatever")


def test_two_concurrent_confirms_with_the_same_token_have_exactly_one_winner(madre, standins):
    pending = ask_to_delete_on_hermes(madre)
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def confirm() -> None:
        barrier.wait(timeout=5)
        try:
            result: Any = madre.confirm(pending.plan_id, pending.confirm_token, wait=0)
        except Exception as exc:  # noqa: BLE001 - the loser's exception is the point
            result = exc
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=confirm) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)

    assert len(outcomes) == 2
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    losers = [o for o in outcomes if isinstance(o, Exception)]
    assert len(winners) == 1 and winners[0].status == "confirmed"
    assert len(losers) == 1 and isinstance(losers[0], NotWaiting)
    assert madre.wait_for_plan(pending.plan_id, WAIT).status is Status.DONE
    assert len(standins.recorder.calls("hermes")) == 1
    confirmations = [r for r in table_rows(madre, "madre_actions")
                     if r["plan_id"] == pending.plan_id and r["action"] == "plan_confirmed"]
    assert len(confirmations) == 1


def test_the_token_is_never_stored_in_clear(madre, standins):
    pending = ask_to_delete_on_hermes(madre)
    waiting_chat = madre.chat(ChatRequest(message="restart the hormiguero"))
    with pytest.raises(InvalidToken):
        madre.confirm(pending.plan_id, waiting_chat.confirm_token)
    madre.confirm(pending.plan_id, pending.confirm_token)
    madre.wait_for_plan(pending.plan_id, WAIT)
    madre.control(ControlRequest(target="hormiguero", action="restart",
                                 confirm_token=waiting_chat.confirm_token))
    madre.wait_for_plan(waiting_chat.plan_id, WAIT)

    stored = every_stored_text(madre)

    assert pending.plan_id in stored  # the dump really holds the plans
    assert pending.confirm_token not in stored
    assert waiting_chat.confirm_token not in stored


def test_the_token_never_appears_in_the_logs(madre, standins, caplog):
    caplog.set_level(logging.DEBUG)
    pending = ask_to_delete_on_hermes(madre)
    with pytest.raises(InvalidToken):
        madre.confirm(pending.plan_id, pending.confirm_token[::-1])
    madre.confirm(pending.plan_id, pending.confirm_token)
    madre.wait_for_plan(pending.plan_id, WAIT)
    with pytest.raises(NotWaiting):
        madre.confirm(pending.plan_id, pending.confirm_token)

    assert caplog.records  # DEBUG logging really was captured
    assert pending.confirm_token not in caplog.text
    for record in caplog.records:
        assert pending.confirm_token not in str(record.__dict__)

"""A retried `/madre/intent` (same correlation_id) gets the truth, never a promise of work
that will not happen: the first answer when the first attempt was accepted (its plan, or
its denial, is recorded), a fresh attempt that runs when it was not (refused with a 503,
closed as interrupted at boot, or left `received` by a crash of an older Madre).
"""

from __future__ import annotations

import concurrent.futures

from helpers import WAIT, intent_row, table_rows

from madre import Madre
from madre.contracts.intake import IntentRequest
from madre.model import Status
from madre.records import IntentClose, IntentRecord

PING = dict(source="hormiguero", action="ping", target="hermes")


def left_by_an_earlier_attempt(madre: Madre, correlation_id: str, status: str | None) -> None:
    """An intents_log row with no plan, as a refused or cut-short first attempt left it."""
    madre.store.record_intent(IntentRecord(correlation_id, "hormiguero", {"action": "ping"},
                                           None))
    if status is not None:
        madre.store.close_intent(None, IntentClose(correlation_id, status, "interrupted"))


def test_a_retry_of_an_intent_closed_as_interrupted_is_a_fresh_attempt_that_runs(
        madre, standins) -> None:
    left_by_an_earlier_attempt(madre, "scan-1", "error")

    answer = madre.submit_intent(IntentRequest(**PING, correlation_id="scan-1"))

    assert not answer.duplicate
    assert answer.plan_id is not None
    assert madre.wait_for_plan(answer.plan_id, WAIT).status is Status.DONE
    assert len(standins.recorder.calls("hermes")) == 1
    row = intent_row(madre, "scan-1")
    assert row["plan_id"] == answer.plan_id and row["result_status"] == "done"
    assert len(table_rows(madre, "intents_log")) == 1  # the same row, taken over


def test_a_retry_of_an_intent_left_received_by_a_crash_is_a_fresh_attempt(madre) -> None:
    left_by_an_earlier_attempt(madre, "scan-2", None)

    answer = madre.submit_intent(IntentRequest(**PING, correlation_id="scan-2"))

    assert not answer.duplicate and answer.plan_id
    assert madre.wait_for_plan(answer.plan_id, WAIT).status is Status.DONE


def test_a_second_retry_after_the_fresh_attempt_gets_the_fresh_attempts_answer(madre) -> None:
    left_by_an_earlier_attempt(madre, "scan-3", "error")
    fresh = madre.submit_intent(IntentRequest(**PING, correlation_id="scan-3"))

    again = madre.submit_intent(IntentRequest(**PING, correlation_id="scan-3"))

    assert again.duplicate and again.plan_id == fresh.plan_id


def test_a_retry_of_a_denied_intent_is_answered_denied_again(madre) -> None:
    request = IntentRequest(source="ops", action="stop", target="madre", correlation_id="d-1")
    first = madre.submit_intent(request)

    again = madre.submit_intent(request)

    assert first.plan_id is None and first.status is Status.ERROR
    assert again.duplicate and again.plan_id is None and again.status is Status.ERROR


def test_concurrent_attempts_with_one_correlation_id_make_one_plan_and_agree_on_it(
        madre, standins) -> None:
    request = IntentRequest(**PING, correlation_id="scan-4")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: madre.submit_intent(request), range(8)))

    assert {a.plan_id for a in answers} == {answers[0].plan_id} and answers[0].plan_id
    assert sum(not a.duplicate for a in answers) == 1
    assert len(table_rows(madre, "tasks")) == 1
    assert madre.wait_for_plan(answers[0].plan_id, WAIT).status is Status.DONE
    assert len(standins.recorder.calls("hermes")) == 1


def test_concurrent_retries_of_an_interrupted_intent_take_it_over_once(madre) -> None:
    left_by_an_earlier_attempt(madre, "scan-5", "error")
    request = IntentRequest(**PING, correlation_id="scan-5")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: madre.submit_intent(request), range(6)))

    assert {a.plan_id for a in answers} == {answers[0].plan_id} and answers[0].plan_id
    assert len(table_rows(madre, "tasks")) == 1

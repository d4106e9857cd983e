"""What Madre writes: the five tables, the intents log, the audit trail, nothing deleted, and
the Store actor's group commit.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from helpers import WAIT, audit_actions, intent_row, is_subsequence, settled, table_rows

from madre import Madre
from madre.contracts.intake import ChatRequest, ControlRequest, IntentRequest
from madre.errors import InvalidToken, StaleWrite
from madre.model import Status, utcnow
from madre.records import NO_CHANGE
from madre.rules import lifecycle
from madre.store.models import TABLE_NAMES

# --------------------------------------------------------------------------- tables


def test_the_database_holds_exactly_the_five_tables(madre):
    assert sorted(madre.database.get_tables()) == sorted(TABLE_NAMES)


def test_a_plan_is_stored_as_one_tasks_row_with_an_uppercase_status(madre, standins):
    answer = madre.control(ControlRequest(target="hermes", action="ping"))
    settled(madre, answer.plan_id)

    [task] = table_rows(madre, "tasks")

    assert task["uuid"] == answer.plan_id
    assert task["status"] == "DONE"
    assert task["risk"] == "LOW"


# --------------------------------------------------------------------------- intents_log


def test_the_intent_is_logged_before_the_answer_and_closed_when_the_plan_ends(madre, standins):
    standins.behaviours["shub"].mode = "hang"

    answer = madre.chat(ChatRequest(message="mix these 3 stems"), wait=0)

    assert answer.status is Status.RUNNING
    row = intent_row(madre, answer.intent_id)
    assert row["plan_id"] == answer.plan_id
    assert row["result_status"] == "planned"  # logged, not closed: the plan is still going
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)
    standins.behaviours["shub"].release_all()
    assert settled(madre, answer.plan_id).status is Status.DONE
    row = intent_row(madre, answer.intent_id)
    assert row["result_status"] == "done"
    assert row["processed_by_madre_at"] is not None


def _done(madre: Madre) -> str:
    answer = madre.chat(ChatRequest(message="mix these 3 stems"))
    assert answer.status is Status.DONE
    return answer.intent_id


def _waiting_for_confirmation(madre: Madre) -> str:
    answer = madre.chat(ChatRequest(message="delete the hermes cache"))
    assert answer.status is Status.WAITING
    return answer.intent_id


def _waiting_for_a_job(madre: Madre) -> str:
    answer = madre.submit_intent(IntentRequest(source="cli", action="run", target="spawner"))
    assert settled(madre, answer.plan_id).status is Status.WAITING
    return answer.intent_id


def _error(madre: Madre, standins: Any) -> str:
    standins.behaviours["shub"].mode = "fail"
    answer = madre.chat(ChatRequest(message="mix these 3 stems"))
    assert answer.status is Status.ERROR
    return answer.intent_id


def _denied(madre: Madre) -> str:
    answer = madre.control(ControlRequest(target="madre", action="stop"))
    [row] = [r for r in table_rows(madre, "madre_actions") if r["id"] == answer.action_id]
    return str(row["intent_id"])


CLOSINGS: dict[str, tuple[Callable[..., str], str]] = {
    "done": (lambda madre, standins: _done(madre), "done"),
    "waiting_confirmation": (lambda madre, standins: _waiting_for_confirmation(madre), "waiting"),
    "waiting_job": (lambda madre, standins: _waiting_for_a_job(madre), "waiting"),
    "error": (_error, "error"),
    "denied": (lambda madre, standins: _denied(madre), "denied"),
}


@pytest.mark.parametrize("scenario", list(CLOSINGS))
def test_every_intent_row_is_closed_with_its_final_status(madre, standins, scenario):
    run, expected = CLOSINGS[scenario]

    intent_id = run(madre, standins)

    row = intent_row(madre, intent_id)
    assert row["result_status"] == expected
    assert row["processed_by_madre_at"] is not None
    assert row["payload_json"]


# --------------------------------------------------------------------------- madre_actions


def test_a_plan_that_runs_audits_its_decision_and_every_transition(madre, standins):
    answer = madre.control(ControlRequest(target="hermes", action="ping"))
    settled(madre, answer.plan_id)

    actions = audit_actions(madre, answer.plan_id)

    assert is_subsequence(["decision:LOW", "plan_created", "plan_started",
                           "step_started:CALL_HERMES", "step_done:CALL_HERMES", "plan_done"],
                          actions), actions


def test_a_confirmed_plan_audits_the_request_for_confirmation_and_the_confirmation(madre,
                                                                                    standins):
    pending = madre.control(ControlRequest(target="hermes", action="delete"))
    with pytest.raises(InvalidToken):
        madre.confirm(pending.plan_id, "not-the-token")
    madre.confirm(pending.plan_id, pending.confirm_token)
    settled(madre, pending.plan_id)

    actions = audit_actions(madre, pending.plan_id)

    assert is_subsequence(["decision:HIGH", "confirmation_required:HIGH", "plan_created",
                           "confirmation_rejected", "plan_confirmed", "step_done:CALL_HERMES",
                           "plan_done"], actions), actions
    [rejected] = [r for r in table_rows(madre, "madre_actions")
                  if r["action"] == "confirmation_rejected"]
    assert rejected["reason"] == "invalid_token"


def test_a_failed_plan_audits_the_failed_step_and_the_error(madre, standins):
    standins.behaviours["hermes"].mode = "fail"
    answer = madre.control(ControlRequest(target="hermes", action="ping"))
    settled(madre, answer.plan_id)

    actions = audit_actions(madre, answer.plan_id)

    assert is_subsequence(["plan_started", "step_started:CALL_HERMES",
                           "step_failed:CALL_HERMES", "plan_error"], actions), actions


def test_a_plan_waiting_for_a_job_audits_the_request_and_the_wait(madre, standins):
    answer = madre.chat(ChatRequest(message="run the backup job"))

    actions = audit_actions(madre, answer.plan_id)

    assert is_subsequence(["decision:LOW", "plan_created", "plan_started",
                           "daughter_task_requested", "plan_waiting"], actions), actions


def test_a_denial_is_audited_with_its_intent_and_reason(madre, standins):
    answer = madre.control(ControlRequest(target="tentaculo_link", action="delete",
                                          session_id="ops-session"))

    [row] = [r for r in table_rows(madre, "madre_actions") if r["id"] == answer.action_id]

    assert row["action"] == "denied"
    assert row["module"] == "tentaculo_link"
    assert row["reason"] == answer.reason
    assert row["session_id"] == "ops-session"
    assert intent_row(madre, row["intent_id"])["result_status"] == "denied"


def test_a_save_from_a_stale_copy_of_a_plan_is_refused_not_applied(madre, standins):
    pending = madre.control(ControlRequest(target="hermes", action="delete"))
    fresh = madre.repo.load_plan(pending.plan_id)
    stale = madre.repo.load_plan(pending.plan_id)
    lifecycle.advance(fresh, Status.ERROR, reason="cancelled by an operator", now=utcnow())
    madre.store.save_plan(fresh, NO_CHANGE)

    lifecycle.advance(stale, Status.RUNNING, now=utcnow())
    with pytest.raises(StaleWrite):
        madre.store.save_plan(stale, NO_CHANGE)

    stored = madre.get_plan(pending.plan_id)
    assert stored.status is Status.ERROR and stored.reason == "cancelled by an operator"


# --------------------------------------------------------------------------- append-only


def test_no_row_is_ever_deleted_across_a_sequence_of_operations(madre, standins):
    def snapshot() -> dict[str, set[Any]]:
        return {t: {r["id"] for r in table_rows(madre, t)} for t in TABLE_NAMES}

    def low_chat() -> None:
        madre.chat(ChatRequest(message="mix these 3 stems"))

    pending: dict[str, Any] = {}

    def ask() -> None:
        pending["answer"] = madre.control(ControlRequest(target="hermes", action="delete"))

    def confirm() -> None:
        madre.confirm(pending["answer"].plan_id, pending["answer"].confirm_token)

    def deny() -> None:
        madre.control(ControlRequest(target="madre", action="stop"))

    def fail() -> None:
        standins.behaviours["shub"].mode = "fail"
        madre.chat(ChatRequest(message="mix these 3 stems"))
        standins.behaviours["shub"].mode = "ok"

    def job() -> None:
        madre.chat(ChatRequest(message="run the backup job"))

    def dry_run() -> None:
        madre.chat(ChatRequest(message="mix these 3 stems", dry_run=True))

    history = [snapshot()]
    for operation in (low_chat, ask, confirm, deny, fail, job, dry_run, low_chat):
        operation()
        history.append(snapshot())

    for before, after in zip(history, history[1:], strict=False):
        for table in TABLE_NAMES:
            assert before[table] <= after[table], f"a {table} row disappeared"
    final = history[-1]
    assert len(final["intents_log"]) == 7  # a confirmation is not a new intent
    assert len(final["tasks"]) == 5  # the denial and the dry run planned nothing
    assert len(final["daughter_tasks"]) == 1


# --------------------------------------------------------------------------- group commit


def test_the_store_groups_concurrent_writes_into_fewer_commits(madre, standins):
    chats = 40
    barrier = threading.Barrier(chats)
    answers: list[Any] = []
    lock = threading.Lock()
    commits_before, writes_before = madre.store.stats()

    def chat(n: int) -> None:
        barrier.wait(timeout=WAIT)
        answer = madre.chat(ChatRequest(message=f"what is the status, request {n}"))
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=chat, args=(n,)) for n in range(chats)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    commits, writes = madre.store.stats()
    assert len(answers) == chats
    assert {a.status for a in answers} == {Status.DONE}
    assert writes - writes_before >= chats * 2  # at least: intent with its plan, final save
    assert commits - commits_before < writes - writes_before
    closed = [r["result_status"] for r in table_rows(madre, "intents_log")]
    assert closed == ["done"] * chats


def test_a_waiting_plans_confirmation_is_read_back_whole_and_the_newest_row_of_a_key_counts(
        madre):
    from madre.rules.tokens import hash_token
    from madre.store.columns import KEY_CONFIRM_HASH, SCOPE_GLOBAL

    pending = madre.control(ControlRequest(target="shub", action="delete"))
    plan = madre.get_plan(pending.plan_id)
    first = madre.repo.confirmation(pending.plan_id)

    assert first is not None
    assert first.token_hash == hash_token(pending.confirm_token)
    assert first.plan_digest == plan.plan_digest
    assert first.expires_at > utcnow()

    madre.repo.m.Context.create(task_id=pending.plan_id, key=KEY_CONFIRM_HASH, value="newer",
                                scope=SCOPE_GLOBAL)
    again = madre.repo.confirmation(pending.plan_id)
    assert (again.token_hash, again.expires_at, again.plan_digest) == (
        "newer", first.expires_at, first.plan_digest)
    assert madre.repo.confirmation("no-such-plan") is None

"""Chat, control and structured intents through the embedding API, against the loopback stand-ins.

Every test runs on SQLite and on PostgreSQL (the `madre` / `database_url` fixtures).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from doubles import FailingHealthcheck
from helpers import TOKEN, WAIT, free_port, table_rows

from madre import Madre
from madre.contracts.intake import (
    ChatRequest,
    ControlRequest,
    ControlStatus,
    IntentRequest,
)
from madre.model import Mode, Provider, Risk, Status, StepType, WaitReason

# --------------------------------------------------------------------------- helpers


def step_types(madre: Madre, plan_id: str) -> list[str]:
    return [s.type for s in madre.get_plan(plan_id).steps]


def parse_calls(standins: Any) -> list[Any]:
    return [r for r in standins.recorder.calls("switch")
            if (r.body or {}).get("metadata", {}).get("purpose") == "intent_parse"]


def step_calls(standins: Any) -> list[Any]:
    """Every call a stand-in received that was not an intent_parse (i.e. a plan step)."""
    return [r for r in standins.recorder.calls()
            if (r.body or {}).get("metadata", {}).get("purpose") != "intent_parse"]


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


# --------------------------------------------------------------------------- chat


def test_a_low_risk_chat_message_runs_its_plan_to_done_with_the_stand_ins_results(madre, standins):
    answer = madre.chat(ChatRequest(message="tell me a joke about synthesizers"))

    assert answer.status is Status.DONE
    assert answer.risk is Risk.LOW and not answer.requires_confirmation
    assert answer.confirm_token is None
    switch_step = next(a for a in answer.actions if a.step == StepType.CALL_SWITCH)
    assert switch_step.status is Status.DONE
    assert switch_step.result["reply"] == "[standin] tell me a joke about synthesizers"
    assert answer.response == "[standin] tell me a joke about synthesizers"
    assert madre.get_plan(answer.plan_id).status is Status.DONE


def test_mixing_three_stems_plans_switch_then_shub_then_noop_in_audio_engineer_mode(madre, standins):
    answer = madre.chat(ChatRequest(message="mix these 3 stems"))

    assert answer.mode is Mode.AUDIO_ENGINEER
    assert answer.status is Status.DONE
    assert step_types(madre, answer.plan_id) == [
        StepType.CALL_SWITCH, StepType.CALL_SHUB, StepType.NOOP]
    shub = standins.recorder.calls("shub")
    assert len(shub) == 1
    assert shub[0].body["task"] == "mix"
    assert shub[0].body["params"]["count"] == 3
    assert [a.status for a in answer.actions] == [Status.DONE] * 3


def test_a_new_session_starts_in_madre_mode(madre, standins):
    answer = madre.chat(ChatRequest(message="now make it a bit warmer"))

    assert answer.mode is Mode.MADRE
    assert step_types(madre, answer.plan_id) == [StepType.CALL_SWITCH, StepType.NOOP]


def test_a_follow_up_without_audio_words_stays_in_audio_engineer_mode(madre, standins):
    first = madre.chat(ChatRequest(message="mix these 3 stems"))
    follow = madre.chat(ChatRequest(message="now make it a bit warmer",
                                    session_id=first.session_id))

    assert follow.session_id == first.session_id
    assert follow.mode is Mode.AUDIO_ENGINEER
    assert follow.status is Status.DONE
    assert step_types(madre, follow.plan_id) == [
        StepType.CALL_SWITCH, StepType.CALL_SHUB, StepType.NOOP]


def test_a_sessions_mode_survives_a_restart_on_the_same_database(madre, settings, standins):
    first = madre.chat(ChatRequest(message="mix these 3 stems"))
    assert first.mode is Mode.AUDIO_ENGINEER
    madre.stop()

    with Madre(settings) as again:
        follow = again.chat(ChatRequest(message="now make it a bit warmer",
                                        session_id=first.session_id))

    assert follow.mode is Mode.AUDIO_ENGINEER
    assert follow.status is Status.DONE


def test_switch_is_asked_first_and_its_reading_is_used_when_it_answers(madre, standins):
    answer = madre.chat(ChatRequest(message="mix these 3 stems"))

    assert answer.provider is Provider.SWITCH
    assert "fallback_parser_used" not in answer.warnings
    parses = parse_calls(standins)
    assert len(parses) == 1
    assert parses[0].path == "/switch/route-v5"
    assert parses[0].body["prompt"] == "mix these 3 stems"
    assert parses[0].body["source"] == "madre"
    assert parses[0].body["metadata"]["intent_id"] == answer.intent_id
    assert parses[0].body["metadata"]["session_id"] == answer.session_id


def test_a_failing_switch_falls_back_to_the_local_parser_with_a_warning(madre, standins):
    standins.behaviours["switch"].mode = "fail"

    answer = madre.chat(ChatRequest(message="what is the status of the system"))

    assert answer.provider is Provider.FALLBACK_LOCAL
    assert "fallback_parser_used" in answer.warnings
    assert answer.status is Status.DONE
    assert len(parse_calls(standins)) == 1  # it was asked first
    assert step_types(madre, answer.plan_id) == [StepType.SYSTEM_HEALTHCHECK, StepType.NOOP]


def test_an_unreachable_switch_falls_back_to_the_local_parser_with_a_warning(start_madre, standins):
    runtime = start_madre(switch_url=closed_port_url())

    answer = runtime.chat(ChatRequest(message="mix these 3 stems"))

    assert answer.provider is Provider.FALLBACK_LOCAL
    assert "fallback_parser_used" in answer.warnings
    assert answer.mode is Mode.AUDIO_ENGINEER  # the local parser understood it too
    assert parse_calls(standins) == []


def test_show_me_my_skills_is_not_read_as_a_kill(madre, standins):
    answer = madre.chat(ChatRequest(message="show me my skills"))

    assert answer.risk is Risk.LOW
    assert not answer.requires_confirmation
    assert "destructive_intent_detected" not in answer.warnings
    assert answer.status is Status.DONE


def test_show_me_my_skills_is_not_read_as_a_kill_by_the_fallback_parser_either(madre, standins):
    standins.behaviours["switch"].mode = "fail"

    answer = madre.chat(ChatRequest(message="show me my skills"))

    assert answer.provider is Provider.FALLBACK_LOCAL
    assert answer.risk is Risk.LOW and not answer.requires_confirmation
    assert "destructive_intent_detected" not in answer.warnings


def test_a_dry_run_plans_without_running_or_storing_a_plan(madre, standins):
    answer = madre.chat(ChatRequest(message="mix these 3 stems", dry_run=True))

    assert answer.plan_id is None
    assert answer.status is Status.PENDING
    assert "CALL_SWITCH, CALL_SHUB, NOOP" in answer.response
    assert step_calls(standins) == []
    assert table_rows(madre, "tasks") == []
    [intent] = table_rows(madre, "intents_log")
    assert intent["intent_id"] == answer.intent_id
    assert intent["result_status"] == "dry_run"


# --------------------------------------------------------------------------- control


def test_a_low_risk_control_runs_its_plan_to_done(madre, standins):
    answer = madre.control(ControlRequest(target="hermes", action="ping"))

    assert answer.status is ControlStatus.ACCEPTED
    assert answer.risk is Risk.LOW and answer.confirm_token is None
    plan = madre.wait_for_plan(answer.plan_id, WAIT)
    assert plan is not None and plan.status is Status.DONE
    [call] = standins.recorder.calls("hermes")
    assert call.body["action"] == "ping"
    assert plan.steps[0].result["echo"] == call.body


def test_a_high_risk_control_waits_for_confirmation_with_a_token(madre, standins):
    answer = madre.control(ControlRequest(target="hermes", action="delete"))

    assert answer.status is ControlStatus.PENDING_CONFIRMATION
    assert answer.risk is Risk.HIGH
    assert answer.confirm_token and len(answer.confirm_token) >= 22
    assert answer.expires_at is not None
    plan = madre.wait_for_plan(answer.plan_id, WAIT)
    assert plan.status is Status.WAITING
    assert plan.wait_reason is WaitReason.CONFIRMATION
    assert madre.get_plan(answer.plan_id).confirmation.required
    assert standins.recorder.calls("hermes") == []


@pytest.mark.parametrize(("target", "action"), [("madre", "stop"), ("tentaculo_link", "delete")])
def test_stopping_or_deleting_madre_or_the_gateway_is_denied_and_audited(madre, standins,
                                                                          target, action):
    answer = madre.control(ControlRequest(target=target, action=action))

    assert answer.status is ControlStatus.DENIED
    assert answer.plan_id is None
    assert answer.reason
    [audit] = [r for r in table_rows(madre, "madre_actions") if r["id"] == answer.action_id]
    assert audit["action"] == "denied"
    assert audit["module"] == target
    assert table_rows(madre, "tasks") == []
    assert [r["result_status"] for r in table_rows(madre, "intents_log")] == ["denied"]
    assert standins.recorder.calls() == []


def test_control_with_a_confirm_token_and_plan_id_confirms_that_plan(madre, standins):
    pending = madre.control(ControlRequest(target="hermes", action="delete"))

    answer = madre.control(ControlRequest(target="hermes", action="delete",
                                          confirm_token=pending.confirm_token,
                                          plan_id=pending.plan_id))

    assert answer.status is ControlStatus.ACCEPTED
    assert answer.plan_id == pending.plan_id
    plan = madre.wait_for_plan(pending.plan_id, WAIT)
    assert plan.status is Status.DONE
    assert len(standins.recorder.calls("hermes")) == 1


def test_control_with_only_a_confirm_token_finds_and_confirms_its_plan(madre, standins):
    pending = madre.control(ControlRequest(target="hermes", action="delete"))

    answer = madre.control(ControlRequest(target="hermes", action="delete",
                                          confirm_token=pending.confirm_token))

    assert answer.status is ControlStatus.ACCEPTED
    assert answer.plan_id == pending.plan_id
    plan = madre.wait_for_plan(pending.plan_id, WAIT)
    assert plan.status is Status.DONE
    assert madre.get_plan(pending.plan_id).confirmation.confirmed_at is not None


# --------------------------------------------------------------------------- spawner jobs


def assert_daughter_requested(madre: Madre, standins: Any, plan_id: str, intent_id: str) -> None:
    plan = madre.wait_for_plan(plan_id, WAIT)
    assert plan is not None
    assert plan.status is Status.WAITING
    assert plan.wait_reason is WaitReason.SPAWNER_JOB
    spawner_step = next(s for s in plan.steps if s.type == StepType.SPAWNER_REQUEST)
    assert spawner_step.status is Status.WAITING
    [row] = table_rows(madre, "daughter_tasks")
    assert row["intent_id"] == intent_id
    assert row["plan_id"] == plan_id
    assert row["step_id"] == spawner_step.step_id
    assert row["task_type"] and row["description"]
    assert row["status"] == "pending"
    assert json.loads(row["metadata_json"])["plan_id"] == plan_id
    assert spawner_step.result["daughter_task_id"] == row["id"]
    # Madre never launches the job itself: no POST reached the Spawner.
    assert [r for r in standins.recorder.requests("spawner") if r.method == "POST"] == []


def test_an_intent_targeting_the_spawner_inserts_a_daughter_task_and_waits(madre, standins):
    answer = madre.submit_intent(IntentRequest(
        source="cli", action="run", target="spawner",
        params={"task_type": "backup", "path": "/srv"}))

    assert answer.plan_id == answer.task_id
    assert not answer.requires_confirmation
    assert_daughter_requested(madre, standins, answer.plan_id, answer.intent_id)
    [row] = table_rows(madre, "daughter_tasks")
    assert row["task_type"] == "backup"


def test_a_chat_asking_to_run_a_job_inserts_a_daughter_task_and_waits(madre, standins):
    answer = madre.chat(ChatRequest(message="run the backup job"))

    assert answer.status is Status.WAITING
    assert step_types(madre, answer.plan_id) == [StepType.SPAWNER_REQUEST, StepType.NOOP]
    assert_daughter_requested(madre, standins, answer.plan_id, answer.intent_id)
    [row] = table_rows(madre, "daughter_tasks")
    assert row["description"] == "run the backup job"


def test_a_control_targeting_the_spawner_inserts_a_daughter_task_and_waits(madre, standins):
    answer = madre.control(ControlRequest(target="spawner", action="run",
                                          params={"task_type": "render"}))

    assert answer.status is ControlStatus.ACCEPTED
    assert_daughter_requested(madre, standins, answer.plan_id,
                              madre.get_plan(answer.plan_id).intent.intent_id)


# --------------------------------------------------------------------------- steps for real


def test_every_step_call_carries_the_token_and_its_step_id_as_idempotency_key(madre, standins):
    plan_ids = [madre.control(ControlRequest(target=target, action="ping")).plan_id
                for target in ("switch", "hermes", "hormiguero", "manifestator", "shub")]
    plan_ids.append(madre.chat(ChatRequest(message="mix these 3 stems")).plan_id)
    for plan_id in plan_ids:
        assert madre.wait_for_plan(plan_id, WAIT).status is Status.DONE

    call_steps = {s.step_id: s.type for plan_id in plan_ids
                  for s in madre.get_plan(plan_id).steps if s.type.startswith("CALL_")}
    received = step_calls(standins)

    assert len(call_steps) == 7  # five controls and the chat's CALL_SWITCH + CALL_SHUB
    assert sorted(r.idempotency_key for r in received) == sorted(call_steps)
    assert {r.token for r in received} == {TOKEN}
    for r in received:
        assert call_steps[r.idempotency_key] == f"CALL_{r.module.upper()}" or (
            r.module == "hormiguero" and call_steps[r.idempotency_key] == "CALL_HORMIGUERO_TASK")


def test_a_required_step_that_keeps_failing_ends_the_plan_in_error_after_retries(madre, standins,
                                                                                 settings):
    standins.behaviours["shub"].mode = "fail"

    answer = madre.chat(ChatRequest(message="mix these 3 stems"))

    assert answer.status is Status.ERROR
    detail = madre.get_plan(answer.plan_id)
    assert detail.status is Status.ERROR
    assert "CALL_SHUB" in detail.reason and "shub" in detail.reason
    switch_step, shub_step, last = detail.steps
    assert switch_step.status is Status.DONE
    assert shub_step.status is Status.ERROR
    assert shub_step.error and "500" in shub_step.error
    assert shub_step.attempts == settings.step_retries + 1 > 1
    assert last.status is Status.PENDING  # nothing ran after the failure
    # every retry was the same call: same Idempotency-Key each time
    assert standins.recorder.idempotency_counts("shub") == {
        shub_step.step_id: settings.step_retries + 1}


def test_a_hanging_module_ends_the_plan_in_error_within_the_step_timeout(start_madre, standins,
                                                                        request):
    runtime = start_madre(step_retries=0)
    standins.behaviours["shub"].mode = "hang"
    request.addfinalizer(standins.behaviours["shub"].release_all)
    timeout = runtime.settings.step_timeout_seconds

    started = time.monotonic()
    answer = runtime.chat(ChatRequest(message="mix these 3 stems"))
    elapsed = time.monotonic() - started

    assert answer.status is Status.ERROR
    assert timeout <= elapsed < timeout + 3
    detail = runtime.get_plan(answer.plan_id)
    assert "CALL_SHUB" in detail.reason and "timeout" in detail.reason


@pytest.mark.parametrize("mode", ["html", "garbage"])
def test_an_answer_that_is_not_json_ends_the_plan_in_error_with_a_readable_reason(madre, standins,
                                                                                  mode):
    standins.behaviours["shub"].mode = mode

    answer = madre.chat(ChatRequest(message="mix these 3 stems"))

    assert answer.status is Status.ERROR
    detail = madre.get_plan(answer.plan_id)
    assert detail.reason.startswith("step 1 (CALL_SHUB) failed: shub: answered ")
    assert detail.reason.endswith("not JSON")
    assert detail.steps[1].attempts == 1  # a bad answer is not retried
    assert "Traceback" not in detail.reason


def test_a_healthcheck_with_every_module_down_still_ends_done(madre, standins):
    for behaviour in standins.behaviours.values():
        behaviour.mode = "fail"

    answer = madre.chat(ChatRequest(message="what is the status of the system"))

    assert answer.status is Status.DONE
    assert step_types(madre, answer.plan_id) == [StepType.SYSTEM_HEALTHCHECK, StepType.NOOP]


def test_an_optional_healthcheck_that_fails_only_warns(start_madre, standins):
    madre = start_madre(step_runner=FailingHealthcheck)

    answer = madre.chat(ChatRequest(message="what is the status of the system"))

    assert answer.status is Status.DONE
    assert "optional_step_failed:SYSTEM_HEALTHCHECK" in answer.warnings
    check, noop = madre.get_plan(answer.plan_id).steps
    assert check.status is Status.ERROR and check.error
    assert noop.status is Status.DONE


def test_an_intent_retried_with_the_same_correlation_id_gets_the_first_answer_back(madre,
                                                                                    standins):
    request = IntentRequest(source="hormiguero", action="ping", target="hermes",
                            correlation_id="scan-42")
    first = madre.submit_intent(request)

    again = madre.submit_intent(request)

    assert again.duplicate and not first.duplicate
    assert again.intent_id == first.intent_id == "scan-42"
    assert again.plan_id == first.plan_id
    assert madre.wait_for_plan(first.plan_id, WAIT).status is Status.DONE
    assert len(table_rows(madre, "intents_log")) == 1
    assert len(table_rows(madre, "tasks")) == 1
    assert len(standins.recorder.calls("hermes")) == 1

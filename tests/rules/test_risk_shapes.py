"""The risk policy fails closed: every shape of a dangerous verb, by chat and by control, for
every target; the same verb gets the same risk on both paths; harmless talk stays LOW."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from risk_shapes import (
    ALL_TARGETS,
    CHAT_FALSE_FRIENDS,
    MODULE_TARGETS,
    PROTECTED,
    SAME_REQUESTS,
    accented,
    dangerous_shapes,
)

from madre.model import DSL, Decision, Risk
from madre.rules.parsing import fallback_parse
from madre.rules.policy import classify, classify_dsl
from madre.rules.reading import merge
from madre.rules.tables import DEFAULT_TABLES, tokenize
from madre.rules.vocabulary import CAUTION, CLASS_RISK, VerbClass

SHAPES = dangerous_shapes()
CHAT_SHAPES = [s for s in SHAPES if s not in CHAT_FALSE_FRIENDS]


def chat_decision(message: str) -> Decision:
    return classify_dsl(fallback_parse(message))


# --------------------------------------------------------------------------- every shape


def test_the_generated_shapes_cover_both_languages_phrases_and_commands() -> None:
    assert {"deleting", "deletion", "shutting down", "powered off", "borrando", "apagando",
            "rm -rf", "kill -9", "DROP TABLE users", "scale to zero"} <= set(SHAPES)
    assert len(SHAPES) > 300


def test_no_shape_of_a_dangerous_verb_is_low_on_control_for_any_module() -> None:
    low = [(t, s) for s in SHAPES for t in MODULE_TARGETS if classify(t, s).risk is Risk.LOW]
    assert low == []


def test_every_shape_of_a_dangerous_verb_aimed_at_madre_or_the_gateway_is_denied_on_control(
) -> None:
    allowed = [(t, s) for s in SHAPES for t in PROTECTED if not classify(t, s).denied]
    assert allowed == []


def test_no_shape_of_a_dangerous_verb_is_low_in_chat_for_any_module() -> None:
    low = [m for s in CHAT_SHAPES for t in MODULE_TARGETS
           if chat_decision(m := f"please {s} the {t} now").risk is Risk.LOW]
    assert low == []


def test_every_shape_of_a_dangerous_verb_naming_madre_or_the_gateway_in_chat_is_denied() -> None:
    allowed = [m for s in CHAT_SHAPES for t in PROTECTED
               if not chat_decision(m := f"{s} {t}").denied]
    assert allowed == []


_SEPARATORS = st.sampled_from([" ", "-", "_", "  ", " - "])
_CASES = st.sampled_from([str.lower, str.upper, str.title, str.swapcase, str.capitalize])
_BEFORE = st.sampled_from(["", "please ", "now ", "could you ", "por favor ", "ok, ", "hey "])
_AFTER = st.sampled_from(["", " now", " please", " ya", " right away", "!", " por favor"])


def _shape(data: st.DataObject, pool: list[str]) -> str:
    words = data.draw(st.sampled_from(pool)).split(" ")
    joined = data.draw(_SEPARATORS).join(words)
    return accented(data.draw(_CASES)(joined), data.draw(st.integers(1, 4)))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), target=st.sampled_from(ALL_TARGETS))
def test_case_separators_and_accents_never_make_a_control_action_low(
    data: st.DataObject, target: str
) -> None:
    decision = classify(data.draw(_CASES)(target), _shape(data, SHAPES))
    assert decision.risk is not Risk.LOW
    assert decision.denied == (target in PROTECTED)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), target=st.sampled_from([*ALL_TARGETS, "Tentáculo Link", "gateway"]))
def test_surrounding_words_case_and_accents_never_make_a_chat_request_low(
    data: st.DataObject, target: str
) -> None:
    shape = _shape(data, CHAT_SHAPES)
    before = data.draw(_BEFORE)
    if tokenize(shape) == ("para",):  # "para" is a stop only where a sentence starts
        before = before.replace("could you ", "")
    message = f"{before}{shape} the {target}{data.draw(_AFTER)}"
    decision = chat_decision(message)
    assert decision.risk is not Risk.LOW
    assert decision.denied == ("_".join(tokenize(target)) in (*PROTECTED, "gateway"))


@pytest.mark.parametrize("target",
                         ["madre", "tentaculo_link", "gateway", "MADRE", "Tentaculo-Link"])
@pytest.mark.parametrize("action", ["restart", "reboot", "Re-Start", "reiniciar", "reload"])
def test_restarting_madre_or_the_gateway_waits_for_a_human_and_is_not_denied(
    target: str, action: str
) -> None:
    decision = classify(target, action)
    assert (decision.denied, decision.risk, decision.requires_confirmation) == (
        False, Risk.MED, True)
    assert not chat_decision(f"{action} {target}").denied


@pytest.mark.parametrize("message", [
    "stop hermes and then madre", "shut down everything, madre too", "apaga hermes y madre",
    "kill the tentaculo link after hermes", "madre, please shut yourself down",
])
def test_a_chat_stop_or_destroy_naming_a_protected_target_anywhere_is_denied(message: str) -> None:
    assert chat_decision(message).denied


# --------------------------------------------------------------------------- one classifier


def _every_form() -> list[tuple[VerbClass, str]]:
    return [(kind, form) for kind, forms in DEFAULT_TABLES.classes().items() for form in forms]


@pytest.mark.parametrize(("kind", "form"), _every_form(), ids=lambda v: str(v))
def test_every_form_in_the_tables_is_read_with_its_class_risk_or_more_caution(
    kind: VerbClass, form: str
) -> None:
    read_as = DEFAULT_TABLES.resolve(form)  # "quit" is also Spanish "quitar": destroy, not stop
    assert read_as is not None and CAUTION[read_as] >= CAUTION[kind]
    assert classify("hermes", form).risk is CLASS_RISK[kind]


def test_chat_and_control_give_every_verb_of_the_tables_the_same_risk_for_every_target() -> None:
    different = []
    for _, form in _every_form():
        for target in ALL_TARGETS:
            control, chat = classify(target, form), chat_decision(f"{form} {target}")
            if (control.risk, control.denied) != (chat.risk, chat.denied):
                different.append((form, target, control.risk, chat.risk))
    assert different == []


@pytest.mark.parametrize(("message", "target", "action", "risk"), SAME_REQUESTS)
def test_the_requests_the_issue_found_judged_twice_now_get_one_risk(
    message: str, target: str, action: str, risk: Risk
) -> None:
    assert chat_decision(message).risk is classify(target, action).risk is risk


def test_the_chat_reading_carries_the_canonical_verb_the_policy_judges() -> None:
    dsl = fallback_parse("please redeploy hermes")
    assert (dsl.action, dsl.target) == ("deploy", "hermes")


def test_an_unknown_control_action_waits_and_says_why() -> None:
    assert classify("hermes", "frobnicate") == Decision(
        risk=Risk.MED, requires_confirmation=True,
        reason="unknown action 'frobnicate': waits for confirmation")


@pytest.mark.parametrize("text", ["frobnicate madre", "hello there", "tell me about hermes"])
def test_a_chat_message_with_no_verb_madre_knows_is_a_conversation(text: str) -> None:
    dsl = fallback_parse(text)
    assert (dsl.action, chat_decision(text).risk) == ("chat", Risk.LOW)


# --------------------------------------------------------------------------- switch's reading


def _switch(action: str, target: str | None = None) -> DSL:
    return DSL(domain="general", action=action, target=target, original_text="x")


def test_switch_may_raise_a_risk() -> None:
    merged = merge(_switch("delete", "hermes"), fallback_parse("tidy hermes up"))
    assert classify_dsl(merged).risk is Risk.HIGH


def test_switch_may_never_lower_a_risk() -> None:
    local = fallback_parse("please power off hermes")
    assert classify_dsl(merge(_switch("chat", "hermes"), local)).risk is Risk.HIGH


def test_switch_may_never_lift_a_denial() -> None:
    local = fallback_parse("shut down madre")
    assert classify_dsl(merge(_switch("status", "madre"), local)).denied


def test_a_switch_action_madre_does_not_know_waits_for_confirmation() -> None:
    merged = merge(_switch("frobnicate", "hermes"), fallback_parse("hello hermes"))
    assert classify_dsl(merged).risk is Risk.MED


# --------------------------------------------------------------------------- harmless talk

HARMLESS = [
    "hello there", "how are you today?", "tell me a joke about synthesizers", "mix these 3 stems",
    "apply eq and compression to vocal stem", "master the track for streaming",
    "normalize the vocals to -14 LUFS", "render the song as wav", "export the mix in mp3 format",
    "what is the status of hermes?", "is the backup running?", "show me my skills",
    "that guitar solo is a killer", "check the status", "how do I use it", "what is vx11",
    "the drop hits hard at 1:30", "make the drop louder", "add some reverb to the snare",
    "what format should I use?", "play a C major scale", "the terminal says hello",
    "quite a good mix", "hey mate, nice track", "show the deployment status",
    "check the configuration", "normal levels please", "list the hermes providers",
    "run the tests", "analyze the logs", "scan the repo with hormiguero", "status of the mix",
    "hola, ¿qué tal?", "mezcla estas tres pistas", "ecualiza la voz y comprime la batería",
    "masteriza el disco", "¿cuál es el estado del sistema?", "muéstrame los planes",
    "¿cómo se usa?", "mezcla estas pistas para la radio", "gracias, suena genial",
    "el solo de guitarra es una pasada", "en formato wav por favor", "exporta la mezcla",
    "renderiza la pista en formato flac", "¿qué tal suena la voz?", "sube el volumen",
    "quiero ver los planes", "la pared del estudio", "dame la información del sistema",
]


@pytest.mark.parametrize("message", HARMLESS)
def test_harmless_messages_stay_low_and_run_at_once(message: str) -> None:
    decision = chat_decision(message)
    assert (decision.risk, decision.requires_confirmation, decision.denied) == (
        Risk.LOW, False, False)


# --------------------------------------------------------------------------- README


def test_the_readme_lists_every_verb_of_the_tables_in_its_class_row() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How Madre judges risk", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines()
            if line.startswith("| ") and line.count("|") == 6}
    missing = [(kind.value, form) for kind, forms in DEFAULT_TABLES.classes().items()
               for form in forms if f" {form}," not in rows[kind.value].replace(" |", ",")]
    assert missing == []

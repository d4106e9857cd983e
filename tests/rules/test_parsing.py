"""The local fallback parser: whole words, English and Spanish, parameters, session mode."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madre.contracts.fields import MAX_MESSAGE_CHARS
from madre.model import DSL, Mode
from madre.rules.parsing import (
    DESTRUCTIVE_WARNING,
    fallback_parse,
    mentions_job,
    mode_for,
)
from madre.rules.policy import classify_dsl

# --------------------------------------------------------------------------- whole words


def test_show_me_my_skills_is_a_list_not_a_kill() -> None:
    dsl = fallback_parse("show me my skills")
    assert (dsl.action, dsl.warnings) == ("list", [])


def test_send_a_request_is_not_audio() -> None:
    assert fallback_parse("send a request").domain == "general"


def test_restart_the_server_is_a_restart_not_a_run() -> None:
    assert fallback_parse("restart the server").action == "restart"


def test_unstoppable_is_not_a_stop() -> None:
    assert fallback_parse("an unstoppable groove").action != "stop"


def test_an_underscore_separates_words() -> None:
    assert fallback_parse("delete_all").action == "delete"


# --------------------------------------------------------------------------- vocabularies

DESTRUCTIVE_TEXTS = [
    "delete all data", "deleting the logs", "deleted everything", "remove the cache",
    "drop table users", "destroy the cluster", "kill the process", "terminate it",
    "reset everything", "wipe the disk", "truncate the table", "erase my history",
    "purge the queue", "Reset everything / drop table",
    "borrar todo", "borra los logs", "borrá eso", "eliminar la base", "elimina el cache",
    "destruir el servidor", "destruye todo", "matar el proceso", "mata el proceso",
    "resetear la base", "resetea todo", "vaciar la cola", "vacía la cola", "truncar la tabla",
    "purgar la cola",
]


@pytest.mark.parametrize("text", DESTRUCTIVE_TEXTS)
def test_destructive_verbs_are_a_system_delete_with_a_warning(text: str) -> None:
    dsl = fallback_parse(text)
    assert (dsl.domain, dsl.action, dsl.confidence) == ("system", "delete", 0.9)
    assert dsl.warnings == [DESTRUCTIVE_WARNING]


ACTION_TEXTS = [
    ("stop the server", "stop"), ("pause the queue", "stop"), ("halt now", "stop"),
    ("shutdown the box", "stop"), ("shut down the box", "stop"),
    ("detener el servidor", "stop"), ("detén el servidor", "stop"), ("deten el servidor", "stop"),
    ("parar todo", "stop"), ("para el servidor", "stop"), ("pausar la cola", "stop"),
    ("restart the server", "restart"), ("reboot it", "restart"),
    ("reiniciar el servidor", "restart"), ("reinicia hermes", "restart"),
    ("run it", "run"), ("execute the plan", "run"), ("launch it", "run"), ("start it", "run"),
    ("ejecutar eso", "run"), ("ejecuta eso", "run"), ("lanzar eso", "run"), ("lanza eso", "run"),
    ("iniciar eso", "run"), ("inicia eso", "run"),
    ("status", "status"), ("health of the system", "status"), ("healthcheck", "status"),
    ("estado del sistema", "status"), ("salud del sistema", "status"),
    ("analyze the logs", "analyze"), ("analyse the logs", "analyze"), ("check the logs", "analyze"),
    ("scan the repo", "analyze"), ("audit the repo", "analyze"), ("analizar los logs", "analyze"),
    ("analiza los logs", "analyze"), ("revisar los logs", "analyze"), ("revisa los logs", "analyze"),
    ("escanear el repo", "analyze"),
    ("list my skills", "list"), ("show me my skills", "list"), ("get the plans", "list"),
    ("display the plans", "list"), ("listar los planes", "list"), ("lista los planes", "list"),
    ("mostrar los planes", "list"), ("muestra los planes", "list"), ("quiero ver los planes", "list"),
    ("help", "help"), ("how do I use it", "help"), ("ayuda", "help"), ("¿cómo se usa?", "help"),
    ("update the docs", "update"), ("upgrade the box", "update"), ("patch it", "update"),
    ("actualizar el sistema", "update"), ("actualiza el sistema", "update"),
    ("hello there", "chat"), ("what is vx11", "chat"), ("hola", "chat"),
]


@pytest.mark.parametrize(("text", "action"), ACTION_TEXTS)
def test_each_verb_in_english_and_spanish_maps_to_its_canonical_action(text: str, action: str) -> None:
    assert fallback_parse(text).action == action


AUDIO_ACTION_TEXTS = [
    ("mix these 3 stems", "mix"), ("mixing the vocals", "mix"), ("mezcla las pistas", "mix"),
    ("mezclar las pistas", "mix"), ("blend the tracks", "mix"),
    ("master the track", "master"), ("mastering please", "master"), ("masterizar el disco", "master"),
    ("eq the vocals", "eq"), ("equalize the track", "eq"), ("ecualizar la voz", "eq"),
    ("ecualiza la voz", "eq"),
    ("compress the drums", "compress"), ("more compression", "compress"),
    ("comprimir la pista", "compress"),
    ("normalize the track", "normalize"), ("normalizar la pista", "normalize"),
    ("render the song", "render"), ("renderizar la pista", "render"),
]


@pytest.mark.parametrize(("text", "action"), AUDIO_ACTION_TEXTS)
def test_audio_verbs_are_audio_actions_in_the_audio_domain(text: str, action: str) -> None:
    dsl = fallback_parse(text)
    assert (dsl.domain, dsl.action) == ("audio", action)


def test_para_as_a_preposition_is_not_a_stop() -> None:
    assert fallback_parse("mezcla estas pistas para la radio").action == "mix"


# --------------------------------------------------------------------------- priority


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("stop and delete everything", "delete"),
        ("stop and restart the server", "stop"),
        ("restart and run the mix", "restart"),
        ("run the mix", "mix"),
        ("run a status check", "run"),
        ("check the status", "status"),
        ("show the analysis and check it", "analyze"),
        ("show me how", "list"),
        ("help me update", "update"),  # the most cautious verb wins: update is MED
    ],
)
def test_the_documented_priority_order_picks_one_action(text: str, action: str) -> None:
    assert fallback_parse(text).action == action


# --------------------------------------------------------------------------- domain


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("restart the mix", "system"),
        ("stop the audio", "system"),
        ("delete the track", "system"),
        ("status of the mix", "audio"),
        ("update the reaper plugin", "audio"),
        ("update the docs", "system"),
        ("run the backup", "spawner"),
        ("ejecuta la tarea", "spawner"),
        ("run the render script", "audio"),
        ("run the tests", "general"),
        ("list the hermes providers", "general"),
        ("open the shub", "audio"),
        ("hello there", "general"),
    ],
)
def test_domain_follows_the_action_and_the_vocabulary(text: str, domain: str) -> None:
    assert fallback_parse(text).domain == domain


def test_a_job_that_is_only_described_is_not_run() -> None:
    assert fallback_parse("is the backup running?").action == "chat"


def test_mentions_job_matches_whole_words_only() -> None:
    assert mentions_job("launch the nightly backup") and not mentions_job("multitasking")


# --------------------------------------------------------------------------- target


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("status of switch", "switch"), ("ask hermes", "hermes"), ("scan with hormiguero", "hormiguero"),
        ("check manifestator drift", "manifestator"), ("open shub", "shub"),
        ("run on spawner", "spawner"), ("restart madre", "madre"), ("kill tentaculo_link", "tentaculo_link"),
        ("stop tentaculo", "tentaculo_link"), ("stop the tentaculo link", "tentaculo_link"),
        ("restart the gateway", "tentaculo_link"), ("ask hermes then switch", "hermes"),
        ("mix these 3 stems", None), ("hello there", None), ("hermeses", None),
    ],
)
def test_target_is_the_first_module_named_as_a_whole_word(text: str, target: str | None) -> None:
    assert fallback_parse(text).target == target


# --------------------------------------------------------------------------- parameters


def test_original_message_is_always_a_parameter_and_the_original_text() -> None:
    dsl = fallback_parse("Hello There")
    assert dsl.parameters["original_message"] == dsl.original_text == "Hello There"


@pytest.mark.parametrize(
    ("text", "count", "obj"),
    [
        ("mix these 3 stems", 3, "stems"),
        ("mix three stems", 3, "stems"),
        ("mezcla tres pistas", 3, "pistas"),
        ("run 10 jobs", 10, "jobs"),
        ("render one of the 2 songs", 2, "songs"),
    ],
)
def test_a_count_is_a_number_followed_by_a_noun(text: str, count: int, obj: str) -> None:
    params = fallback_parse(text).parameters
    assert (params["count"], params["object"]) == (count, obj)


def test_a_lone_number_is_not_a_count() -> None:
    assert "count" not in fallback_parse("mix 3").parameters


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("create a job called nightly-sync", "nightly-sync"),
        ("render the mix named Final.", "Final"),
        ("crea una tarea llamada respaldo", "respaldo"),
        ("mix 'Big Song' please", "Big Song"),
        ('run "Nightly Backup" called other', "Nightly Backup"),
        ("don't delete 'prod db'", "prod db"),
    ],
)
def test_a_name_comes_from_quotes_first_then_from_named_or_called(text: str, name: str) -> None:
    assert fallback_parse(text).parameters["name"] == name


# --------------------------------------------------------------------------- confidence


@pytest.mark.parametrize(
    ("text", "confidence"),
    [("delete madre", 0.9), ("restart hermes", 0.7), ("restart the server", 0.5), ("hello", 0.3)],
)
def test_confidence_grows_with_what_was_understood(text: str, confidence: float) -> None:
    assert fallback_parse(text).confidence == confidence


# --------------------------------------------------------------------------- modes


@pytest.mark.parametrize(
    ("text", "domain", "mode"),
    [
        ("switch to audio mode", "audio", "AUDIO_ENGINEER"),
        ("modo audio por favor", "audio", "AUDIO_ENGINEER"),
        ("engineer mode", "audio", "AUDIO_ENGINEER"),
        ("back to madre mode", "general", "MADRE"),
        ("modo madre", "general", "MADRE"),
    ],
)
def test_explicit_mode_switches_are_switch_mode_actions(text: str, domain: str, mode: str) -> None:
    dsl = fallback_parse(text)
    assert (dsl.domain, dsl.action, dsl.target, dsl.parameters["mode"]) == (
        domain, "switch_mode", None, mode)


def test_a_destructive_verb_beats_a_mode_switch() -> None:
    assert fallback_parse("switch to audio mode and delete everything").action == "delete"


def test_plain_talk_in_an_audio_session_stays_audio() -> None:
    assert fallback_parse("make it warmer", session_mode=Mode.AUDIO_ENGINEER).domain == "audio"


@pytest.mark.parametrize("text", ["restart the server", "ask hermes", "run the backup"])
def test_system_signals_leave_an_audio_session_domain(text: str) -> None:
    assert fallback_parse(text, session_mode=Mode.AUDIO_ENGINEER).domain != "audio"


def test_plain_talk_in_a_madre_session_is_general() -> None:
    assert fallback_parse("make it warmer", session_mode=Mode.MADRE).domain == "general"


@pytest.mark.parametrize(
    ("dsl", "session", "mode"),
    [
        (DSL(domain="audio", action="mix"), Mode.MADRE, Mode.AUDIO_ENGINEER),
        (DSL(domain="general", action="switch_mode", parameters={"mode": "AUDIO_ENGINEER"}),
         Mode.MADRE, Mode.AUDIO_ENGINEER),
        (DSL(domain="general", action="switch_mode", parameters={"mode": "MADRE"}),
         Mode.AUDIO_ENGINEER, Mode.MADRE),
        (DSL(domain="audio", action="switch_mode", parameters={"mode": "MADRE"}),
         Mode.AUDIO_ENGINEER, Mode.MADRE),
        (DSL(domain="system", action="restart"), Mode.AUDIO_ENGINEER, Mode.MADRE),
        (DSL(domain="spawner", action="run"), Mode.AUDIO_ENGINEER, Mode.MADRE),
        (DSL(domain="general", action="list", target="hermes"), Mode.AUDIO_ENGINEER, Mode.MADRE),
        (DSL(domain="general", action="list", target="shub"), Mode.AUDIO_ENGINEER,
         Mode.AUDIO_ENGINEER),
        (DSL(domain="general", action="chat"), Mode.AUDIO_ENGINEER, Mode.AUDIO_ENGINEER),
        (DSL(domain="general", action="chat"), Mode.MADRE, Mode.MADRE),
        (DSL(domain="general", action="chat", parameters={"mode": "fast"}), Mode.MADRE, Mode.MADRE),
    ],
)
def test_mode_for_follows_explicit_switches_then_domain_then_target(
    dsl: DSL, session: Mode, mode: Mode
) -> None:
    assert mode_for(dsl, session) == mode


# --------------------------------------------------------------------------- the original's table

# Contract §3.1 worked examples with OUR outcomes (the original's differ where it was wrong).
ORIGINAL_EXAMPLES = [
    ("mix these 3 stems", "audio", "mix", "LOW", False),
    ("delete all data", "system", "delete", "HIGH", True),
    ("please stop the music", "system", "stop", "HIGH", True),
    ("run the backup", "spawner", "run", "LOW", False),
    ("check status", "system", "status", "LOW", False),
    ("what is vx11", "general", "chat", "LOW", False),
    ("how do I use it", "general", "help", "LOW", False),
    ("hello there", "general", "chat", "LOW", False),
    ("Reset everything / drop table", "system", "delete", "HIGH", True),
    ("update the docs", "system", "update", "MED", True),
    ("show me my skills", "general", "list", "LOW", False),
    ("send a request", "general", "chat", "LOW", False),
    ("restart the server", "system", "restart", "MED", True),
]


@pytest.mark.parametrize(("text", "domain", "action", "risk", "confirm"), ORIGINAL_EXAMPLES)
def test_the_originals_worked_examples_get_our_outcomes(
    text: str, domain: str, action: str, risk: str, confirm: bool
) -> None:
    dsl = fallback_parse(text)
    decision = classify_dsl(dsl)
    assert (dsl.domain, dsl.action, decision.risk, decision.requires_confirmation) == (
        domain, action, risk, confirm)


# --------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=MAX_MESSAGE_CHARS), audio=st.booleans())
def test_fallback_parse_never_raises_and_always_returns_a_dsl(text: str, audio: bool) -> None:
    mode = Mode.AUDIO_ENGINEER if audio else Mode.MADRE
    dsl = fallback_parse(text, session_mode=mode)
    assert isinstance(dsl, DSL)
    assert dsl.original_text == text and dsl.parameters["original_message"] == text
    assert 0.0 < dsl.confidence <= 1.0


_LETTERS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)


@settings(deadline=None)
@given(prefix=_LETTERS, word=st.sampled_from(["kill", "delete", "drop", "reset", "borra", "mata"]),
       suffix=_LETTERS)
def test_a_destructive_word_inside_another_word_is_not_destructive(
    prefix: str, word: str, suffix: str
) -> None:
    assert fallback_parse(f"show {prefix}{word}{suffix} now").action != "delete"

"""MADRE_POLICY_FILE: a TOML file adds verbs and protected targets; it can add caution, never
remove it, and a bad file is refused with a message that names the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from madre.model import Risk
from madre.errors import ConfigError
from madre.rules.parsing import fallback_parse
from madre.rules.policy import classify, classify_dsl
from madre.rules.policy_file import load_policy_file, parse_policy
from madre.rules.tables import DEFAULT_TABLES
from madre.settings import load_settings

EXAMPLE = """\
# Our own additions to Madre's risk tables.
protected_targets = ["postgres", "vault"]

[verbs]
destroy = ["vaporize", "defenestrate"]
stop = ["mothball"]
change = ["recalibrate", "spin up"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tables(tmp_path: Path):
    return load_policy_file(write(tmp_path, EXAMPLE))


# --------------------------------------------------------------------------- extends


@pytest.mark.parametrize(("action", "risk"), [
    ("defenestrate", Risk.HIGH), ("Vaporizing", Risk.HIGH), ("mothball", Risk.HIGH),
    ("recalibrate", Risk.MED), ("spin up", Risk.MED), ("spin-the-thing-up", Risk.MED),
])
def test_a_policy_file_adds_verbs_to_their_class(tables, action: str, risk: Risk) -> None:
    assert classify("hermes", action, tables=tables).risk is risk
    assert classify("hermes", action).risk is Risk.MED  # unknown without the file: it waits


def test_a_file_verb_reads_the_same_in_chat_as_on_control(tables) -> None:
    dsl = fallback_parse("please recalibrate hermes", tables=tables)
    assert (dsl.action, classify_dsl(dsl, tables=tables).risk) == ("recalibrate", Risk.MED)
    assert fallback_parse("defenestrate hermes", tables=tables).action == "delete"


@pytest.mark.parametrize("target", ["postgres", "vault", "madre"])
def test_a_policy_file_adds_protected_targets_that_are_never_stopped_or_destroyed(
    tables, target: str
) -> None:
    assert classify(target, "shut down", tables=tables).denied
    assert classify(target, "defenestrate", tables=tables).denied
    assert classify_dsl(fallback_parse(f"please drop {target} now", tables=tables),
                        tables=tables).denied
    assert not classify(target, "restart", tables=tables).denied


def test_without_the_file_an_added_target_is_only_high(tables) -> None:
    assert not classify("postgres", "delete").denied
    assert classify("postgres", "delete").risk is Risk.HIGH


def test_the_built_in_verbs_are_all_kept(tables) -> None:
    for kind, forms in DEFAULT_TABLES.classes().items():
        assert set(forms) <= set(tables.classes()[kind])


def test_a_file_may_make_a_built_in_verb_more_cautious(tmp_path: Path) -> None:
    tables = load_policy_file(write(tmp_path, '[verbs]\nchange = ["mix"]\nstop = ["scale"]\n'))
    assert classify("shub", "mix", tables=tables).risk is Risk.MED
    assert classify("madre", "scale", tables=tables).denied


def test_an_empty_file_is_the_built_in_tables(tmp_path: Path) -> None:
    tables = load_policy_file(write(tmp_path, "# nothing to add\n"))
    assert (tables.verbs, tables.protected) == (DEFAULT_TABLES.verbs, DEFAULT_TABLES.protected)


# --------------------------------------------------------------------------- cannot weaken


@pytest.mark.parametrize(("text", "line", "word"), [
    ('[verbs]\nread = ["delete"]\n', 2, "delete"),
    ('[verbs]\nwork = [\n  "mix",\n  "shut down",\n]\n', 4, "shut down"),
    ('\n[verbs]\nchange = ["kill"]\n', 3, "kill"),
    ('[verbs]\nread = ["borrando"]\n', 2, "borrando"),
    ('[verbs]\nread = ["check the rm"]\n', 2, "check the rm"),
])
def test_a_file_that_would_make_a_dangerous_verb_less_cautious_is_refused(
    tmp_path: Path, text: str, line: int, word: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load_policy_file(path)
    message = str(refused.value)
    assert message.startswith(f"policy file {path}, line {line}: '{word}' is a built-in ")
    assert "never remove it" in message


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(("text", "line", "says"), [
    ('[verbs\nstop = ["x"]\n', 1, "not valid TOML"),
    ('protected_targets = ["a"]\nrules = 1\n', 2, "unknown key 'rules'"),
    ('[verbs]\nstop = ["halt"]\nlow = ["peek"]\n', 3, "unknown verb class 'low'"),
    ('[verbs]\nstop = "hibernate"\n', 2, "must be a list of words"),
    ('[verbs]\nstop = [1]\n', 2, "not a word in quotes"),
    ('[verbs]\nstop = ["  "]\n', 2, "is not a word or a phrase"),
    ('[verbs]\nstop = ["terminal"]\n', 2, "'terminal' is a built-in destroy verb"),
    ('[verbs]\nstop = ["mothball"]\nread = ["mothball"]\n', 3, "also listed as a stop verb"),
    ('protected_targets = "madre"\n', 1, "must be a list of words"),
    ('verbs = ["stop"]\n', 1, "'verbs' must be a table"),
])
def test_a_bad_file_is_refused_with_a_message_naming_the_file_and_the_line(
    tmp_path: Path, text: str, line: int, says: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load_policy_file(path)
    assert str(refused.value).startswith(f"policy file {path}, line {line}: ")
    assert says in str(refused.value)


def test_a_missing_file_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"policy file .*nowhere\.toml: cannot be read"):
        load_policy_file(tmp_path / "nowhere.toml")


def test_parse_policy_reads_text_without_a_file() -> None:
    assert parse_policy('[verbs]\nstop = ["hibernate"]\n').resolve("hibernating") is not None


# --------------------------------------------------------------------------- settings


def test_madre_policy_file_names_the_file_in_the_settings(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path, EXAMPLE)
    monkeypatch.setenv("MADRE_POLICY_FILE", str(path))
    assert load_settings().policy_file == str(path)


def test_a_bad_policy_file_stops_start_up_naming_the_variable_the_file_and_the_line(
    tmp_path: Path, monkeypatch
) -> None:
    path = write(tmp_path, '[verbs]\nread = ["delete"]\n')
    monkeypatch.setenv("MADRE_POLICY_FILE", str(path))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "MADRE_POLICY_FILE" in str(refused.value)
    assert f"policy file {path}, line 2: 'delete'" in str(refused.value)


def test_no_policy_file_is_the_default(monkeypatch) -> None:
    monkeypatch.delenv("MADRE_POLICY_FILE", raising=False)
    assert load_settings().policy_file is None

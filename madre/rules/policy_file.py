"""MADRE_POLICY_FILE: an operator's additions to the verb tables, in TOML.

    protected_targets = ["postgres", "vault"]   # never stopped or destroyed, like Madre

    [verbs]                                     # more words per class (English or Spanish)
    destroy = ["vaporize", "defenestrate"]
    stop = ["mothball", "park"]
    change = ["recalibrate", "spin up"]

A file adds caution, never removes it. It is refused, with a ConfigError naming the file and
the line, when it gives a word a class less cautious than the built-in tables do (a built-in
destructive verb cannot be made LOW), names a word that would not be read as that verb, has
a key or a class Madre does not know, a value that is not a list of words, or bad TOML.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from madre.errors import ConfigError
from madre.rules.tables import DEFAULT_TABLES, PolicyTables, normal_name, tokenize
from madre.rules.vocabulary import CAUTION, CLASS_RISK, Verb, VerbClass

MAX_WORD_CHARS = 64
MAX_PHRASE_WORDS = 4
_KEYS = ("protected_targets", "verbs")


class _File:
    """The file's text, to name the line a problem is on."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, *needles: str, after: int = 0) -> int:
        """The first line (1-based) from `after` on holding every needle; else `after` or 1."""
        for number, line in enumerate(self.lines[after:], start=after + 1):
            if all(n in line for n in needles):
                return number
        return max(after, 1)

    def key_line(self, key: str, after: int = 0) -> int:
        pattern = re.compile(rf"^\s*(\[\s*)?[\"']?{re.escape(key)}[\"']?\s*(=|\])")
        for number, line in enumerate(self.lines[after:], start=after + 1):
            if pattern.match(line):
                return number
        return max(after, 1)

    def error(self, line: int, problem: str) -> ConfigError:
        return ConfigError(f"policy file {self.path}, line {line}: {problem}")


def _words(source: _File, value: Any, key: str, line: int) -> list[tuple[str, int]]:
    """A list of words, each with the line it is on."""
    if not isinstance(value, list):
        raise source.error(line, f"'{key}' must be a list of words, like {key} = [\"word\"]")
    out: list[tuple[str, int]] = []
    for item in value:
        if not isinstance(item, str):
            raise source.error(line, f"'{key}' holds {item!r}, which is not a word in quotes")
        at = next((source.line_of(q, after=line - 1) for q in (f'"{item}"', f"'{item}'", item)
                   if item and any(q in text for text in source.lines[line - 1:])), line)
        words = tokenize(item)
        if not words or len(item) > MAX_WORD_CHARS or len(words) > MAX_PHRASE_WORDS:
            raise source.error(at, f"{item!r} in '{key}' is not a word or a phrase of at most "
                               f"{MAX_PHRASE_WORDS} words and {MAX_WORD_CHARS} characters")
        out.append((item, at))
    return out


def _verb_for(word: str, kind: VerbClass) -> Verb:
    # A destroy or stop word reads as the built-in "delete" / "stop" (the chat contract);
    # any other word is a verb of its own. Its language is not known: both stemmers read it.
    name = {VerbClass.DESTROY: "delete", VerbClass.STOP: "stop"}.get(kind, normal_name(word))
    return Verb(name=name, kind=kind, en=(word,), es=(word,))


def _check(source: _File, tables: PolicyTables, word: str, kind: VerbClass, line: int) -> None:
    """Refuse a word the file would weaken, or that would not be read as the file says."""
    before = DEFAULT_TABLES.resolve(word)
    after = min((tables.resolve(word), tables.resolve(word, message=True)),
                key=lambda c: CAUTION[c] if c is not None else 0)
    if before is not None and CAUTION[before] > CAUTION[kind]:
        raise source.error(line, (
            f"'{word}' is a built-in {before} verb ({CLASS_RISK[before]}); a policy file may "
            f"add caution, never remove it, so it cannot be {kind} ({CLASS_RISK[kind]})"))
    if after is None or CAUTION[after] < CAUTION[kind]:
        raise source.error(line, f"'{word}' would not be read as a {kind} verb (Madre never "
                           "reads it as a verb here); choose another word")
    if CAUTION[after] > CAUTION[kind]:
        raise source.error(line, f"'{word}' is also listed as a {after} verb in this file")


def parse_policy(text: str, path: Path | str = "<policy>") -> PolicyTables:
    """The built-in tables plus what this TOML text adds. Raises ConfigError naming the line."""
    source = _File(Path(path), text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        raise source.error(int(found.group(1)) if found else 1, f"not valid TOML: {exc}") from None
    for key in data:
        if key not in _KEYS:
            raise source.error(source.key_line(key), (
                f"unknown key '{key}'; a policy file has {' and '.join(_KEYS)}"))
    protected = set(DEFAULT_TABLES.protected)
    if "protected_targets" in data:
        line = source.key_line("protected_targets")
        for name, _ in _words(source, data["protected_targets"], "protected_targets", line):
            protected.add(normal_name(name))
    added: list[tuple[str, VerbClass, int]] = []
    verbs = data.get("verbs", {})
    verbs_line = source.key_line("verbs")
    if not isinstance(verbs, dict):
        raise source.error(verbs_line, "'verbs' must be a table: [verbs] then class = [words]")
    for key, value in verbs.items():
        line = source.key_line(key, after=verbs_line - 1)
        try:
            kind = VerbClass(key)
        except ValueError:
            classes = ", ".join(c.value for c in VerbClass)
            raise source.error(line, f"unknown verb class '{key}'; the classes are {classes}"
                               ) from None
        added.extend((word, kind, at) for word, at in _words(source, value, key, line))
    # File verbs go after the built-in ones, the most cautious class first.
    extra = sorted(added, key=lambda a: -CAUTION[a[1]])
    tables = PolicyTables(
        verbs=DEFAULT_TABLES.verbs + tuple(_verb_for(w, k) for w, k, _ in extra),
        protected=frozenset(protected), source=str(path),
    )
    for word, kind, line in added:
        _check(source, tables, word, kind, line)
    return tables


def load_policy_file(path: Path | str) -> PolicyTables:
    """Read MADRE_POLICY_FILE: the built-in tables plus the file's additions.

    Raises ConfigError naming the file (and the line, for a problem inside it).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"policy file {file}: cannot be read ({reason})") from None
    return parse_policy(text, file)


"""The local fallback parser: natural language (English and Spanish) to a DSL, without Switch.

Verbs are read with the policy's own tables (`madre.rules.tables`), so the action a message
gets is the canonical verb the policy then judges: "deploy hermes" in chat and
`{"target": "hermes", "action": "deploy"}` on control are the same request, with the same risk.
Whole words only, after stemming, never substrings: the original's substring matching turned
"skills" into "kill" and "request" into "eq".

When a message holds several verbs the most cautious one is the action (destroy > stop >
overwrite > change > everyday work > read), then the first in the tables (mix before run,
status before analyze before list before help). A mode switch ("modo audio") counts only when
nothing riskier than everyday work was said. No verb at all is a conversation: "chat".
A destructive message is a system "delete" with a warning, as in the original.
"""

from __future__ import annotations

import re
from typing import Any

from madre.model import DSL, Mode
from madre.rules.tables import (
    DEFAULT_TABLES,
    PolicyTables,
    VerbMatch,
    find_name,
    normalize,
    read_verbs,
    strongest,
    tokenize,
)
from madre.rules.vocabulary import MODULE_NAMES, SELF_HARM, VerbClass

__all__ = ["DESTRUCTIVE_WARNING", "fallback_parse", "mentions_job", "mode_for", "normalize"]

DESTRUCTIVE_WARNING = "destructive_intent_detected"

_B_OPEN = r"(?<![^\W_])"  # a word starts here: the previous character is not a letter or digit
_B_CLOSE = r"(?![^\W_])"  # "_" counts as a separator, so "delete_all" still says "delete"


def _alt(spec: str) -> str:
    """Regex source for '|'-separated words; a space inside a word means any run of whitespace."""
    words = sorted({w.strip() for w in spec.split("|") if w.strip()}, key=len, reverse=True)
    body = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words)
    return f"{_B_OPEN}(?:{body}){_B_CLOSE}"


def _words(spec: str, *extra: str) -> re.Pattern[str]:
    return re.compile("|".join((_alt(spec), *extra)))


AUDIO_ACTIONS = frozenset({"mix", "master", "eq", "compress", "normalize", "render"})
# Verbs whose request is about the system even when audio words are around ("stop the music").
_SYSTEM_KINDS = frozenset({VerbClass.DESTROY, VerbClass.STOP, VerbClass.OVERWRITE})
_UNLESS_AUDIO = frozenset({VerbClass.CHANGE})  # system unless an audio word says otherwise
_RISKY = frozenset({VerbClass.DESTROY, VerbClass.STOP, VerbClass.OVERWRITE, VerbClass.CHANGE})

_AUDIO_WORDS = _words(
    "mix|mixing|mezcla|mezclar|blend|master|mastering|masterizar|audio|stem|stems|track|tracks"
    "|pista|pistas|vocal|vocals|voz|voces|eq|equalize|ecualizar|compress|compression|comprimir"
    "|limiter|limitador|reverb|daw|reaper|plugin|plugins|shub|render|renderizar|normalize"
    "|normalizar|loudness|wav|mp3|flac|music|musica|song|songs|cancion|canciones"
)
_JOB_WORDS = _words(
    "job|jobs|task|tasks|daughter|daughters|hija|hijas|trabajo|trabajos|tarea|tareas|backup"
    "|backups|respaldo|script|scripts"
)

_MODE_SWITCHES: tuple[tuple[re.Pattern[str], Mode, str], ...] = (
    (_words("audio mode|engineer mode|audio engineer mode|modo audio|modo ingeniero"
            "|modo ingeniero de audio"), Mode.AUDIO_ENGINEER, "audio"),
    (_words("madre mode|modo madre"), Mode.MADRE, "general"),
)

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6,
    "siete": 7, "ocho": 8, "nueve": 9, "diez": 10,
}
_NOT_NOUNS = frozenset({"of", "de", "del", "the", "la", "el", "los", "las", "and", "y", "or", "o"})
# At most 9 digits: int() of a long digit run is slow and capped (sys.int_info); no count is so big.
_COUNT_RE = re.compile(
    _B_OPEN + r"(\d{1,9}|" + "|".join(_NUMBER_WORDS) + r")\s+([^\W\d_]+)" + _B_CLOSE
)
_QUOTED_RE = re.compile(r"(?<!\w)(?:'([^'\n]+)'|\"([^\"\n]+)\"|“([^”\n]+)”|‘([^’\n]+)’)(?!\w)")
_NAMED_RE = re.compile(_B_OPEN + r"(?:named|called|llamad[oa])\s+([^\s'\"]+)", re.IGNORECASE)


def mentions_job(text: str) -> bool:
    """True when the text names a job (job, task, daughter, backup, script, tarea, ...)."""
    return _JOB_WORDS.search(normalize(text)) is not None


def _find_target(tokens: tuple[str, ...], matches: list[VerbMatch], best: VerbMatch | None,
                 tables: PolicyTables) -> str | None:
    """The module a message is about: the first one named (words that are part of a verb, like
    "switch" in "switch off hermes", do not count). A message that would stop or destroy
    something and names a protected target is about that target, wherever it is named, so
    "stop hermes and madre" is judged as stopping Madre."""
    said = {p for m in matches for p in m.positions}
    aliases = dict(MODULE_NAMES)
    aliases |= {name: name for name in tables.protected if name not in aliases}
    harm = best is not None and best.verb.kind in SELF_HARM
    names = [alias for alias, name in aliases.items() if not harm or name in tables.protected]
    found = find_name(tokens, names, skip=said)
    if found is None and harm:
        found = find_name(tokens, list(aliases), skip=said)
    return aliases[found[0]] if found is not None else None


def _extract_parameters(text: str, norm: str) -> dict[str, Any]:
    params: dict[str, Any] = {"original_message": text}
    for match in _COUNT_RE.finditer(norm):
        number, noun = match.groups()
        if noun not in _NOT_NOUNS:
            params["count"] = int(number) if number.isdigit() else _NUMBER_WORDS[number]
            params["object"] = noun
            break
    quoted = _QUOTED_RE.search(text)  # names keep their case: read them from the original text
    named = _NAMED_RE.search(text)
    if quoted is not None:
        params["name"] = next(g for g in quoted.groups() if g is not None).strip()
    elif named is not None and named.group(1).strip(".,;:!?"):
        params["name"] = named.group(1).strip(".,;:!?")
    return params


def _domain(best: VerbMatch | None, norm: str) -> str:
    kind = best.verb.kind if best is not None else None
    action = best.verb.name if best is not None else "chat"
    if kind in _SYSTEM_KINDS or action == "restart":
        return "system"
    if _AUDIO_WORDS.search(norm):
        return "audio"
    if kind in _UNLESS_AUDIO or action == "status":
        return "system"
    if action == "run" and _JOB_WORDS.search(norm):
        return "spawner"
    return "general"


def fallback_parse(text: str, *, session_mode: Mode | None = None,
                   tables: PolicyTables = DEFAULT_TABLES) -> DSL:
    """Parse without Switch. Never raises; text with no verb is a low-confidence "chat"."""
    norm = normalize(text)
    tokens = tokenize(text)
    params = _extract_parameters(text, norm)
    matches = read_verbs(tokens, tables, leading=True, message=True)
    best = strongest(matches)
    target = _find_target(tokens, matches, best, tables)
    kind = best.verb.kind if best is not None else None
    if kind is VerbClass.DESTROY:
        return DSL(domain="system", action=best.verb.name, target=target, parameters=params,
                   confidence=0.9, original_text=text, warnings=[DESTRUCTIVE_WARNING])
    if kind not in _RISKY:
        for pattern, mode, domain in _MODE_SWITCHES:
            if pattern.search(norm):
                switch = {**params, "mode": mode.value}
                return DSL(domain=domain, action="switch_mode", parameters=switch,
                           confidence=0.5, original_text=text)
    action = best.verb.name if best is not None else "chat"
    domain = _domain(best, norm)
    # The caller remembers the session's mode: plain talk inside an audio session stays audio.
    if domain == "general" and target is None and session_mode == Mode.AUDIO_ENGINEER:
        domain = "audio"
    confidence = 0.3 if action == "chat" else 0.7 if target is not None else 0.5
    return DSL(domain=domain, action=action, target=target, parameters=params,
               confidence=confidence, original_text=text)


def mode_for(dsl: DSL, session_mode: Mode) -> Mode:
    """The session's mode after this DSL: an explicit switch, else the domain, else the target."""
    explicit = dsl.parameters.get("mode")
    if explicit in (Mode.AUDIO_ENGINEER, Mode.MADRE):
        return Mode(explicit)
    if dsl.domain == "audio":
        return Mode.AUDIO_ENGINEER
    if dsl.domain in ("system", "spawner") or (dsl.target is not None and dsl.target != "shub"):
        return Mode.MADRE
    return session_mode

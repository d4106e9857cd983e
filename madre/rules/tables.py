"""The policy tables as a value, and how a text is read against them. Pure.

`PolicyTables` holds the verbs (by class) and the protected targets: the built-in ones
(`madre.rules.vocabulary`), or those plus what a policy file adds. `read_verbs` finds every
verb of the tables in a text, the same way for a chat message and for a control action:

  1. normalise: lower-case, strip accents ("Detén" -> "deten"), split on anything that is not a
     letter or a digit, so "Shut-Down", "shut_down" and "shut   down" are the same words;
  2. stem each word with Snowball, in English and in Spanish ("deleting" -> "delet",
     "borrando" -> "borr"), and compare stems with the stems of the tables' forms: whole words
     only, so "skills" is not "kill" and "killer" is not "kill";
  3. phrases ("power off", "scale to zero") match with up to MAX_GAP words between their words
     ("turn hermes off"), before single words, the most cautious first.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import snowballstemmer

from madre.rules.vocabulary import (
    BUILTIN_VERBS,
    CAUTION,
    LEADING_ONLY,
    NOT_VERBS,
    NOUN_USES,
    POLITE,
    PROTECTED_TARGETS,
    Verb,
    VerbClass,
)

MAX_GAP = 3  # words allowed between the words of a phrase: "shut the hermes module down"

_TOKEN_RE = re.compile(r"[^\W_]+")  # letters and digits; "_", "-", "." and spaces separate
_STEMMERS = {"en": snowballstemmer.stemmer("english"), "es": snowballstemmer.stemmer("spanish")}
_STEM_LOCK = threading.Lock()  # a Snowball stemmer keeps state while it stems: one at a time

Key = tuple[str, str]  # ("en" | "es", stem), or ("=", word) for a form matched as written


def normalize(text: str) -> str:
    """Lower-case and strip accents, so "detén" and "deten" read alike."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokenize(text: str) -> tuple[str, ...]:
    """The words of a text, normalised: "Shut-Down_now" -> ("shut", "down", "now")."""
    return tuple(_TOKEN_RE.findall(normalize(text)))


def normal_name(name: str | None) -> str:
    """A target's canonical spelling: "Tentáculo-Link " -> "tentaculo_link"."""
    return "_".join(tokenize(name or ""))


READS_KEPT = 4096  # texts whose verbs each tables object remembers


@lru_cache(maxsize=65_536)
def _stem(lang: str, word: str) -> str:
    with _STEM_LOCK:
        return str(_STEMMERS[lang].stemWord(word))


def _token_keys(word: str) -> tuple[Key, ...]:
    return ("=", word), ("en", _stem("en", word)), ("es", _stem("es", word))


def _form_keys(verb: Verb) -> Iterable[tuple[tuple[Key, ...], str]]:
    """Each form of a verb as the keys of its words, with the form's text."""
    for lang, forms in (("en", verb.en), ("es", verb.es)):
        for form in forms:
            words = tokenize(form)
            if words:
                keys = tuple(("=", w) if verb.exact else (lang, _stem(lang, w)) for w in words)
                yield keys, form


@dataclass(frozen=True)
class VerbMatch:
    """A verb found in a text: which one, the words that said it, and where they were."""

    verb: Verb
    order: int  # the verb's place in the tables: the first of two equally cautious ones wins
    words: str
    positions: tuple[int, ...]


@dataclass(frozen=True)
class PolicyTables:
    """The verb classes and the protected targets Madre judges risk with."""

    verbs: tuple[Verb, ...] = BUILTIN_VERBS
    protected: frozenset[str] = PROTECTED_TARGETS
    source: str = "built-in"
    _words: dict[Key, list[int]] = field(init=False, repr=False, compare=False)
    _phrases: list[tuple[int, tuple[Key, ...]]] = field(init=False, repr=False, compare=False)
    # What read_verbs found in words read before: the same actions and phrases come back
    # all the time, and reading them again costs more than a plan's other rules together.
    _reads: dict[tuple[tuple[str, ...], bool, bool], tuple[VerbMatch, ...]] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words: dict[Key, list[int]] = {}
        phrases: list[tuple[int, tuple[Key, ...]]] = []
        for index, verb in enumerate(self.verbs):
            for keys, _ in _form_keys(verb):
                if len(keys) == 1:
                    words.setdefault(keys[0], []).append(index)
                else:
                    phrases.append((index, keys))
        # The most cautious phrase first, then the longest ("scale to zero" before "scale"): a
        # harmless phrase never takes the words of a dangerous one.
        phrases.sort(key=lambda p: (-CAUTION[self.verbs[p[0]].kind], -len(p[1])))
        object.__setattr__(self, "_words", words)
        object.__setattr__(self, "_phrases", phrases)
        object.__setattr__(self, "_reads", {})

    def classes(self) -> dict[VerbClass, list[str]]:
        """Every form of every verb, by class, in table order (README and tests read this)."""
        out: dict[VerbClass, list[str]] = {kind: [] for kind in VerbClass}
        for verb in self.verbs:
            out[verb.kind].extend(f for f in (*verb.en, *verb.es) if f not in out[verb.kind])
        return out

    def verb_named(self, name: str) -> Verb | None:
        return next((v for v in self.verbs if v.name == name), None)

    def resolve(self, word: str, *, message: bool = False) -> VerbClass | None:
        """The class a lone word or phrase falls in with these tables, None when it is no verb."""
        best = strongest(read_verbs(tokenize(word), self, leading=True, message=message))
        return best.verb.kind if best is not None else None

    def _lookup(self, word: str) -> list[int]:
        return sorted({i for key in _token_keys(word) for i in self._words.get(key, ())})


DEFAULT_TABLES = PolicyTables()


def _blocked(tokens: tuple[str, ...], leading: bool, message: bool) -> set[int]:
    """Positions whose word is not a verb here: a LEADING_ONLY word past the start and, in a
    message (not in an action, which is all verb), false friends and nouns ("the drop")."""
    first = next((i for i, t in enumerate(tokens) if t not in POLITE), None)
    blocked = {i for i, t in enumerate(tokens)
               if t in LEADING_ONLY and not (leading and i == first)}
    if message:
        blocked |= {i for i, t in enumerate(tokens) if t in NOT_VERBS}
        blocked |= {i for i in range(1, len(tokens)) if (tokens[i - 1], tokens[i]) in NOUN_USES}
    return blocked


def _phrase_at(tokens: tuple[str, ...], keys: tuple[Key, ...], start: int,
               free: set[int]) -> tuple[int, ...] | None:
    positions = [start]
    for key in keys[1:]:
        window = range(positions[-1] + 1, min(len(tokens), positions[-1] + 2 + MAX_GAP))
        nxt = next((j for j in window if j in free and key in _token_keys(tokens[j])), None)
        if nxt is None:
            return None
        positions.append(nxt)
    return tuple(positions)


def read_verbs(tokens: tuple[str, ...], tables: PolicyTables = DEFAULT_TABLES, *,
               leading: bool = True, message: bool = False) -> list[VerbMatch]:
    """Every verb of the tables in these (normalised) words, phrases first, in text order.

    `leading`: the words start a sentence or an action, so a LEADING_ONLY word at the start is
    a verb ("para el servidor"). `message`: the words are a chat message, not an action, so
    NOT_VERBS and NOUN_USES apply ("quite" is English there, "the drop" a noun).
    """
    key = (tokens, leading, message)
    known = tables._reads.get(key)
    if known is None:
        known = tuple(_read_verbs(tokens, tables, leading=leading, message=message))
        if len(tables._reads) >= READS_KEPT:
            tables._reads.clear()  # a crude bound: a flood of new texts must not grow it
        tables._reads[key] = known
    return list(known)


def _read_verbs(tokens: tuple[str, ...], tables: PolicyTables, *, leading: bool,
                message: bool) -> list[VerbMatch]:
    free = set(range(len(tokens))) - _blocked(tokens, leading, message)
    found: list[VerbMatch] = []
    for index, keys in tables._phrases:
        for start in sorted(free):
            if start in free and keys[0] in _token_keys(tokens[start]):
                positions = _phrase_at(tokens, keys, start, free)
                if positions is not None:
                    free -= set(positions)
                    words = " ".join(tokens[p] for p in positions)
                    found.append(VerbMatch(tables.verbs[index], index, words, positions))
    for position in sorted(free):
        for index in tables._lookup(tokens[position]):
            found.append(VerbMatch(tables.verbs[index], index, tokens[position], (position,)))
    return sorted(found, key=lambda m: m.positions[0])


def strongest(matches: Iterable[VerbMatch]) -> VerbMatch | None:
    """The most cautious verb found; between equally cautious ones, the first in the tables."""
    return min(matches, key=lambda m: (-CAUTION[m.verb.kind], m.order), default=None)


def find_name(tokens: tuple[str, ...], names: Iterable[str], *,
              skip: Iterable[int] = ()) -> tuple[str, int] | None:
    """The first of `names` (e.g. "tentaculo_link") said in the words, and where it starts."""
    skipped = set(skip)
    hits: list[tuple[int, int, str]] = []
    for name in names:
        parts = tokenize(name)
        for i in range(len(tokens) - len(parts) + 1):
            span = range(i, i + len(parts))
            if parts and tokens[i:i + len(parts)] == parts and not skipped.intersection(span):
                hits.append((i, -len(parts), name))
                break
    if not hits:
        return None
    start, _, name = min(hits)
    return name, start

"""The policy tables as a value, and how a text is read against them. Pure.

`PolicyTables` holds the verbs (by class) and the protected targets: the built-in ones
(`madre.rules.vocabulary`), or those plus what a policy file adds. `read_verbs` finds every
verb of the tables in a text, the same way for a chat message and for a control action:

  1. normalise: lower-case, strip accents ("Detén" -> "deten"), split on anything that is not a
     letter or a digit, so "Shut-Down", "shut_down" and "shut   down" are the same words;
  2. stem each word with Snowball, in English and in Spanish ("deleting" -> "delet",
     "borrando" -> "borr"), and compare stems with the stems of the tables' forms: whole words
     only, so "skills" is not "kill" and "killer" is not "kill";
     A Spanish imperative with object pronouns on it ("quítalo", "bórralos", "detente") is
     also read as the imperative ("quita"): the pronouns are taken off only when what is left
     is an imperative, infinitive or gerund of a verb of the tables;
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
    CLAUSE_JOINERS,
    CONJUNCTION_AFTER,
    ENCLITICS,
    LEADING_ONLY,
    MODULE_NAMES,
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


_RISKY = frozenset({VerbClass.DESTROY, VerbClass.STOP, VerbClass.OVERWRITE, VerbClass.CHANGE})
_SOFTENED = {"c": "qu", "g": "gu", "z": "c"}  # apagar -> apague, truncar -> trunque


def spanish_forms(verb: Verb) -> set[str]:
    """A verb's one-word Spanish forms, with the imperatives, subjunctives and gerunds of its
    infinitives ("erradicar" -> "erradica", "erradique", "erradicad", "erradicando"): the
    stemmer does not reduce all of them to the infinitive's stem, and an enclitic pronoun is
    written onto them ("quítalo")."""
    out: set[str] = set()
    for form in verb.es:
        words = tokenize(form)
        if len(words) != 1:
            continue
        word = words[0]
        out.add(word)
        root, ending = word[:-2], word[-2:]
        if len(root) < 2:
            continue
        if ending == "ar":
            soft = root[:-1] + _SOFTENED.get(root[-1], root[-1])
            out |= {root + "a", root + "ad", root + "ando", soft + "e", soft + "en"}
        elif ending in ("er", "ir"):
            out |= {root + "e", root + "a", root + "an", root + ending[0] + "d", root + "iendo"}
    return out


def spanish_imperatives(verbs: Iterable[Verb]) -> frozenset[str]:
    """Every verb's `spanish_forms`: the words an enclitic pronoun may be written onto."""
    return frozenset(f for verb in verbs for f in spanish_forms(verb))


def without_enclitic(word: str, imperatives: frozenset[str]) -> str | None:
    """ "quitalo" -> "quita", when what is left is one of `imperatives`; else None."""
    for pronoun in ENCLITICS:
        rest = word[:-len(pronoun)]
        if word.endswith(pronoun) and len(rest) >= 3 and rest in imperatives:
            return rest
    return None


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
    _imperatives: frozenset[str] = field(init=False, repr=False, compare=False)
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _keys: dict[str, tuple[Key, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words: dict[Key, list[int]] = {}
        phrases: list[tuple[int, tuple[Key, ...]]] = []
        for index, verb in enumerate(self.verbs):
            for keys, _ in _form_keys(verb):
                if len(keys) == 1:
                    words.setdefault(keys[0], []).append(index)
                else:
                    phrases.append((index, keys))
        # The imperatives and subjunctives of a risky verb's infinitives, as written: a stop
        # or a destroy must not pass because the stemmer cut "erradica" short ("errad").
        for index, verb in enumerate(self.verbs):
            if verb.kind in _RISKY and not verb.exact:
                for form in spanish_forms(verb):
                    listed = words.setdefault(("=", form), [])
                    if index not in listed:
                        listed.append(index)
        # The most cautious phrase first, then the longest ("scale to zero" before "scale"): a
        # harmless phrase never takes the words of a dangerous one.
        phrases.sort(key=lambda p: (-CAUTION[self.verbs[p[0]].kind], -len(p[1])))
        object.__setattr__(self, "_words", words)
        object.__setattr__(self, "_phrases", phrases)
        object.__setattr__(self, "_reads", {})
        object.__setattr__(self, "_imperatives", spanish_imperatives(self.verbs))
        object.__setattr__(self, "_keys", {})
        names = {w for alias, name in MODULE_NAMES for w in (*tokenize(alias), *tokenize(name))}
        names |= {w for name in self.protected for w in tokenize(name)}
        object.__setattr__(self, "_names", frozenset(names))

    def keys(self, word: str) -> tuple[Key, ...]:
        """The keys a word of a text is compared by: as written, its English and Spanish
        stems, and those of its imperative when it carries an enclitic pronoun."""
        known = self._keys.get(word)
        if known is None:
            base = without_enclitic(word, self._imperatives)
            known = _token_keys(word) + (_token_keys(base) if base is not None else ())
            if len(self._keys) >= READS_KEPT * 4:
                self._keys.clear()
            self._keys[word] = known
        return known

    def is_name(self, word: str) -> bool:
        """True for a word of a module's or a protected target's name ("hermes", "link")."""
        return word in self._names

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
        return sorted({i for key in self.keys(word) for i in self._words.get(key, ())})


DEFAULT_TABLES = PolicyTables()


def _clause_start(tokens: tuple[str, ...], i: int, leading: bool, tables: PolicyTables) -> bool:
    """True where a LEADING_ONLY word is a verb: where a clause starts (the first word, after
    polite words and names said to Madre: "madre, para"; after a joining word: "y para"), or
    as the last word; never before a word that makes it a preposition ("para qué")."""
    if i + 1 < len(tokens) and tokens[i + 1] in CONJUNCTION_AFTER:
        return False
    before = tokens[:i]
    if leading and all(t in POLITE or tables.is_name(t) for t in before):
        return True
    return bool(before) and (before[-1] in CLAUSE_JOINERS or i == len(tokens) - 1)


def _blocked(tokens: tuple[str, ...], leading: bool, message: bool,
             tables: PolicyTables) -> set[int]:
    """Positions whose word is not a verb here: a LEADING_ONLY word where no clause starts
    and, in a message (not in an action, which is all verb), false friends and nouns ("the
    drop")."""
    blocked = {i for i, t in enumerate(tokens)
               if t in LEADING_ONLY and not _clause_start(tokens, i, leading, tables)}
    if message:
        blocked |= {i for i, t in enumerate(tokens) if t in NOT_VERBS}
        blocked |= {i for i in range(1, len(tokens)) if (tokens[i - 1], tokens[i]) in NOUN_USES}
    return blocked


def _phrase_at(tokens: tuple[str, ...], keys: tuple[Key, ...], start: int,
               free: set[int], tables: PolicyTables) -> tuple[int, ...] | None:
    positions = [start]
    for key in keys[1:]:
        window = range(positions[-1] + 1, min(len(tokens), positions[-1] + 2 + MAX_GAP))
        nxt = next((j for j in window if j in free and key in tables.keys(tokens[j])), None)
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
    free = set(range(len(tokens))) - _blocked(tokens, leading, message, tables)
    found: list[VerbMatch] = []
    for index, keys in tables._phrases:
        for start in sorted(free):
            if start in free and keys[0] in tables.keys(tokens[start]):
                positions = _phrase_at(tokens, keys, start, free, tables)
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

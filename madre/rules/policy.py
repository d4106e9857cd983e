"""Risk rules: what a (target, action) risks, and whether Madre refuses it. One classifier for
every intake path (chat after parsing, control, structured intents, webhooks).

The action is read with the verb tables (`madre.rules.tables`: case, separators, accents,
English and Spanish inflections, phrases), then, in order:
  1. a stop or destroy verb aimed at a protected target (Madre, the gateway, any a policy file
     adds) -> denied; restarting one is only MED: it waits for a human;
  2. no verb Madre knows -> MED: what Madre does not understand waits for a human
     ("unknown action 'frobnicate': waits for confirmation");
  3. otherwise the most cautious verb found decides: destroy, stop, overwrite -> HIGH;
     change -> MED; read-only and everyday work (audio, jobs) -> LOW;
  4. an action that says more than its verb is LOW only when Madre knows every other word
     (a verb form, a filler, a module's name, a noun of KNOWN_WORDS, a number): "run dd
     if=/dev/zero" is not "run". Any other word makes it at least MED, and the reason names
     the words ("'run' beside words Madre does not understand: 'if', 'dev', 'sda'");
  5. a chat message (a DSL with its original text) that asks to run something and looks like
     a shell command (`madre.rules.shell`) is at least MED.
MED and HIGH require a human confirmation; a denied request never runs, so it asks for none.
"""

from __future__ import annotations

from madre.model import DSL, Decision, Risk
from madre.rules.tables import (
    DEFAULT_TABLES,
    PolicyTables,
    VerbMatch,
    find_name,
    normal_name,
    read_verbs,
    strongest,
    tokenize,
)
from madre.rules.shell import shell_signs
from madre.rules.vocabulary import CLASS_RISK, KNOWN_WORDS, POLITE, SELF_HARM, VerbClass
from madre.rules.vocabulary import PROTECTED_TARGETS as _BUILTIN_PROTECTED


def _forms(kind: VerbClass) -> frozenset[str]:
    """The one-word forms of a class in the built-in tables (tests and README read these)."""
    return frozenset(f for f in DEFAULT_TABLES.classes()[kind] if len(tokenize(f)) == 1)


READ_ONLY = _forms(VerbClass.READ)
EVERYDAY_WORK = _forms(VerbClass.WORK)
MED_RISK = _forms(VerbClass.CHANGE)
HIGH_RISK = _forms(VerbClass.DESTROY) | _forms(VerbClass.STOP) | _forms(VerbClass.OVERWRITE)
SELF_DESTRUCTIVE = _forms(VerbClass.DESTROY) | _forms(VerbClass.STOP)
PROTECTED_TARGETS = DEFAULT_TABLES.protected


def _decision(risk: Risk, reason: str) -> Decision:
    return Decision(risk=risk, requires_confirmation=risk in (Risk.MED, Risk.HIGH), reason=reason)


def _denied(name: str, action: str) -> Decision:
    what = ("itself or the gateway" if name in _BUILTIN_PROTECTED
            else f"a protected target ({name} is one)")
    return Decision(risk=Risk.HIGH, requires_confirmation=False, denied=True,
                    reason=f"Madre never stops or destroys {what} ({name}/{action.strip()})")


def _self_harm(matches: list[VerbMatch]) -> bool:
    return any(m.verb.kind in SELF_HARM for m in matches)


def _judge(best: VerbMatch | None, action: str) -> Decision:
    if best is None:
        shown = " ".join(action.split())
        if not shown:
            return _decision(Risk.MED, "no action named: waits for confirmation")
        return _decision(Risk.MED, f"unknown action '{shown}': waits for confirmation")
    kind = best.verb.kind
    risk = CLASS_RISK[kind]
    if kind is VerbClass.READ:
        return _decision(risk, "read-only action")
    if kind is VerbClass.WORK:
        return _decision(risk, f"'{best.words}' is everyday work that destroys nothing")
    return _decision(risk, f"'{best.words}' is a {risk}-risk verb")


MAX_NAMED = 5  # unknown words a reason names; the rest are counted


def unknown_words(tokens: tuple[str, ...], matches: list[VerbMatch],
                  tables: PolicyTables = DEFAULT_TABLES) -> list[str]:
    """The words of an action that are neither its verbs nor words Madre knows, in order,
    once each."""
    said = {p for m in matches for p in m.positions}
    out: list[str] = []
    for i, word in enumerate(tokens):
        if i in said or word in out or word.isdigit() or word in KNOWN_WORDS or word in POLITE:
            continue
        if not tables.is_name(word):
            out.append(word)
    return out


def _not_understood(words: list[str]) -> str:
    named = ", ".join(f"'{w}'" for w in words[:MAX_NAMED])
    more = len(words) - MAX_NAMED
    return named + (f" and {more} more" if more > 0 else "")


def _with_unknown(decision: Decision, verb: str, unknown: list[str]) -> Decision:
    """The decision at MED at least, its reason naming the words Madre did not understand."""
    words = _not_understood(unknown)
    if _RANK[decision.risk] >= _RANK[Risk.MED]:
        return decision.model_copy(update={
            "reason": f"{decision.reason}; words Madre does not understand: {words}"})
    return _decision(Risk.MED, f"'{verb}' beside words Madre does not understand ({words}): "
                               "waits for confirmation")


_RANK = {Risk.LOW: 0, Risk.MED: 1, Risk.HIGH: 2}


def classify(target: str | None, action: str, *, tables: PolicyTables = DEFAULT_TABLES
             ) -> Decision:
    """The policy's decision for one (target, action). Pure; never raises on a string action."""
    tokens = tokenize(action)
    matches = read_verbs(tokens, tables, leading=True)
    name = normal_name(target)
    if name in tables.protected and _self_harm(matches):
        return _denied(name, action)
    best = strongest(matches)
    decision = _judge(best, action)
    unknown = unknown_words(tokens, matches, tables) if best is not None else []
    if best is not None and unknown:
        decision = _with_unknown(decision, best.words, unknown)
    return decision


def _asks_to_run(text: str, tables: PolicyTables) -> bool:
    return any(m.verb.name == "run"
               for m in read_verbs(tokenize(text), tables, leading=True, message=True))


def classify_dsl(dsl: DSL, *, tables: PolicyTables = DEFAULT_TABLES) -> Decision:
    """Classify a parsed request: its target when one was named, else its domain.

    A stop or destroy reading of a message that names a protected target anywhere ("stop
    hermes, then madre") is denied too, whoever parsed it: Switch's target may be another one.
    """
    decision = classify(dsl.target or dsl.domain, dsl.action, tables=tables)
    if decision.denied or not dsl.original_text:
        return decision
    if _self_harm(read_verbs(tokenize(dsl.action), tables, leading=True)):
        named = find_name(tokenize(dsl.original_text), sorted(tables.protected))
        if named is not None:
            return _denied(normal_name(named[0]), dsl.action)
    if decision.risk is Risk.LOW and _asks_to_run(dsl.original_text, tables):
        signs = shell_signs(dsl.original_text)
        if signs:
            return _decision(Risk.MED, (f"the text to run looks like a shell command "
                                        f"({', '.join(signs)}): waits for confirmation"))
    return decision

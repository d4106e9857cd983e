"""Risk rules: what a (target, action) risks, and whether Madre refuses it.

Rules, evaluated in order on the lower-cased target and the action's word tokens
("update_all" -> {"update", "all"}; never substrings, so "unstoppable" is LOW):
  1. self-destruction: a protected target (Madre, the gateway) with a destructive token -> denied;
  2. allowlist: every token is read-only -> LOW (keyed by action only: no target is a wildcard);
  3. any HIGH token -> HIGH;   4. any MED token -> MED;   5. anything else -> LOW.
MED and HIGH require a human confirmation; a denied request never runs, so it asks for none.
"""

from __future__ import annotations

import re

from madre.model import DSL, Decision, Risk

# The gateway's aliases are protected too: a structured caller may name it either way.
PROTECTED_TARGETS = frozenset({"madre", "tentaculo_link", "tentaculo", "gateway"})
SELF_DESTRUCTIVE = frozenset({
    "delete", "stop", "kill", "destroy", "terminate", "shutdown", "remove", "drop", "wipe",
    "purge", "reset", "erase",
})
READ_ONLY = frozenset({
    "status", "health", "healthcheck", "read", "list", "get", "show", "analyze", "check", "ping",
    "info", "chat", "help", "version",
})
HIGH_RISK = frozenset({
    "delete", "drop", "destroy", "reset", "migrate", "restore", "stop", "kill", "terminate",
    "wipe", "purge", "truncate", "erase", "remove", "shutdown",
})
MED_RISK = frozenset({
    "restart", "reboot", "suspend", "cleanup", "patch", "update", "upgrade", "deploy", "scale",
    "rollback",
})

_TOKEN_RE = re.compile(r"[^\W_]+")  # letters and digits; "_", "-", "." and spaces separate


def _tokens(action: str) -> tuple[str, ...]:
    return tuple(_TOKEN_RE.findall(action.strip().lower()))


def _normal_target(target: str | None) -> str:
    return re.sub(r"[\s-]+", "_", (target or "").strip().lower())


def _first(tokens: tuple[str, ...], vocabulary: frozenset[str]) -> str | None:
    return next((t for t in tokens if t in vocabulary), None)


def _decision(risk: Risk, reason: str) -> Decision:
    return Decision(risk=risk, requires_confirmation=risk in (Risk.MED, Risk.HIGH), reason=reason)


def classify(target: str | None, action: str) -> Decision:
    """The policy's decision for one (target, action). Pure; never raises on a string action."""
    tokens = _tokens(action)
    name = _normal_target(target)
    verb = _first(tokens, SELF_DESTRUCTIVE)
    if name in PROTECTED_TARGETS and verb is not None:
        return Decision(
            risk=Risk.HIGH, requires_confirmation=False, denied=True,
            reason=f"Madre never stops or destroys itself or the gateway ({name}/{action.strip()})",
        )
    if not tokens:
        return _decision(Risk.LOW, "no action named")
    if set(tokens) <= READ_ONLY:
        return _decision(Risk.LOW, "read-only action")
    if (verb := _first(tokens, HIGH_RISK)) is not None:
        return _decision(Risk.HIGH, f"'{verb}' is a HIGH-risk verb")
    if (verb := _first(tokens, MED_RISK)) is not None:
        return _decision(Risk.MED, f"'{verb}' is a MED-risk verb")
    return _decision(Risk.LOW, "no risky verb")


def classify_dsl(dsl: DSL) -> Decision:
    """Classify a parsed request: its target when one was named, else its domain."""
    return classify(dsl.target or dsl.domain, dsl.action)

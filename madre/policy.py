"""Risk rules and confirmation tokens.

Rules, evaluated in order on the lower-cased target and the action's word tokens
("update_all" -> {"update", "all"}; never substrings, so "unstoppable" is LOW):
  1. self-destruction: a protected target (Madre, the gateway) with a destructive token -> denied;
  2. allowlist: every token is read-only -> LOW (keyed by action only: no target is a wildcard);
  3. any HIGH token -> HIGH;   4. any MED token -> MED;   5. anything else -> LOW.
MED and HIGH require a human confirmation; a denied request never runs, so it asks for none.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from madre.contracts import DSL, Decision, Risk

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
TOKEN_BYTES = 24  # token_urlsafe(24) is 32 characters: above the 16-byte floor of the design


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


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class IssuedToken:
    """A confirmation token as issued: shown to the caller once; only the hash is stored."""

    token: str
    token_hash: str
    expires_at: dt.datetime

    def __repr__(self) -> str:  # tokens must never reach a log through a repr
        masked = f"{self.token_hash[:12]}…"
        return f"IssuedToken(token='***', token_hash='{masked}', expires_at={self.expires_at!r})"


def hash_token(token: str) -> str:
    """The stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(*, now: dt.datetime, ttl_seconds: float) -> IssuedToken:
    """A fresh single-use token and its hash, expiring `ttl_seconds` after `now`."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return IssuedToken(token, hash_token(token), now + dt.timedelta(seconds=ttl_seconds))


def token_matches(token: str, token_hash: str) -> bool:
    """Constant-time check of a presented token against a stored hash."""
    # Compare bytes: compare_digest refuses non-ASCII str, and a presented token is untrusted input.
    return hmac.compare_digest(hash_token(token).encode("utf-8"), token_hash.encode("utf-8"))


def _aware(moment: dt.datetime) -> dt.datetime:
    # Some databases hand back naive datetimes; ours are always UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def is_expired(expires_at: dt.datetime, now: dt.datetime) -> bool:
    """True from the expiry instant on (naive datetimes are read as UTC)."""
    return _aware(now) >= _aware(expires_at)

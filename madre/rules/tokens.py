"""Confirmation tokens: issued once, stored only as a hash, compared in constant time."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

TOKEN_BYTES = 24  # token_urlsafe(24) is 32 characters: above the 16-byte floor of the design



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

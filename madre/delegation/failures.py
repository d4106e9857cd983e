"""What a failed call to a module means: a readable reason, and whether trying again may help.

The one place that decides what is retried. By exception type and status code, never by an
error's text:
- retried: connection errors (refused, reset, DNS), timeouts, an answer cut off, and the
  statuses in RETRY_STATUSES (429, 500, 502, 503, 504);
- a 429 or 503 may say how long to wait (`Retry-After`, read by `retry_after`);
- never retried: other 4xx (the request is wrong, or not allowed), 501 (the module does not
  implement the call at all), a redirect, a non-JSON answer.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
from typing import NamedTuple

from urllib3 import exceptions as u3


class Failure(NamedTuple):
    """What a transport failure means for the caller."""

    reason: str
    retryable: bool
    timed_out: bool = False


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers that say the same call may succeed later. 501 Not Implemented is not among them:
the module does not do this at all."""

RETRY_AFTER_STATUSES = frozenset({429, 503})
"""Answers whose `Retry-After` header says how long to wait before the retry."""


def retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP-date, RFC 9110
    §10.2.3), or None when absent or unreadable. A date in the past is 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0.0, (moment - (now or dt.datetime.now(dt.UTC))).total_seconds())


def _innermost(exc: BaseException) -> BaseException:
    """The exception at the bottom of a chain (urllib3 wraps the socket's OSError)."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


def describe_failure(exc: Exception) -> Failure:
    """A readable reason for a transport failure, whether a retry may help, and whether it
    was a timeout (the circuit breaker opens at once on those). By exception type only."""
    # NewConnectionError is a subclass of ConnectTimeoutError in urllib3 2: test it first.
    if isinstance(exc, u3.NameResolutionError):
        return Failure("the module's host name does not resolve", True)
    if isinstance(exc, u3.NewConnectionError):
        cause = _innermost(exc)
        if isinstance(cause, ConnectionRefusedError):
            return Failure("connection refused (is the module running?)", True)
        if isinstance(cause, OSError) and cause.strerror:
            return Failure(f"connection failed: {cause.strerror}", True)
        return Failure(f"connection failed: {type(cause).__name__}", True)
    if isinstance(exc, u3.ConnectTimeoutError):
        return Failure("connection timed out", True, timed_out=True)
    if isinstance(exc, u3.ReadTimeoutError):
        return Failure("no answer before the read timeout", True, timed_out=True)
    if isinstance(exc, u3.ProtocolError):
        # urllib3 puts what went wrong underneath as its second argument.
        inner = exc.args[1] if len(exc.args) > 1 else _innermost(exc)
        if isinstance(inner, (http.client.IncompleteRead, u3.IncompleteRead)):
            return Failure("the answer was cut off mid-body", True)
        return Failure("the module closed the connection before answering", True)
    if isinstance(exc, u3.DecodeError):
        return Failure("the answer could not be decoded", True)
    if isinstance(exc, u3.ClosedPoolError):
        return Failure("madre is stopping: no new calls", False)
    return Failure(f"request failed: {type(exc).__name__}", False)

"""Calls to the other VX11 modules over HTTP, with urllib3.

`ModuleClient.post` is the one way Madre calls a module: token and Idempotency-Key headers,
a connect and a read timeout, bounded retries with exponential backoff and jitter. What is
retried (`RETRY_STATUSES`, `describe_failure`): connection errors, timeouts, a connection
dropped mid-answer, and the statuses that say "try again" — 429, 500, 502, 503, 504. A 429
or 503 with `Retry-After` is retried after that long (capped). Never retried: every other
4xx, 501 (the module does not do this: it never will), a non-JSON answer. Failures are told
apart by their exception type, never by their text. Whatever goes wrong comes out as
`DownstreamError` carrying the attempt count, the last status code and a readable reason;
no urllib3 exception leaves this module.

urllib3 rather than requests: Madre sends JSON to a handful of fixed addresses and needs
none of requests' cookies, hooks, proxies or redirects, which cost half of a call's CPU
(bench/chat_bench.py makes two calls per chat). One urllib3 connection pool per module
address, shared by every thread (urllib3 pools are thread-safe), keeps connections alive.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import urllib3
from urllib3 import exceptions as u3

from madre.delegation import wire
from madre.delegation.failures import (
    RETRY_AFTER_STATUSES,
    RETRY_STATUSES,
    describe_failure,
    retry_after,
)
from madre.errors import DownstreamError
from madre.version import __version__

# What http.client refuses in a header value when sending (its own check is private).
_ILLEGAL_HEADER_VALUE = re.compile(r"\n(?![ \t])|\r(?![ \t\n])|\x00")


class ConnectionPools:
    """One keep-alive connection pool per module address (scheme, host, port)."""

    def __init__(self, maxsize: int = 32) -> None:
        # maxsize: connections kept open per address; more concurrent calls than this still
        # go out (block=False), on connections closed after use.
        self._maxsize = maxsize
        self._pools: dict[tuple[str, str, int], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()
        self._closed = False

    def pool_for(self, scheme: str, host: str, port: int) -> urllib3.HTTPConnectionPool:
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._lock:
            if self._closed:
                raise u3.ClosedPoolError(None, "madre is stopping")  # type: ignore[arg-type]
            pool = self._pools.get(key)
            if pool is None:
                pool = wire.pool(scheme, host, port, maxsize=self._maxsize, block=False,
                                 retries=False)
                self._pools[key] = pool
            return pool

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


@dataclasses.dataclass(frozen=True)
class Answer:
    """A module's JSON answer and what it took to get it."""

    body: dict[str, Any]
    attempts: int
    status_code: int


def _sendable(value: str) -> bool:
    """Whether http.client will send this header value (it would raise only when sending)."""
    if _ILLEGAL_HEADER_VALUE.search(value):
        return False
    if value.isascii():
        return True
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _said(body: bytes) -> str:
    """What a refusing module said, briefly: its JSON `detail` or `error`, if any."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    said = data.get("detail") or data.get("error") if isinstance(data, dict) else None
    return f" ({str(said)[:120]})" if said else ""


class _Refused(Exception):  # noqa: N818 - carries a DownstreamError out of one attempt
    """One attempt failed: the error, and how long the module asked to wait (Retry-After)."""

    def __init__(self, error: DownstreamError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def _retry_after_of(status: int, headers: Mapping[str, str]) -> float | None:
    if status not in RETRY_AFTER_STATUSES:
        return None
    return retry_after(headers.get("retry-after"))


class ModuleClient:
    """Posts JSON to one VX11 module."""

    def __init__(
        self,
        module: str,
        base_url: str,
        *,
        token: str,
        pools: ConnectionPools,
        connect_timeout: float,
        read_timeout: float,
        retries: int = 0,
        backoff: float = 0.2,
        instance_id: str | None = None,
        retry_after_max: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.module = module
        self._instance_id = instance_id  # sent as X-Madre-Instance: who made the call
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._pools = pools
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._retries = retries
        self._backoff = backoff
        self._retry_after_max = retry_after_max
        self._sleep = sleep  # the wait between attempts (tests record it instead)
        # An address that cannot be called fails each call (as DownstreamError), not here:
        # a misconfigured module must not stop Madre from starting.
        self._address: tuple[str, str, int, str] | None = None
        self._bad_address: str | None = None
        try:
            url = urllib3.util.parse_url(self.base_url)
            if url.scheme not in ("http", "https") or not url.host:
                raise ValueError(f"{self.base_url!r} is not an http(s) URL with a host")
            port = url.port or (443 if url.scheme == "https" else 80)
            self._address = (url.scheme, url.host, port, url.path or "")
        except ValueError as exc:  # LocationParseError is a ValueError
            self._bad_address = str(exc)

    def post(self, route: str, payload: dict[str, Any], **options: Any) -> dict[str, Any]:
        """POST `payload` to `route` and return the JSON object it answers (see `call`)."""
        return self.call(route, payload, **options).body

    def call(
        self,
        route: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        request_id: str | None = None,
        retries: int | None = None,
    ) -> Answer:
        """POST `payload` to `route`: the JSON object it answers, with the attempts it took.

        Retried (`retries` times at most, exponential backoff with jitter, or the module's
        `Retry-After` up to the cap): transport errors, timeouts and RETRY_STATUSES. Not
        retried: other 4xx, 501 and non-JSON answers.

        Raises:
            DownstreamError: after the last attempt failed, or at once when a retry cannot
                help. `.attempts`, `.status_code` and `.reason` say what happened.
        """
        headers = {"X-VX11-Token": self._token, "Content-Type": "application/json",
                   "User-Agent": f"madre/{__version__}", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if correlation_id:
            headers["X-Correlation-Id"] = correlation_id
        if self._instance_id:
            headers["X-Madre-Instance"] = self._instance_id
        if request_id:
            headers["X-Request-ID"] = request_id
        for value in headers.values():
            if not _sendable(value):
                raise DownstreamError(self.module, "the request could not be built: header "
                                      f"value {value[:40]!r} is not sendable", attempts=1)
        body = json.dumps(payload, default=str).encode()
        limit = 1 + (self._retries if retries is None else retries)
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._post_once(route, body, headers, attempt)
            except _Refused as refused:
                err = refused.error
                if not err.retryable or attempt >= limit:
                    if attempt > 1:
                        err.reason = f"{err.reason} (after {attempt} attempts)"
                        err.args = (f"{self.module}: {err.reason}",)
                    raise err from None
                wait = refused.retry_after
            self._sleep(self._delay(attempt) if wait is None
                        else min(wait, self._retry_after_max))

    def _post_once(
        self, route: str, body: bytes, headers: dict[str, str], attempt: int
    ) -> Answer:
        try:
            response = self._send("POST", route, body=body, headers=headers,
                                  timeout=self._timeout)
        except ValueError as exc:
            # An address that cannot be called (bad port, a space in the host).
            raise _Refused(DownstreamError(self.module, "the request could not be built: "
                                           f"{exc}", attempts=attempt)) from None
        except u3.HTTPError as exc:
            failure = describe_failure(exc)
            raise _Refused(DownstreamError(self.module, failure.reason, attempts=attempt,
                                           retryable=failure.retryable,
                                           timed_out=failure.timed_out)) from None
        status, data = response.status, response.data
        if status >= 300:
            raise _Refused(self._status_error(status, data, attempt),
                           _retry_after_of(status, response.headers))
        try:
            answer = json.loads(data) if data else {}
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to decode
            kind = response.headers.get("content-type", "unknown content")
            raise _Refused(DownstreamError(
                self.module, f"answered {kind.split(';')[0]}, not JSON", attempts=attempt,
                status_code=status)) from None
        if not isinstance(answer, dict):
            answer = {"value": answer}
        return Answer(answer, attempt, status)

    def _status_error(self, status: int, data: bytes, attempt: int) -> DownstreamError:
        """What an answer that is not a 2xx means: its reason, and whether to retry."""
        retryable = status in RETRY_STATUSES
        if status == 429:
            reason = f"answered HTTP 429, too many requests{_said(data)}"
        elif status == 501:
            reason = f"answered HTTP 501: it does not implement this call{_said(data)}"
        elif status >= 500:
            reason = f"answered HTTP {status}"
        elif status >= 400:
            reason = f"refused the call with HTTP {status}{_said(data)}"
        else:
            reason = f"answered HTTP {status}, a redirect (not followed)"
        return DownstreamError(self.module, reason, attempts=attempt, status_code=status,
                               retryable=retryable)

    def _send(self, method: str, route: str, *, headers: dict[str, str],
              timeout: urllib3.Timeout, body: bytes | None = None) -> urllib3.BaseHTTPResponse:
        """One request on this module's pool, body read. Raises ValueError for an address
        that cannot be called, urllib3's HTTPError for what went wrong on the way."""
        if self._address is None:
            raise ValueError(self._bad_address)
        scheme, host, port, prefix = self._address
        pool = self._pools.pool_for(scheme, host, port)
        # Redirects are not followed: the token would travel on to wherever Location points.
        return pool.urlopen(method, prefix + route, body=body, headers=headers, timeout=timeout,
                            retries=False, redirect=False, preload_content=True)

    def _delay(self, attempt: int) -> float:
        # Exponential backoff with full jitter: spreads the retries of plans that failed together.
        return random.uniform(0, self._backoff * 2 ** (attempt - 1))  # noqa: S311

    def probe(self, *, timeout: float = 1.0) -> tuple[bool, str | None]:
        """GET /health: (up, reason when down). Never raises."""
        try:
            response = self._send("GET", "/health",
                                  headers={"User-Agent": f"madre/{__version__}"},
                                  timeout=urllib3.Timeout(connect=timeout, read=timeout))
        except ValueError as exc:
            return False, f"the request could not be built: {exc}"
        except u3.HTTPError as exc:
            return False, describe_failure(exc).reason
        if response.status != 200:
            return False, f"health answered HTTP {response.status}"
        return True, None

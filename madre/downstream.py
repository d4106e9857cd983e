"""Calls to the other VX11 modules over HTTP, with `requests`.

`ModuleClient.post` is the one way Madre calls a module: token and Idempotency-Key headers,
a connect and a read timeout, bounded retries with exponential backoff and jitter on
transport errors, timeouts and 5xx (never on 4xx). Whatever goes wrong comes out as
`DownstreamError` carrying the attempt count, the last status code and a readable reason;
no `requests` exception leaves this module.

`requests.Session` is not documented thread-safe, so sessions live in a `SessionPool` and
each call borrows one for its duration: connections are reused, never shared at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import queue
import random
import time
from collections.abc import Iterator
from typing import Any

import requests

from madre.version import __version__
from madre.errors import DownstreamError


class SessionPool:
    """A bounded set of `requests.Session`s lent to one thread at a time."""

    def __init__(self, size: int = 32) -> None:
        self._idle: queue.LifoQueue[requests.Session] = queue.LifoQueue()
        self._size = size
        self._made = 0
        self._closed = False

    @contextlib.contextmanager
    def session(self) -> Iterator[requests.Session]:
        try:
            session = self._idle.get_nowait()
        except queue.Empty:
            session = self._new_session()
        try:
            yield session
        finally:
            if self._closed or self._idle.qsize() >= self._size:
                session.close()
            else:
                self._idle.put(session)

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # No proxies or .netrc from the environment: modules are addressed directly, and
        # looking those up costs file-system checks on every request.
        session.trust_env = False
        session.headers["User-Agent"] = f"madre/{__version__}"
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._made += 1
        return session

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


@dataclasses.dataclass(frozen=True)
class Answer:
    """A module's JSON answer and what it took to get it."""

    body: dict[str, Any]
    attempts: int
    status_code: int


def describe_failure(exc: requests.RequestException) -> tuple[str, bool]:
    """A readable reason for a transport failure, and whether a retry may help."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out", True
    if isinstance(exc, requests.ReadTimeout):
        return "no answer before the read timeout", True
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "Connection refused" in text or "Errno 111" in text:
            return "connection refused (is the module running?)", True
        if "RemoteDisconnected" in text or "closed" in text.lower():
            return "the module closed the connection before answering", True
        return f"connection failed: {text[:160]}", True
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return "the answer was cut off mid-body", True
    return f"request failed: {type(exc).__name__}", False


def _said(body: bytes) -> str:
    """What a refusing module said, briefly: its JSON `detail` or `error`, if any."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    said = data.get("detail") or data.get("error") if isinstance(data, dict) else None
    return f" ({str(said)[:120]})" if said else ""


class ModuleClient:
    """Posts JSON to one VX11 module."""

    def __init__(
        self,
        module: str,
        base_url: str,
        *,
        token: str,
        sessions: SessionPool,
        connect_timeout: float,
        read_timeout: float,
        retries: int = 0,
        backoff: float = 0.2,
    ) -> None:
        self.module = module
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._sessions = sessions
        self._timeout = (connect_timeout, read_timeout)
        self._retries = retries
        self._backoff = backoff

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
        retries: int | None = None,
    ) -> Answer:
        """POST `payload` to `route`: the JSON object it answers, with the attempts it took.

        Transport errors, timeouts and 5xx are retried (`retries` times at most, exponential
        backoff with jitter); 4xx and non-JSON answers are not.

        Raises:
            DownstreamError: after the last attempt failed, or at once on a 4xx or a
                non-JSON answer. `.attempts`, `.status_code` and `.reason` say what happened.
        """
        headers = {"X-VX11-Token": self._token, "Content-Type": "application/json",
                   "User-Agent": f"madre/{__version__}", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if correlation_id:
            headers["X-Correlation-Id"] = correlation_id
        url = self.base_url + route
        limit = 1 + (self._retries if retries is None else retries)
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._post_once(url, payload, headers, attempt)
            except DownstreamError as err:
                if not err.retryable or attempt >= limit:
                    if attempt > 1:
                        err.reason = f"{err.reason} (after {attempt} attempts)"
                        err.args = (f"{self.module}: {err.reason}",)
                    raise
            time.sleep(self._delay(attempt))

    def _post_once(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], attempt: int
    ) -> Answer:
        try:
            # A prepared request sent as is skips Session.request's merging of cookies, hooks
            # and environment settings, which Madre does not use: a fifth of a call's CPU.
            request = requests.PreparedRequest()
            request.prepare(method="POST", url=url, headers=headers,
                            data=json.dumps(payload, default=str).encode())
            for value in headers.values():
                # http.client encodes header values as Latin-1 only when sending, and what it
                # raises then (UnicodeEncodeError) is no RequestException: check it here.
                value.encode("latin-1")
        except (requests.RequestException, ValueError, UnicodeError) as exc:
            # A header or URL that cannot be sent (a control character, a non-Latin-1 value).
            raise DownstreamError(self.module, f"the request could not be built: {exc}",
                                  attempts=attempt) from None
        try:
            with self._sessions.session() as session:
                # Redirects are not followed: requests would send X-VX11-Token on to wherever
                # the Location header points (it only strips Authorization).
                response = session.send(request, timeout=self._timeout, allow_redirects=False)
                body = response.content
        except requests.RequestException as exc:
            reason, retryable = describe_failure(exc)
            raise DownstreamError(self.module, reason, attempts=attempt, retryable=retryable,
                                  timed_out=isinstance(exc, requests.Timeout)) from None
        status = response.status_code
        if status >= 500:
            raise DownstreamError(self.module, f"answered HTTP {status}", attempts=attempt,
                                  status_code=status, retryable=True)
        if status >= 400:
            raise DownstreamError(self.module,
                                  f"refused the call with HTTP {status}{_said(body)}",
                                  attempts=attempt, status_code=status)
        if status >= 300:
            raise DownstreamError(self.module,
                                  f"answered HTTP {status}, a redirect (not followed)",
                                  attempts=attempt, status_code=status)
        try:
            data = json.loads(body) if body else {}
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to decode
            kind = response.headers.get("content-type", "unknown content")
            raise DownstreamError(self.module, f"answered {kind.split(';')[0]}, not JSON",
                                  attempts=attempt, status_code=status) from None
        if not isinstance(data, dict):
            data = {"value": data}
        return Answer(data, attempt, status)

    def _delay(self, attempt: int) -> float:
        # Exponential backoff with full jitter: spreads the retries of plans that failed together.
        return random.uniform(0, self._backoff * 2 ** (attempt - 1))  # noqa: S311

    def probe(self, *, timeout: float = 1.0) -> tuple[bool, str | None]:
        """GET /health: (up, reason when down). Never raises."""
        try:
            with self._sessions.session() as session:
                response = session.get(self.base_url + "/health", timeout=(timeout, timeout))
        except requests.RequestException as exc:
            return False, describe_failure(exc)[0]
        if response.status_code != 200:
            return False, f"health answered HTTP {response.status_code}"
        return True, None

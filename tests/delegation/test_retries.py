"""What a module call retries, against stand-ins that answer 429 with Retry-After, 501 and 503.

Retried: connection errors, timeouts, 429, 500, 502, 503, 504 — a 429 or 503 after its
`Retry-After` (capped by MADRE_RETRY_AFTER_MAX_SECONDS), others after the jittered backoff.
Never retried: other 4xx and 501. Failures are classified by exception type, not text. Each
module may have its own retry count (MADRE_<MODULE>_RETRIES).

The waits between attempts are recorded instead of slept (`sleep=waits.append`), so the tests
see exactly how long the client would have waited, without waiting.
"""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

import pytest
from helpers import TOKEN, final
from urllib3 import exceptions as u3

from madre.contracts.intake import ControlRequest
from madre.delegation.client import ConnectionPools, ModuleClient
from madre.delegation.failures import RETRY_STATUSES, describe_failure, retry_after
from madre.errors import DownstreamError
from madre.model import Status
from madre.standins import CALL_PATHS, StandinCluster

SHUB = CALL_PATHS["shub"]


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def make_client(pools: ConnectionPools, standins: StandinCluster, waits: list[float]) -> Any:
    def make(*, retries: int = 2, backoff: float = 0.01, cap: float = 10.0) -> ModuleClient:
        return ModuleClient("shub", standins.urls["shub"], token=TOKEN, pools=pools,
                            connect_timeout=0.5, read_timeout=1.0, retries=retries,
                            backoff=backoff, retry_after_max=cap, sleep=waits.append)

    return make


def failure(client: ModuleClient) -> DownstreamError:
    with pytest.raises(DownstreamError) as caught:
        client.call(SHUB, {"task": "status"}, idempotency_key="k")
    return caught.value


# --------------------------------------------------------------------------- 429 and 503


def test_a_429_is_retried_after_the_seconds_its_retry_after_asks(make_client, standins, waits):
    standins.behaviours["shub"].retry_after = 3
    standins.behaviours["shub"].fail_times(1, "busy")

    answer = make_client().call(SHUB, {"task": "status"}, idempotency_key="k")

    assert answer.attempts == 2 and answer.status_code == 200
    assert waits == [3.0]
    assert standins.recorder.idempotency_counts("shub") == {"k": 2}


def test_a_retry_after_longer_than_the_cap_waits_only_the_cap(make_client, standins, waits):
    standins.behaviours["shub"].retry_after = 3600
    standins.behaviours["shub"].fail_times(1, "busy")

    make_client(cap=2.5).call(SHUB, {"task": "status"})

    assert waits == [2.5]


def test_a_503_with_retry_after_waits_that_long_and_one_without_takes_the_backoff(
        make_client, standins, waits):
    behaviour = standins.behaviours["shub"]
    behaviour.retry_after = 2
    behaviour.fail_times(1, "unavailable")
    make_client().call(SHUB, {"task": "status"})
    assert waits == [2.0]

    waits.clear()
    behaviour.retry_after = None
    behaviour.fail_times(1, "unavailable")
    make_client(backoff=0.05).call(SHUB, {"task": "status"})
    [wait] = waits
    assert 0 <= wait <= 0.05  # the first backoff: drawn up to `backoff`


def test_a_module_that_keeps_answering_429_fails_after_its_retries_saying_so(make_client,
                                                                              standins):
    standins.behaviours["shub"].set("busy")

    err = failure(make_client(retries=2))

    assert err.attempts == 3 and err.status_code == 429 and err.retryable
    assert err.reason.startswith("answered HTTP 429, too many requests")
    assert len(standins.recorder.calls("shub")) == 3


# --------------------------------------------------------------------------- never retried


def test_a_501_is_never_retried_the_module_does_not_implement_the_call(make_client, standins,
                                                                        waits):
    standins.behaviours["shub"].set("not_implemented")

    err = failure(make_client(retries=3))

    assert err.attempts == 1 and err.status_code == 501 and not err.retryable
    assert "does not implement" in err.reason
    assert len(standins.recorder.calls("shub")) == 1
    assert waits == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 501, 505])
def test_only_the_try_again_statuses_are_retryable(status):
    assert status not in RETRY_STATUSES


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_429_and_the_gateway_and_server_errors_are_retryable(status):
    assert status in RETRY_STATUSES


# --------------------------------------------------------------------------- Retry-After


def test_retry_after_reads_delay_seconds_and_http_dates():
    now = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)

    assert retry_after("7") == 7.0
    assert retry_after(" 0 ") == 0.0
    assert retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0  # already past


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Someday, 99 Foo"])
def test_a_retry_after_that_cannot_be_read_is_ignored(value):
    assert retry_after(value) is None


# --------------------------------------------------------------------------- by type


def _caused_by(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


def test_connection_refused_is_recognised_by_its_type_whatever_the_text_says():
    wrapped = _caused_by(u3.NewConnectionError(None, "text with no hint at all"),  # type: ignore[arg-type]
                         ConnectionRefusedError(111, "nope"))

    failed = describe_failure(wrapped)  # type: ignore[arg-type]

    assert failed.reason == "connection refused (is the module running?)"
    assert failed.retryable and not failed.timed_out


def test_an_answer_cut_mid_body_is_recognised_by_the_incomplete_read_it_carries():
    cut = u3.ProtocolError("no words to match here", u3.IncompleteRead(10, 4096))
    closed = u3.ProtocolError("Connection broken: all the words", ConnectionResetError(104, "x"))

    assert describe_failure(cut).reason == "the answer was cut off mid-body"
    assert describe_failure(closed).reason == "the module closed the connection before answering"


def test_a_closed_port_is_reported_as_connection_refused(pools, waits):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        client = ModuleClient("shub", f"http://127.0.0.1:{port}", token=TOKEN, pools=pools,
                              connect_timeout=0.5, read_timeout=0.5, retries=1,
                              sleep=waits.append)
        with pytest.raises(DownstreamError) as caught:
            client.call(SHUB, {})

    assert caught.value.reason == "connection refused (is the module running?) (after 2 attempts)"
    assert len(waits) == 1


# --------------------------------------------------------------------------- per module


def test_each_module_may_have_its_own_retries(start_madre, standins):
    runtime = start_madre(step_retries=2, shub_retries=0, health_interval_seconds=3600.0)
    assert runtime.settings.module_retries("shub") == 0
    assert runtime.settings.module_retries("hermes") == 2
    for module in ("shub", "hermes"):
        standins.behaviours[module].set("unavailable")
        standins.behaviours[module].retry_after = 0

    for module, action in (("shub", "status"), ("hermes", "ping")):
        plan_id = runtime.control(ControlRequest(target=module, action=action)).plan_id
        assert plan_id is not None
        assert final(runtime, plan_id).status is Status.ERROR

    assert len(standins.recorder.calls("shub")) == 1
    assert len(standins.recorder.calls("hermes")) == 3

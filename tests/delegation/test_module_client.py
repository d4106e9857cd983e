"""`ModuleClient` against real loopback servers, without a Madre: one call is one POST with the
token, a connect and a read timeout, and an Idempotency-Key that stays the same on every retry;
transport errors, timeouts and 5xx are retried a bounded number of times, 4xx and non-JSON
answers never; whatever goes wrong comes out as `DownstreamError` with a readable reason.

Arrivals are counted by the stand-ins' recorder, so "retried twice" means the module really
saw three requests.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from helpers import TOKEN, free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from madre.delegation.client import Answer, ConnectionPools, ModuleClient
from madre.errors import DownstreamError
from madre.standins import CALL_PATHS, LoopbackServer, StandinCluster

SHUB = CALL_PATHS["shub"]
READ_TIMEOUT = 0.3


@pytest.fixture
def make_client(pools: ConnectionPools, standins: StandinCluster) -> Any:
    """A ModuleClient for `module` (base URL of its stand-in unless `url` is given)."""

    def make(module: str = "shub", *, url: str | None = None, token: str = TOKEN,
             retries: int = 0, backoff: float = 0.01, connect_timeout: float = 0.5,
             read_timeout: float = READ_TIMEOUT) -> ModuleClient:
        return ModuleClient(module, url or standins.urls[module], token=token, pools=pools,
                            connect_timeout=connect_timeout, read_timeout=read_timeout,
                            retries=retries, backoff=backoff)

    return make


def failure(client: ModuleClient, route: str = SHUB, payload: dict[str, Any] | None = None,
            **kwargs: Any) -> DownstreamError:
    """The DownstreamError one call raises (the test fails if it answers, or raises another)."""
    with pytest.raises(DownstreamError) as caught:
        client.call(route, payload or {"task": "status"}, **kwargs)
    return caught.value


# --------------------------------------------------------------------------- one call


def test_a_call_posts_json_to_base_url_plus_route_with_token_and_idempotency_key(make_client,
                                                                                  standins):
    answer = make_client().call(SHUB, {"task": "status", "params": {"deep": True}},
                                idempotency_key="step-1", correlation_id="intent-1")

    assert answer == Answer({"status": "ok", "module": "shub", "task": "status",
                             "params": {"deep": True}}, attempts=1, status_code=200)
    [arrival] = standins.recorder.calls("shub")
    assert (arrival.method, arrival.path) == ("POST", SHUB)
    assert arrival.token == TOKEN
    assert arrival.idempotency_key == "step-1"
    assert arrival.headers["x-correlation-id"] == "intent-1"
    assert arrival.headers["content-type"] == "application/json"
    assert arrival.body == {"task": "status", "params": {"deep": True}}


def test_post_answers_the_json_object_alone(make_client):
    assert make_client("hermes").post(CALL_PATHS["hermes"], {"x": 1})["echo"] == {"x": 1}


def test_a_json_answer_that_is_not_an_object_comes_back_wrapped_as_value(pools):
    async def listing(request: Request) -> Response:
        return JSONResponse([1, 2, 3])

    with LoopbackServer(Starlette(routes=[Route("/list", listing, methods=["POST"])])) as srv:
        client = ModuleClient("shub", srv.url, token=TOKEN, pools=pools,
                              connect_timeout=0.5, read_timeout=READ_TIMEOUT)
        assert client.post("/list", {}) == {"value": [1, 2, 3]}


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_a_5xx_is_tried_one_plus_retries_times_then_reported(make_client, standins, retries):
    standins.behaviours["shub"].mode = "fail"

    err = failure(make_client(retries=retries), idempotency_key="k")

    assert len(standins.recorder.calls("shub")) == 1 + retries
    assert err.attempts == 1 + retries
    assert err.status_code == 500
    assert err.retryable and not err.timed_out
    assert err.reason.startswith("answered HTTP 500")
    assert str(err).startswith("shub: answered HTTP 500")


def test_the_reason_says_how_many_attempts_were_made_once_there_were_several(make_client,
                                                                             standins):
    standins.behaviours["shub"].mode = "fail"

    assert failure(make_client(retries=2)).reason == "answered HTTP 500 (after 3 attempts)"


def test_every_retry_of_one_call_carries_the_same_idempotency_key_and_token(make_client,
                                                                            standins):
    standins.behaviours["shub"].mode = "fail"

    failure(make_client(retries=2), idempotency_key="step-42")

    arrivals = standins.recorder.calls("shub")
    assert [a.idempotency_key for a in arrivals] == ["step-42"] * 3
    assert {a.token for a in arrivals} == {TOKEN}
    assert standins.recorder.idempotency_counts("shub") == {"step-42": 3}


def test_a_call_that_fails_twice_then_succeeds_answers_after_three_attempts(make_client,
                                                                           standins):
    standins.behaviours["shub"].fail_times(2)

    answer = make_client(retries=2).call(SHUB, {"task": "status"}, idempotency_key="k")

    assert answer.attempts == 3
    assert answer.status_code == 200
    assert answer.body["module"] == "shub"
    assert standins.recorder.idempotency_counts("shub") == {"k": 3}


def test_the_retries_of_a_call_may_be_lowered_for_that_call_alone(make_client, standins):
    standins.behaviours["shub"].mode = "fail"

    err = failure(make_client(retries=3), retries=0)

    assert err.attempts == 1
    assert len(standins.recorder.calls("shub")) == 1


def test_the_backoff_before_retry_n_is_drawn_at_random_up_to_backoff_times_2_to_the_n_minus_1(
        make_client):
    client = make_client(backoff=0.1)
    for attempt in (1, 2, 3, 4):
        cap = 0.1 * 2 ** (attempt - 1)
        delays = [client._delay(attempt) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap / 2  # it grows with the attempt ...
        assert len(set(delays)) > 100  # ... and is jittered, not a fixed schedule


def test_retries_do_not_wait_longer_than_their_backoff_allows(make_client, standins):
    standins.behaviours["shub"].mode = "fail"

    failure(make_client(retries=3, backoff=0.05))

    times = [a.time for a in standins.recorder.calls("shub")]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) == 3
    for n, gap in enumerate(gaps, start=1):
        assert gap < 0.05 * 2 ** (n - 1) + 0.25  # the backoff cap plus a loopback round trip


# --------------------------------------------------------------------------- not retried


@pytest.mark.parametrize(("module", "route", "payload", "token", "mode", "status"), [
    ("shub", SHUB, {"task": "status"}, TOKEN, "unauthorized", 401),
    ("shub", SHUB, {"task": "status"}, "not-the-token", "ok", 401),
    ("shub", "/shub/no-such-route", {"task": "status"}, TOKEN, "ok", 404),
    ("switch", CALL_PATHS["switch"], {"no": "prompt"}, TOKEN, "ok", 422),
], ids=["unauthorized", "wrong-token", "unknown-route", "invalid-body"])
def test_a_4xx_is_not_retried_and_arrives_exactly_once(make_client, standins, module, route,
                                                       payload, token, mode, status):
    standins.behaviours[module].mode = mode

    err = failure(make_client(module, token=token, retries=3), route, payload)

    assert len(standins.recorder.calls(module)) == 1
    assert err.attempts == 1
    assert err.status_code == status
    assert not err.retryable
    assert err.reason.startswith(f"refused the call with HTTP {status}")


def test_a_refusal_quotes_what_the_module_said(make_client, standins):
    standins.behaviours["shub"].mode = "unauthorized"

    assert failure(make_client()).reason == "refused the call with HTTP 401 (auth_required)"


@pytest.mark.parametrize(("mode", "kind"), [("html", "text/html"),
                                            ("garbage", "application/json")])
def test_an_answer_that_is_not_json_is_reported_as_such_and_not_retried(make_client, standins,
                                                                       mode, kind):
    standins.behaviours["shub"].mode = mode

    err = failure(make_client(retries=3))

    assert err.reason == f"answered {kind}, not JSON"
    assert err.status_code == 200
    assert err.attempts == 1
    assert len(standins.recorder.calls("shub")) == 1


# --------------------------------------------------------------------------- transport failures


def test_a_connection_closed_mid_answer_is_retried_then_reported_as_cut_off(make_client,
                                                                            standins):
    standins.behaviours["shub"].mode = "close"

    err = failure(make_client(retries=1))

    assert err.reason == "the answer was cut off mid-body (after 2 attempts)"
    assert err.status_code is None and err.retryable and not err.timed_out
    assert len(standins.recorder.calls("shub")) == 2


def test_a_hanging_module_is_given_up_on_at_the_read_timeout(make_client, standins):
    standins.behaviours["shub"].mode = "hang"

    err = failure(make_client(retries=0))

    assert err.timed_out
    assert err.reason == "no answer before the read timeout"
    assert err.attempts == 1 and err.status_code is None
    assert len(standins.recorder.calls("shub")) == 1


def test_a_timeout_is_retried_like_any_transport_error(make_client, standins):
    standins.behaviours["shub"].mode = "hang"

    err = failure(make_client(retries=1), idempotency_key="k")

    assert err.timed_out
    assert err.reason == "no answer before the read timeout (after 2 attempts)"
    assert standins.recorder.idempotency_counts("shub") == {"k": 2}


def test_a_closed_port_is_connection_refused_retried_and_never_timed_out(make_client):
    err = failure(make_client(url=f"http://127.0.0.1:{free_port()}", retries=2))

    assert err.reason == "connection refused (is the module running?) (after 3 attempts)"
    assert err.attempts == 3
    assert err.retryable and not err.timed_out and err.status_code is None


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port that listens but whose accept queue is full: new connections are never set up,
    so connecting takes until the connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    yield port
    for sock in (*fillers, listener):
        sock.close()


def test_a_module_that_never_accepts_is_given_up_on_at_the_connect_timeout(make_client,
                                                                           unanswered_port):
    client = make_client(url=f"http://127.0.0.1:{unanswered_port}", connect_timeout=0.2,
                         read_timeout=30.0)

    err = failure(client)

    assert err.timed_out
    assert err.reason == "connection timed out"


# --------------------------------------------------------------------------- nothing leaks


@pytest.mark.parametrize(("url", "kwargs", "reason"), [
    ("http://127.0.0.1:99999", {}, "the request could not be built"),
    ("http://bad host", {}, "the request could not be built"),
    ("ftp://127.0.0.1", {}, "the request could not be built"),
    (None, {"correlation_id": "two\nlines"}, "the request could not be built"),
    (None, {"correlation_id": "日本語"}, "the request could not be built"),
    (None, {"idempotency_key": "\u2603"}, "the request could not be built"),
], ids=["port-out-of-range", "space-in-host", "not-http", "newline-in-header",
        "non-latin1-correlation-id", "non-latin1-idempotency-key"])
def test_a_request_that_cannot_be_sent_is_a_downstream_error_not_a_transport_exception(
        make_client, url, kwargs, reason):
    err = failure(make_client(url=url or f"http://127.0.0.1:{free_port()}", retries=2), **kwargs)

    assert err.reason.startswith(reason)
    assert err.attempts == 1  # nothing a retry could fix


@pytest.fixture
def odd_module(pools: ConnectionPools) -> Iterator[tuple[ModuleClient, list[dict[str, str]]]]:
    """A module with odd answers, and the headers of every request that reached the place its
    redirect points to."""
    reached: list[dict[str, str]] = []

    async def elsewhere(request: Request) -> Response:
        reached.append(dict(request.headers))
        return JSONResponse({"status": "ok"})

    with LoopbackServer(Starlette(routes=[Route("/x", elsewhere, methods=["GET", "POST"])]),
                        name="elsewhere") as other:

        async def redirect(request: Request) -> Response:
            return Response(status_code=307, headers={"location": other.url + "/x"})

        async def deep(request: Request) -> Response:
            return Response("[" * 100_000 + "]" * 100_000, media_type="application/json")

        app = Starlette(routes=[Route("/redirect", redirect, methods=["POST"]),
                                Route("/deep", deep, methods=["POST"])])
        with LoopbackServer(app, name="odd") as srv:
            yield ModuleClient("shub", srv.url, token=TOKEN, pools=pools,
                               connect_timeout=0.5, read_timeout=READ_TIMEOUT, retries=2), reached


def test_a_redirect_is_not_followed_so_the_token_never_travels_to_another_host(odd_module):
    client, reached = odd_module

    err = failure(client, "/redirect")

    assert err.reason == "answered HTTP 307, a redirect (not followed)"
    assert err.status_code == 307 and err.attempts == 1
    assert reached == []


def test_json_nested_too_deep_to_decode_is_reported_as_not_json(odd_module):
    client, _ = odd_module

    err = failure(client, "/deep")

    assert err.reason == "answered application/json, not JSON"
    assert err.attempts == 1


# --------------------------------------------------------------------------- connections


@pytest.fixture
def peer_module(pools: ConnectionPools) -> Iterator[tuple[Any, list[tuple[str, int]], str]]:
    """A module that answers with the path it was called on and notes the client address
    (host, port) of every request; yields (make a client, the addresses, its base URL)."""
    seen: list[tuple[str, int]] = []

    async def anything(request: Request) -> Response:
        assert request.client is not None
        seen.append((request.client.host, request.client.port))
        return JSONResponse({"path": request.url.path})

    app = Starlette(routes=[Route("/{rest:path}", anything, methods=["POST"])])
    with LoopbackServer(app, name="peer") as srv:

        def make(url: str = srv.url) -> ModuleClient:
            return ModuleClient("shub", url, token=TOKEN, pools=pools, connect_timeout=0.5,
                                read_timeout=5.0)

        yield make, seen, srv.url


def test_calls_one_after_another_reuse_one_kept_alive_connection(peer_module):
    make, seen, _ = peer_module
    client = make()

    for _ in range(5):
        client.post("/x", {})

    assert len(seen) == 5 and len(set(seen)) == 1


def test_a_base_url_with_a_path_keeps_that_path_in_front_of_every_route(peer_module):
    make, _, url = peer_module

    assert make(url + "/vx11/shub/").post("/shub/task", {}) == {"path": "/vx11/shub/shub/task"}


def test_more_calls_at_once_than_the_pool_keeps_open_all_get_their_answers(peer_module):
    make, seen, url = peer_module
    small = ConnectionPools(maxsize=2)
    client = ModuleClient("shub", url, token=TOKEN, pools=small, connect_timeout=0.5,
                          read_timeout=5.0)
    try:
        with ThreadPoolExecutor(max_workers=12) as workers:
            answers = list(workers.map(lambda n: client.post(f"/call/{n}", {}), range(48)))
    finally:
        small.close()

    assert [a["path"] for a in answers] == [f"/call/{n}" for n in range(48)]
    assert len(seen) == 48


def test_after_the_pools_are_closed_a_call_fails_at_once_saying_madre_is_stopping(peer_module):
    _, seen, url = peer_module
    closed = ConnectionPools()
    closed.close()
    client = ModuleClient("shub", url, token=TOKEN, pools=closed, connect_timeout=0.5,
                          read_timeout=5.0, retries=3)

    err = failure(client, "/x")

    assert err.reason == "madre is stopping: no new calls"
    assert err.attempts == 1 and seen == []

"""Parsing through Switch behind a circuit breaker, with the local parser as the fallback.

While Switch hangs, the first chat pays the parse timeout and falls back; the breaker opens,
so the chats after it do not reach Switch at all (the recorder counts the intent_parse
requests Switch received: that count is the proof they did not wait for the timeout). After
the reset period exactly one chat probes Switch; its outcome closes the breaker or keeps it
open. Time is a fake clock the test advances: nothing sleeps.

The chats here ask for the system's status, whose plan (SYSTEM_HEALTHCHECK, NOOP) makes no
call to Switch: every request Switch receives is a parse. Every test runs on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from doubles import FakeClock
from helpers import free_port, make_settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from madre import Madre, Settings
from madre.clock import Clock
from madre.contracts.intake import ChatRequest, ChatResponse
from madre.delegation.breaker import BreakerState
from madre.model import Provider, Status, StepType
from madre.standins import CALL_PATHS, LoopbackServer, Recorder, StandinCluster

STATUS = "what is the status of the system"
FALLBACK = "fallback_parser_used"
PARSE_TIMEOUT = 0.3
FAILURES = 3


@pytest.fixture
def settings(database_url: str, standins: StandinCluster) -> Settings:
    return make_settings(database_url, standins, parse_timeout_seconds=PARSE_TIMEOUT,
                         breaker_failures=FAILURES, breaker_reset_seconds=15.0,
                         health_interval_seconds=3600.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def madre(settings: Settings, clock: FakeClock) -> Iterator[Madre]:
    """A Madre whose monotonic clock (the breaker's) is `clock`."""
    with Madre(settings, clock=Clock(monotonic=clock)) as runtime:
        yield runtime


def parse_calls(recorder: Recorder) -> int:
    """How many intent_parse requests Switch has received."""
    return sum(1 for r in recorder.calls("switch")
               if isinstance(r.body, dict)
               and (r.body.get("metadata") or {}).get("purpose") == "intent_parse")


def chat(madre: Madre, message: str = STATUS) -> ChatResponse:
    answer = madre.chat(ChatRequest(message=message))
    assert answer.status is Status.DONE, answer.response
    return answer


def fell_back(answer: ChatResponse) -> bool:
    return answer.provider is Provider.FALLBACK_LOCAL and FALLBACK in answer.warnings


def parsed_by_switch(answer: ChatResponse) -> bool:
    return answer.provider is Provider.SWITCH and FALLBACK not in answer.warnings


def past_reset(madre: Madre, clock: FakeClock) -> None:
    clock.advance(madre.settings.breaker_reset_seconds + 0.1)


@pytest.fixture
def outage(madre: Madre, standins: StandinCluster, clock: FakeClock) -> ChatResponse:
    """Switch hangs and one chat has already paid the parse timeout: the breaker is open."""
    standins.behaviours["switch"].mode = "hang"
    first = chat(madre)
    assert madre.switch_breaker.state is BreakerState.OPEN
    return first


# --------------------------------------------------------------------------- the plan used here


def test_the_status_chat_used_here_makes_no_call_to_switch_itself(madre, standins):
    answer = chat(madre)

    assert [s.type for s in madre.get_plan(answer.plan_id).steps] == [
        StepType.SYSTEM_HEALTHCHECK, StepType.NOOP]
    assert len(standins.recorder.calls("switch")) == parse_calls(standins.recorder) == 1


# --------------------------------------------------------------------------- during an outage


def test_the_first_chat_while_switch_hangs_falls_back_after_the_parse_timeout(outage, standins):
    assert fell_back(outage)
    assert parse_calls(standins.recorder) == 1


def test_chats_during_the_outage_do_not_reach_switch_for_parsing(madre, standins, outage):
    later = [chat(madre) for _ in range(5)]

    assert all(fell_back(answer) for answer in later)
    assert parse_calls(standins.recorder) == 1


def test_concurrent_chats_during_the_outage_do_not_reach_switch_either(madre, standins, outage):
    with ThreadPoolExecutor(max_workers=6) as pool:
        later = list(pool.map(lambda _: chat(madre), range(12)))

    assert all(fell_back(answer) for answer in later)
    assert parse_calls(standins.recorder) == 1


def test_the_breaker_stays_open_until_the_reset_period_has_passed(madre, standins, clock,
                                                                 outage):
    clock.advance(madre.settings.breaker_reset_seconds - 0.1)

    assert fell_back(chat(madre))
    assert parse_calls(standins.recorder) == 1


# --------------------------------------------------------------------------- the probe


def test_after_the_reset_period_exactly_one_chat_probes_switch(madre, standins, clock, outage):
    past_reset(madre, clock)
    assert madre.switch_breaker.state is BreakerState.HALF_OPEN

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: chat(madre), range(6)))

    assert parse_calls(standins.recorder) == 2  # the outage's first chat, and one probe
    assert all(fell_back(answer) for answer in answers)


def test_a_probe_that_fails_keeps_the_breaker_open(madre, standins, clock, outage):
    past_reset(madre, clock)
    assert fell_back(chat(madre))  # the probe, which times out again
    assert parse_calls(standins.recorder) == 2

    assert madre.switch_breaker.state is BreakerState.OPEN
    assert fell_back(chat(madre))
    assert parse_calls(standins.recorder) == 2


def test_a_probe_that_succeeds_closes_the_breaker_and_switch_parses_again(madre, standins,
                                                                          clock, outage):
    standins.behaviours["switch"].mode = "ok"
    standins.release_all()
    assert fell_back(chat(madre))  # Switch is back, but nobody asks it before the reset period
    assert parse_calls(standins.recorder) == 1

    past_reset(madre, clock)
    probe = chat(madre)

    assert parsed_by_switch(probe)
    assert madre.switch_breaker.state is BreakerState.CLOSED
    assert parsed_by_switch(chat(madre))
    assert parse_calls(standins.recorder) == 3


# --------------------------------------------------------------------------- fast failures


def test_a_refused_connection_opens_the_breaker_only_after_n_failures_in_a_row(start_madre):
    runtime = start_madre(switch_url=f"http://127.0.0.1:{free_port()}",
                          breaker_failures=FAILURES, health_interval_seconds=3600.0)

    states = []
    for _ in range(FAILURES):
        assert fell_back(chat(runtime))
        states.append(runtime.switch_breaker.state)

    assert states == [BreakerState.CLOSED] * (FAILURES - 1) + [BreakerState.OPEN]


def test_a_success_in_between_starts_the_count_of_failures_again(madre, standins, clock):
    switch = standins.behaviours["switch"]
    switch.mode = "fail"
    for _ in range(FAILURES - 1):
        assert fell_back(chat(madre))
    switch.mode = "ok"
    assert parsed_by_switch(chat(madre))
    switch.mode = "fail"
    for _ in range(FAILURES - 1):
        assert fell_back(chat(madre))

    assert madre.switch_breaker.state is BreakerState.CLOSED
    assert parse_calls(standins.recorder) == 2 * (FAILURES - 1) + 1


def test_n_fast_failures_in_a_row_open_the_breaker_and_the_next_chat_skips_switch(madre,
                                                                                  standins,
                                                                                  clock):
    standins.behaviours["switch"].mode = "fail"
    for _ in range(FAILURES + 2):
        assert fell_back(chat(madre))

    assert madre.switch_breaker.state is BreakerState.OPEN
    assert parse_calls(standins.recorder) == FAILURES  # a parse is never retried


# --------------------------------------------------------------------------- useless answers


@pytest.fixture
def switch_answering(start_madre: Any) -> Iterator[Any]:
    """start(answer) → a Madre whose Switch answers every parse with `answer` (a dict is sent
    as JSON, a str as is), and the list of prompts it received."""
    servers: list[LoopbackServer] = []

    def start(answer: dict[str, Any] | str) -> tuple[Madre, list[str]]:
        prompts: list[str] = []

        async def route(request: Request) -> Response:
            prompts.append((await request.json())["prompt"])
            if isinstance(answer, str):
                return Response(answer, media_type="application/json")
            return JSONResponse(answer)

        app = Starlette(routes=[Route(CALL_PATHS["switch"], route, methods=["POST"])])
        server = LoopbackServer(app, name="odd-switch").start()
        servers.append(server)
        runtime = start_madre(switch_url=server.url, health_interval_seconds=3600.0)
        return runtime, prompts

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("answer", [
    {"status": "ok"},
    {"dsl": "nonsense"},
    {"dsl": {"domain": 5}},
    {"dsl": {"domain": "system", "action": "   "}},
    {"dsl": {"domain": "system", "action": "status", "parameters": "none"}},
    [1, 2, 3],
], ids=["no-dsl", "dsl-a-string", "domain-a-number", "blank-action", "parameters-a-string",
        "a-list"])
def test_a_switch_answer_without_a_usable_dsl_falls_back_with_the_warning(switch_answering,
                                                                          answer):
    runtime, prompts = switch_answering(answer)

    reply = chat(runtime)

    assert prompts == [STATUS]
    assert fell_back(reply)
    assert runtime.switch_breaker.state is BreakerState.CLOSED  # Switch did answer


def test_a_switch_answer_that_is_not_json_falls_back_with_the_warning(switch_answering):
    runtime, prompts = switch_answering('{"dsl": {"domain": "sys')

    reply = chat(runtime)

    assert prompts == [STATUS]
    assert fell_back(reply)


@pytest.mark.parametrize("mode", ["garbage", "html", "close", "unauthorized"])
def test_a_broken_switch_answer_falls_back_with_the_warning(madre, standins, mode):
    standins.behaviours["switch"].mode = mode

    assert fell_back(chat(madre))
    assert parse_calls(standins.recorder) == 1  # a parse is never retried


# --------------------------------------------------------------------------- the truth told


def test_a_chat_parsed_by_switch_says_provider_switch_and_warns_of_nothing(madre, standins):
    answer = chat(madre)

    assert parsed_by_switch(answer)
    assert madre.get_plan(answer.plan_id).intent.provider is Provider.SWITCH


def test_a_chat_parsed_locally_says_provider_fallback_local_in_its_answer_and_its_plan(
        madre, standins, outage):
    assert madre.get_plan(outage.plan_id).intent.provider is Provider.FALLBACK_LOCAL
    assert FALLBACK in madre.get_plan(outage.plan_id).intent.warnings


def test_the_http_chat_answer_names_the_provider_that_parsed_it(madre, standins, client,
                                                                clock):
    first = client.post("/madre/chat", json={"message": STATUS}).json()
    standins.behaviours["switch"].mode = "hang"
    second = client.post("/madre/chat", json={"message": STATUS}).json()

    assert (first["provider"], first["warnings"]) == ("switch", [])
    assert second["provider"] == "fallback_local"
    assert FALLBACK in second["warnings"]

"""Event streams never skip an event committed out of id order, nor repeat one.

Two Madre instances write to one PostgreSQL database at once (each hands out ids from the
same sequence and commits on its own), while streams on both instances, unfiltered and
filtered, follow. Every stream must receive exactly the events after its start that match
it, in id order, once each.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from helpers import TOKEN, table_rows
from sse import Stream

from madre import Madre, create_app
from madre.standins import LoopbackServer

PER_WRITER = 60
WRITERS_PER_INSTANCE = 3
ORDERS = ({"target": "madre", "action": "stop"},  # denied: one audit row, committed alone
          {"target": "shub", "action": "status"})  # LOW: a plan and its steps


@pytest.fixture
def two_instances(database_url: str, start_madre) -> Iterator[list[tuple[Madre, str]]]:
    if database_url.startswith("sqlite"):
        pytest.skip("several instances share a PostgreSQL database only")
    instances = [start_madre(), start_madre()]
    with LoopbackServer(create_app(instances[0]), lifespan="on", name="madre-a") as a, \
            LoopbackServer(create_app(instances[1]), lifespan="on", name="madre-b") as b:
        yield [(instances[0], a.url), (instances[1], b.url)]


def write(url: str, session_id: str, failures: list[Any]) -> None:
    with requests.Session() as http:
        http.headers["X-VX11-Token"] = TOKEN
        for n in range(PER_WRITER):
            body = {**ORDERS[n % 2], "session_id": session_id}
            answer = http.post(url + "/madre/control", json=body, timeout=30)
            if answer.status_code != 200:
                failures.append(answer.text)


def test_streams_on_two_instances_writing_at_once_miss_and_repeat_no_event(
        two_instances) -> None:
    (madre, _), _ = two_instances
    urls = [url for _, url in two_instances]
    streams = [Stream(url) for url in urls for _ in range(4)]
    filtered = [(f"writer-{i}", Stream(urls[i % 2], session_id=f"writer-{i}"))
                for i in range(4)]
    failures: list[Any] = []
    writers = [threading.Thread(target=write, args=(urls[i % 2], f"writer-{i}", failures))
               for i in range(2 * WRITERS_PER_INSTANCE)]
    try:
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=120)
        assert not failures, failures[:3]
        rows = table_rows(madre, "madre_actions")
        last = rows[-1]["id"]
        for stream in streams:
            got = [e.id for e in stream.until(lambda e: e.id >= last, timeout=30)]
            assert got == [r["id"] for r in rows], "a stream missed or repeated events"
        for session_id, stream in filtered:
            mine = [r["id"] for r in rows if r["session_id"] == session_id]
            got = [e.id for e in stream.until(lambda e, m=mine: e.id >= m[-1], timeout=30)]
            assert got == mine
    finally:
        for stream in [*streams, *(s for _, s in filtered)]:
            stream.close()

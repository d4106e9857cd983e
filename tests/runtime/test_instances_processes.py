"""Several real Madre processes on one PostgreSQL database (a database made for each test):
while all live no step is sent twice; kill -9 one and the survivors finish its plans; cut one
off from PostgreSQL and its plans are taken over after the lease, and nothing it writes
afterwards lands. Also: a second process on one SQLite file refuses to start.

The stand-ins record which instance sent each call (the X-Madre-Instance header)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from helpers import TOKEN
from processes import MadreProcess, TcpProxy, fresh_postgres, madre_env

from madre.standins import StandinCluster

PG_ENV = "MADRE_TEST_DATABASE_URL"
BOUND = 60.0  # seconds any wait below may take at most


@pytest.fixture
def pg() -> Iterator[str]:
    admin = os.environ.get(PG_ENV)
    if not admin:
        pytest.skip(f"needs PostgreSQL: set {PG_ENV} (several instances share PostgreSQL)")
    with fresh_postgres(admin) as url:
        yield url


@pytest.fixture
def launch(tmp_path: pathlib.Path, standins: StandinCluster
           ) -> Iterator[Callable[..., MadreProcess]]:
    started: list[MadreProcess] = []

    def start(name: str, database_url: str, **settings: str) -> MadreProcess:
        env = madre_env(database_url, standins.env(), MADRE_INSTANCE_ID=name, **settings)
        process = MadreProcess(tmp_path / name, env, name=name)
        started.append(process)
        return process.ready()

    yield start
    for process in started:
        process.end()


def senders(standins: StandinCluster, module: str) -> dict[str, list[str]]:
    """For each Idempotency-Key the module received: the instances that sent it, in order."""
    found: dict[str, list[str]] = {}
    for call in standins.recorder.calls(module):
        if call.idempotency_key:
            found.setdefault(call.idempotency_key, []).append(
                call.headers.get("x-madre-instance", "?"))
    return found


def wait_until(condition: Callable[[], bool], timeout: float = BOUND) -> float:
    """Seconds it took `condition` to hold (polled: the processes are not ours to watch)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def plan(process: MadreProcess, plan_id: str) -> dict[str, Any]:
    return process.call("GET", f"/madre/plans/{plan_id}")


def ping_shub(process: MadreProcess) -> str:
    return str(process.call("POST", "/madre/control",
                            json={"target": "shub", "action": "status"})["plan_id"])


def test_three_live_instances_never_send_one_step_twice(pg, launch, standins) -> None:
    instances = [launch(name, pg) for name in ("a", "b", "c")]
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client(process: MadreProcess) -> None:
        for _ in range(8):
            answer = process.call("POST", "/madre/chat", json={"message": "mix these 3 stems"})
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=client, args=(p,)) for p in instances for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)

    assert len(answers) == 48 and {a["status"] for a in answers} == {"DONE"}
    sent = senders(standins, "shub")
    assert len(sent) == 48
    assert all(len(set(who)) == 1 for who in sent.values()), sent
    assert {who[0] for who in sent.values()} == {"a", "b", "c"}
    failed = [line for p in instances for line in p.lines if "round failed" in line]
    assert not failed, failed[:3]

    def sees_all() -> bool:  # each instance reads the others' liveness once a second
        alive = instances[0].call("GET", "/madre/instances")["instances"]
        return {i["instance_id"] for i in alive} == {"a", "b", "c"}

    wait_until(sees_all, timeout=5)


def test_after_kill_9_the_survivors_finish_every_plan_of_the_dead_instance(
        pg, launch, standins, capsys) -> None:
    dead, survivor = launch("dead", pg), launch("survivor", pg)
    standins.behaviours["shub"].set("slow", delay=2.0)
    plans = [ping_shub(dead) for _ in range(6)]
    assert standins.recorder.wait_for_calls("shub", 6, timeout=BOUND)  # all in flight on it

    dead.kill()
    killed_at = time.monotonic()
    standins.behaviours["shub"].set("ok")
    wait_until(lambda: all(len(who) >= 2 for who in senders(standins, "shub").values()))
    moving = time.monotonic() - killed_at
    wait_until(lambda: all(plan(survivor, p)["status"] == "DONE" for p in plans))

    sent = senders(standins, "shub")
    assert all(who[:1] == ["dead"] and set(who[1:]) == {"survivor"} for who in sent.values())
    with capsys.disabled():
        print(f"\n  takeover after kill -9: every plan moving again {moving:.2f} s after the kill")
    history = plan(survivor, plans[0])["history"]
    assert [h["action"] for h in history].count("plan_done") == 1


def test_a_partitioned_instance_loses_its_plans_after_the_lease_and_writes_nothing_after(
        pg, launch, standins, capsys) -> None:
    where = urlsplit(pg)
    proxy = TcpProxy(where.hostname or "127.0.0.1", where.port or 5432)
    try:
        cut_off = launch("cut-off", proxy.url_for(pg), MADRE_LEASE_SECONDS="3")
        other = launch("other", pg, MADRE_LEASE_SECONDS="3")
        standins.behaviours["shub"].set("slow", delay=1.0)
        plans = [ping_shub(cut_off) for _ in range(3)]
        assert standins.recorder.wait_for_calls("shub", 3, timeout=BOUND)

        proxy.freeze()  # the process lives on; PostgreSQL and it no longer hear each other
        frozen_at = time.monotonic()
        wait_until(lambda: all(plan(other, p)["status"] == "DONE" for p in plans))
        taken_after = time.monotonic() - frozen_at
        proxy.heal()

        # Once it hears PostgreSQL again it finds it owns nothing, and stops those actors.
        def stopped_here() -> bool:
            gauge = requests.get(cut_off.url + "/metrics", headers={"X-VX11-Token": TOKEN},
                                 timeout=30).text
            return "madre_plan_actors_active 0.0" in gauge

        wait_until(stopped_here)
        time.sleep(1.0)  # a last round on each side: nothing may have changed since
        for plan_id in plans:
            detail = plan(other, plan_id)
            assert detail["status"] == "DONE"
            actions = [h["action"] for h in detail["history"]]
            assert actions.count("step_done:CALL_SHUB") == 1  # the other's: none of the cut-off's
            assert actions.count("plan_done") == 1
        assert all("cut-off" not in who[1:] for who in senders(standins, "shub").values())
        with capsys.disabled():
            print(f"\n  partition: plans taken over and finished {taken_after:.2f} s after the "
                  "cut (lease 3 s)")
    finally:
        proxy.close()


def test_a_second_process_on_one_sqlite_file_refuses_to_start_naming_the_holder(
        tmp_path, launch, standins) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    launch("holder", url)
    env = madre_env(url, standins.env(), MADRE_INSTANCE_ID="second")
    second = MadreProcess(tmp_path / "second", env, name="second")
    try:
        line = second.wait_for("in use by")
        assert second.proc.wait(timeout=BOUND) != 0
    finally:
        second.end()
    assert f"{tmp_path}/shared.db" in line and "instance holder" in line


def test_two_survivors_claiming_a_dead_instance_s_plans_at_once_take_each_exactly_once(
        pg, launch, standins) -> None:
    from helpers import WAIT, make_settings, table_rows

    from madre import Madre

    dead = launch("dead", pg)
    survivors = [Madre(make_settings(pg, standins, instance_id=name)).start()
                 for name in ("b", "c")]
    try:
        for survivor in survivors:
            survivor.membership.stop_rounds()  # only the rounds below: released together
        standins.behaviours["shub"].set("slow", delay=2.0)
        plans = [ping_shub(dead) for _ in range(8)]
        assert standins.recorder.wait_for_calls("shub", 8, timeout=BOUND)
        # And an intent it took in (keyed) and never planned: it was still parsing.
        standins.behaviours["switch"].set("hang")

        def cut_short() -> None:
            with contextlib.suppress(requests.ConnectionError):  # it dies answering
                requests.post(dead.url + "/madre/chat", json={"message": "mix these 3 stems"},
                              headers={"X-VX11-Token": TOKEN, "Idempotency-Key": "cut-short-1"},
                              timeout=BOUND)

        keyed = threading.Thread(target=cut_short)
        keyed.start()
        assert standins.recorder.wait_for_calls("switch", 1, timeout=BOUND)

        dead.kill()
        keyed.join(BOUND)
        standins.behaviours["shub"].set("ok")
        standins.behaviours["switch"].set("ok")
        wait_until(lambda: all(s._presence.is_dead("dead") for s in survivors))
        barrier = threading.Barrier(2)
        rounds: dict[str, Any] = {}

        def claim(survivor: Madre) -> None:
            barrier.wait()
            rounds[survivor.instance_id] = survivor.membership.round()

        threads = [threading.Thread(target=claim, args=(s,)) for s in survivors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(BOUND)

        b, c = (set(rounds[name].claimed) for name in ("b", "c"))
        assert not b & c and b | c == set(plans), rounds
        for plan_id in plans:
            ended = survivors[0].wait_for_plan(plan_id, WAIT, final=True)
            assert ended is not None and ended.status.value == "DONE"
        rows = {r["uuid"]: r for r in table_rows(survivors[0], "tasks")}
        assert {rows[p]["epoch"] for p in plans} == {2}  # the dead one's, then one survivor's
        sent = senders(standins, "shub")
        assert len(sent) == 8
        assert all(who[0] == "dead" and len(who) == 2 and who[1] in ("b", "c")
                   for who in sent.values()), sent
        for plan_id in plans:
            history = [h.action for h in survivors[0].get_plan(plan_id).history]
            assert history.count("plan_done") == 1 and history.count("step_done:CALL_SHUB") == 1
        [intent] = [r for r in table_rows(survivors[0], "intents_log")
                    if r["plan_id"] is None]
        assert intent["result_status"] == "error" and intent["instance_id"] == "dead"
        closed = [r for r in table_rows(survivors[0], "madre_actions")
                  if r["action"] == "intent_interrupted"]
        assert [r["intent_id"] for r in closed] == [intent["intent_id"]]  # once, not twice
    finally:
        for survivor in survivors:
            survivor.stop()

"""Kill -9 at random moments: what Madre acknowledged survives, and nothing is left RUNNING.

Madre runs as a real process (`python run.py`) on a file database, with loopback stand-ins
of the modules that count every Idempotency-Key they receive. Client threads send a stream
of chats, controls and confirms; the process is killed with SIGKILL several times while
steps are in flight, and started again on the same database. Afterwards an in-process Madre
on that database (which recovers whatever the last run left) must show:
- every request answered 2xx has its intents_log row, and its plan ends DONE, ERROR or
  WAITING; no plan is left PENDING or RUNNING;
- every call a stand-in received carried a step's id as its key, and a key seen more than
  once belongs to a step that was in flight at a kill (so the replay is the same call);
  every step of a DONE plan ran under its own key;
- after every kill, once Madre is up again, the forensic trail holds every row committed
  before the kill and its chain verifies; at the end `madre audit verify --db` finds no
  row missing and none behind.

MADRE_CRASH_KILLS sets the number of kills (3 by default); the figures are printed (-s).
"""

from __future__ import annotations

import os
import pathlib
import queue
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from helpers import TOKEN, free_port, make_settings

from madre import Madre
from madre.forensics import TABLES, copied_rows, verify
from madre.model import FINAL_STATUSES, Status
from madre.modules import STEP_MODULES
from madre.standins import StandinCluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("MADRE_CRASH_KILLS", "3"))
SETTLE = 30.0


class MadreProcess:
    """`python run.py` on a fixed port and database; started again after each kill."""

    def __init__(self, cwd: pathlib.Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.recoveries: list[str] = []  # "recovering N unfinished plans" lines, all runs

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=self.cwd,
                                     env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        ready: queue.Queue[bool] = queue.Queue()
        proc = self.proc

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "unfinished plans" in line:
                    self.recoveries.append(line)
                if "Uvicorn running on" in line:
                    ready.put(True)
            ready.put(False)

        threading.Thread(target=pump, daemon=True).start()
        assert ready.get(timeout=60), "Madre did not start"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Traffic:
    """Client threads sending chats, controls and confirms; they keep every 2xx answer."""

    REQUESTS = (
        ("chat", {"message": "hello madre, how are you today"}),
        ("chat", {"message": "mix these 3 stems"}),
        ("control", {"target": "shub", "action": "status"}),
        ("control", {"target": "hermes", "action": "delete"}),
    )

    def __init__(self, url: str, seed: int) -> None:
        self.url = url
        self.accepted: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.answered = threading.Semaphore(0)
        self.stop = threading.Event()
        self.rng = random.Random(seed)

    def run(self) -> None:
        with requests.Session() as session:
            session.headers["X-VX11-Token"] = TOKEN
            while not self.stop.is_set():
                kind, body = self.REQUESTS[self.rng.randrange(len(self.REQUESTS))]
                self.send(session, kind, body)

    def send(self, session: requests.Session, kind: str, body: dict[str, Any]) -> None:
        try:
            answer = session.post(f"{self.url}/madre/{kind}", json=body, timeout=10)
        except requests.RequestException:
            return  # the server was killed under this request: it was never acknowledged
        if answer.status_code != 200:
            return
        data = answer.json()
        with self.lock:
            self.accepted.append(data)
        self.answered.release()
        token, plan_id = data.get("confirm_token"), data.get("plan_id")
        if token and plan_id and self.rng.random() < 0.7:
            try:
                confirm = session.post(f"{self.url}/madre/plans/{plan_id}/confirm",
                                       json={"confirm_token": token}, timeout=10)
            except requests.RequestException:
                return
            if confirm.status_code == 200:
                self.answered.release()


@pytest.fixture
def cluster() -> Iterator[StandinCluster]:
    with StandinCluster(token=TOKEN) as standins:
        # Slow enough that kills land while calls are in flight.
        for module in ("switch", "shub", "hermes"):
            standins.behaviours[module].set("slow", delay=0.03)
        yield standins


def test_kill_9_at_random_moments_loses_nothing_acknowledged_and_leaves_nothing_running(
    tmp_path: pathlib.Path, cluster: StandinCluster
) -> None:
    database_url = f"sqlite:///{tmp_path}/madre.db"
    trail = tmp_path / "trail"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VX11_TOKEN": TOKEN, "DATABASE_URL": database_url,
           "MADRE_PORT": str(port), "MADRE_LOG_LEVEL": "INFO", "MADRE_STEP_RETRIES": "0",
           "MADRE_CHAT_WAIT_SECONDS": "0.2", "MADRE_FORENSIC_DIR": str(trail),
           **cluster.env()}
    trail_missing = 0
    process = MadreProcess(tmp_path, env)
    rng = random.Random(20261124)
    traffic = Traffic(url, seed=7)
    workers: list[threading.Thread] = []
    try:
        process.start()
        workers = [threading.Thread(target=traffic.run, daemon=True) for _ in range(4)]
        for worker in workers:
            worker.start()
        for _ in range(KILLS):
            for _ in range(rng.randrange(15, 40)):  # a random number of acknowledged requests
                assert traffic.answered.acquire(timeout=60), "no answers from Madre"
            process.kill()
            committed = committed_rows(tmp_path / "madre.db")
            process.start()  # copies into the trail what the killed run did not, first
            trail_missing += trail_check(trail, committed, tmp_path / "snapshot")
        for _ in range(10):
            assert traffic.answered.acquire(timeout=60)
    finally:
        traffic.stop.set()
        for worker in workers:
            worker.join(timeout=30)
        process.stop()

    assert len(traffic.accepted) >= 50
    assert process.recoveries, "no kill caught a plan mid-run: the test proved nothing"
    settings = make_settings(database_url, cluster, step_retries=0, forensic_dir=str(trail))
    lost = unsettled = 0
    with Madre(settings) as madre:  # recovers whatever the last run left, like a restart
        for answer in traffic.accepted:
            intent = madre.repo.find_intent(answer["intent_id"])
            lost += intent is None
            if intent is None or answer.get("plan_id") is None:
                assert intent is None or intent.result_status == "denied"
                continue
            plan = madre.wait_for_plan(answer["plan_id"], SETTLE)
            unsettled += plan is None or plan.status not in (*FINAL_STATUSES, Status.WAITING)
        stuck = [p for status in (Status.PENDING, Status.RUNNING)
                 for p in madre.list_plans(status=status, limit=200).plans]
        print(f"\ncrash loop: {KILLS} kills, {len(traffic.accepted)} acknowledged, "
              f"{len(traffic.accepted) - lost} found, {lost} lost, {len(stuck)} stuck, "
              f"{unsettled} unsettled, {trail_missing} trail records missing")
        assert lost == 0, "acknowledged intents lost"
        assert unsettled == 0 and stuck == [], f"plans left unfinished: {stuck}"
        _assert_every_call_was_one_steps_own(madre, cluster)
    assert trail_missing == 0, "committed rows missing from the trail after a kill"
    final = subprocess.run([sys.executable, "-m", "madre", "audit", "verify", str(trail),
                            "--db", database_url], capture_output=True, text=True,
                           timeout=120, check=False)
    assert final.returncode == 0 and "up to date with the database; no row missing" in (
        final.stdout), final


def committed_rows(database: pathlib.Path) -> dict[str, list[int]]:
    """The ids of the rows the trail copies, as the killed process left the database."""
    with sqlite3.connect(database) as db:
        return {table: [r[0] for r in db.execute(f"SELECT id FROM {table} ORDER BY id")]
                for table in TABLES}


def trail_check(trail: pathlib.Path, committed: dict[str, list[int]],
                snapshot: pathlib.Path) -> int:
    """How many of the rows committed before a kill the trail of the restarted Madre lacks;
    its chain must verify. The live trail is read as a copy of its whole lines (the running
    Madre may be writing the last one)."""
    shutil.rmtree(snapshot, ignore_errors=True)
    snapshot.mkdir()
    for path in sorted(trail.glob("*.jsonl")):
        text = path.read_bytes()
        (snapshot / path.name).write_bytes(text[:text.rfind(b"\n") + 1])
    verdict = verify(snapshot)
    assert verdict.ok, verdict.describe()
    copied = copied_rows(snapshot)
    return sum(row_id not in copied[table] for table, ids in committed.items()
               for row_id in ids)


def _assert_every_call_was_one_steps_own(madre: Madre, cluster: StandinCluster) -> None:
    steps: dict[str, Any] = {}
    plans = []
    cursor = None
    while True:
        page = madre.list_plans(limit=200, before=cursor)
        plans += page.plans
        if page.next_before is None:
            break
        cursor = page.next_before
    for summary in plans:
        for step in madre.get_plan(summary.plan_id).steps:
            steps[step.step_id] = (summary.plan_id, step)
    counts = cluster.recorder.idempotency_counts()
    calls = [r for r in cluster.recorder.calls() if r.idempotency_key]
    bodies: dict[str, list[Any]] = {}
    for call in calls:
        bodies.setdefault(call.idempotency_key, []).append(call.body)
    for key in counts:
        assert key in steps, f"a module was called with a key that is no step's: {key}"
        assert steps[key][1].type in STEP_MODULES, f"a {steps[key][1].type} step made a call"
        # A key seen twice is the same call sent again (a step in flight at a kill, resumed
        # after the restart): same body, and the stand-in answered it from its replay cache.
        assert all(body == bodies[key][0] for body in bodies[key])
    repeated = [key for key, seen in counts.items() if seen > 1]
    assert len(repeated) <= KILLS * 8, f"more repeats than kills can explain: {len(repeated)}"
    for plan_id, step in steps.values():
        if step.status is Status.DONE and step.type in STEP_MODULES:
            assert counts[step.step_id] >= 1, f"step {step.step_id} of {plan_id} never called"
    assert all(r.token == TOKEN for r in calls)

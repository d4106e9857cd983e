#!/usr/bin/env python3
"""Several Madre instances on one PostgreSQL database: chat throughput with one instance and
with two, and how long a killed instance's plans wait before another takes them over.

    python bench/instances_bench.py --pg postgresql://postgres@127.0.0.1:5432/postgres

1. Throughput: the shared fake Switch, a fresh database, one `python run.py` (then two),
   `POST /madre/chat` (LOW) driven by wrk with the floor's flags. With two instances, two
   wrk processes run at once, half the connections each, and their figures add up (that
   is what a load balancer in front would see). One and two alternate, median of the rounds.
2. Takeover: two instances and the loopback stand-ins; plans whose Shub call takes 2 s are
   sent to one instance, which is killed (-9) while they are in flight; the time until the
   survivor has sent every one of them again is taken, over several kills.
Needs wrk and the shared bench folder (`../shared/bench`). Loopback only; stops what it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

from chat_bench import ROOT, TOKEN, free_port, process, uvicorn_cmd, wait_until_up, wrk  # noqa: E402
from processes import fresh_postgres  # noqa: E402

from madre.standins import StandinCluster  # noqa: E402


def madre_env(database_url: str, port: int, name: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MADRE_")}
    env.update({"VX11_TOKEN": TOKEN, "DATABASE_URL": database_url, "MADRE_PORT": str(port),
                "MADRE_LOG_LEVEL": "WARNING", "MADRE_INSTANCE_ID": name, **extra})
    return env


@contextlib.contextmanager
def instances(count: int, database_url: str, work: pathlib.Path, **extra: str
              ) -> Iterator[list[str]]:
    """`count` Madre processes on `database_url`; their URLs."""
    with contextlib.ExitStack() as stack:
        urls = []
        for i in range(count):
            port = free_port()
            name = f"m{i}"
            (work / name).mkdir(exist_ok=True)
            stack.enter_context(process(
                [sys.executable, str(ROOT / "run.py")],
                env=madre_env(database_url, port, name, **extra), cwd=work / name,
                log=work / f"{name}.log", health=f"http://127.0.0.1:{port}/health"))
            urls.append(f"http://127.0.0.1:{port}")
        yield urls


def throughput(urls: list[str], lua: pathlib.Path, *, duration: int, connections: int
               ) -> dict[str, float]:
    """wrk on every URL at once (connections shared out); the figures added up."""
    results: list[dict[str, float]] = []
    threads = [threading.Thread(target=lambda u=u: results.append(wrk(
        u + "/madre/chat", lua, duration=duration, connections=connections // len(urls))))
        for u in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"rps": sum(r["rps"] for r in results),
            "p50_ms": max(r["p50_ms"] for r in results),
            "p99_ms": max(r["p99_ms"] for r in results),
            "errors": sum(r["errors"] + r["non2xx"] for r in results)}


def takeover_times(admin_url: str, work: pathlib.Path, *, kills: int, plans: int) -> list[float]:
    """Seconds from each kill -9 until the survivor had sent every in-flight plan again."""
    times = []
    with StandinCluster(token=TOKEN) as standins, fresh_postgres(admin_url) as url:
        survivor_port = free_port()
        (work / "survivor").mkdir(exist_ok=True)
        env = {**madre_env(url, survivor_port, "survivor", MADRE_STEP_RETRIES="0"),
               **standins.env()}
        with process([sys.executable, str(ROOT / "run.py")], env=env, cwd=work / "survivor",
                     log=work / "survivor.log", health=f"http://127.0.0.1:{survivor_port}/health"):
            for kill in range(kills):
                standins.reset()
                standins.behaviours["shub"].set("slow", delay=2.0)
                port = free_port()
                (work / f"victim{kill}").mkdir(exist_ok=True)
                victim_env = {**madre_env(url, port, f"victim{kill}", MADRE_STEP_RETRIES="0"),
                              **standins.env()}
                victim = subprocess.Popen([sys.executable, str(ROOT / "run.py")],
                                          env=victim_env, cwd=work / f"victim{kill}",
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_until_up(f"http://127.0.0.1:{port}/health")
                for _ in range(plans):
                    requests.post(f"http://127.0.0.1:{port}/madre/control",
                                  json={"target": "shub", "action": "status"},
                                  headers={"X-VX11-Token": TOKEN}, timeout=30)
                standins.recorder.wait_for_calls("shub", plans, timeout=30)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                killed = time.monotonic()
                standins.behaviours["shub"].set("ok")
                while True:
                    keys: dict[str, int] = {}
                    for call in standins.recorder.calls("shub"):
                        keys[call.idempotency_key or ""] = keys.get(call.idempotency_key or "", 0) + 1
                    if len(keys) == plans and all(n >= 2 for n in keys.values()):
                        break
                    if time.monotonic() - killed > 60:
                        raise RuntimeError("the survivor did not take the plans over in 60 s")
                    time.sleep(0.02)
                times.append(time.monotonic() - killed)
                print(f"kill {kill + 1}: every plan moving again {times[-1]:.2f} s after "
                      "kill -9", flush=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", default=os.environ.get("MADRE_TEST_DATABASE_URL",
                                                       "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--shared", type=pathlib.Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--plans", type=int, default=20)
    args = parser.parse_args()
    lua = args.shared / "chat.lua"
    work = pathlib.Path(tempfile.mkdtemp(prefix="madre-instances-"))
    switch_port = free_port()
    switch_url = f"http://127.0.0.1:{switch_port}"
    base_env = {**os.environ, "PYTHONPATH": str(args.shared)}
    figures: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with process(uvicorn_cmd("fake_switch:app", switch_port), env=base_env, cwd=args.shared,
                 log=work / "switch.log", health=switch_url + "/health"):
        os.environ["SWITCH_URL"] = switch_url
        for round_no in range(1, args.rounds + 1):
            for count in (1, 2):
                with fresh_postgres(args.pg) as url, instances(count, url, work) as urls:
                    throughput(urls, lua, duration=3, connections=args.connections)  # warm-up
                    result = throughput(urls, lua, duration=args.duration,
                                        connections=args.connections)
                figures[count].append(result)
                print(f"round {round_no} {count} instance(s) rps={result['rps']:8.1f} "
                      f"p50={result['p50_ms']:7.1f} ms p99={result['p99_ms']:7.1f} ms "
                      f"errors={result['errors']:.0f}", flush=True)
        del os.environ["SWITCH_URL"]
    one = statistics.median(r["rps"] for r in figures[1])
    two = statistics.median(r["rps"] for r in figures[2])
    print(f"median rps: one instance {one:.1f}, two instances {two:.1f}")
    print(f"RESULT two/one instances throughput={two / one:.2f}x (target >= 1.6)")
    times = takeover_times(args.pg, work, kills=args.kills, plans=args.plans)
    print(f"RESULT takeover after kill -9: median {statistics.median(times):.2f} s, "
          f"max {max(times):.2f} s over {len(times)} kills (target < 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

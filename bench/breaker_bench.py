#!/usr/bin/env python3
"""Chat latency with Switch up, and with Switch hanging once the circuit breaker has opened.

Starts the loopback stand-ins (StandinCluster) and Madre in-process behind a real uvicorn
(LoopbackServer(create_app(madre))), then drives `POST /madre/chat` with a LOW message whose
plan makes no call to Switch (SYSTEM_HEALTHCHECK, NOOP; checked before measuring) from N
client threads, one requests.Session each, for D seconds:

1. "up":   Switch answers; every chat is parsed by Switch (one loopback round trip).
2. "down": Switch hangs (parse timeout 1.5 s); one chat pays that timeout and opens the
           breaker, then the round is measured: no chat should reach Switch or wait for it.

Prints p50/p99 of each round, the ratios down/up, and a RESULT line (target: ratio <= 1.2).

    python bench/breaker_bench.py                      # 8 threads, 5 s per round
    python bench/breaker_bench.py --threads 16 --duration 10
    python bench/breaker_bench.py --database-url postgresql://postgres@127.0.0.1/madre_bench

Loopback only, bounded in time; it stops everything it started.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from madre import Madre, Settings, create_app  # noqa: E402
from madre.delegation.breaker import BreakerState  # noqa: E402
from madre.standins import LoopbackServer, StandinCluster  # noqa: E402

TOKEN = "bench-token-0123456789"
MESSAGE = "what is the status of the system"
PARSE_TIMEOUT = 1.5
TARGET = 1.2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def parse_calls(cluster: StandinCluster) -> int:
    return sum(1 for r in cluster.recorder.calls("switch")
               if isinstance(r.body, dict)
               and (r.body.get("metadata") or {}).get("purpose") == "intent_parse")


def chat_once(session: requests.Session, url: str) -> dict[str, Any]:
    resp = session.post(url, json={"message": MESSAGE}, timeout=30)
    resp.raise_for_status()
    return resp.json()


def drive(url: str, *, threads: int, duration: float, warmup: float) -> dict[str, Any]:
    """N threads posting chats back to back; latencies of those that started after warm-up."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    providers: dict[str, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    began = [0.0]

    def worker(mine: list[float]) -> None:
        with requests.Session() as session:
            session.headers["X-VX11-Token"] = TOKEN
            session.trust_env = False
            start.wait()
            measure_from = began[0] + warmup
            until = measure_from + duration
            while (now := time.monotonic()) < until:
                try:
                    body = chat_once(session, url)
                except requests.RequestException as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                took = time.monotonic() - now
                if body.get("status") != "DONE":
                    with lock:
                        errors.append(f"plan {body.get('plan_id')} ended {body.get('status')}")
                if now >= measure_from:
                    mine.append(took)
                    with lock:
                        providers[body["provider"]] = providers.get(body["provider"], 0) + 1

    pool = [threading.Thread(target=worker, args=(latencies[i],), name=f"bench-{i}")
            for i in range(threads)]
    for thread in pool:
        thread.start()
    began[0] = time.monotonic()
    start.wait()
    for thread in pool:
        thread.join()
    flat = [x for per in latencies for x in per]
    if not flat:
        raise RuntimeError("no chat completed in the measured window")
    return {
        "n": len(flat), "rps": len(flat) / duration, "errors": errors, "providers": providers,
        "p50": percentile(flat, 0.50) * 1000, "p99": percentile(flat, 0.99) * 1000,
        "mean": statistics.fmean(flat) * 1000, "max": max(flat) * 1000,
    }


def show(name: str, r: dict[str, Any]) -> None:
    print(f"{name:>4}: n={r['n']:<6} rps={r['rps']:<8.1f} p50={r['p50']:.2f} ms  "
          f"p99={r['p99']:.2f} ms  mean={r['mean']:.2f} ms  max={r['max']:.2f} ms  "
          f"providers={r['providers']}  errors={len(r['errors'])}")
    for err in r["errors"][:5]:
        print(f"      error: {err}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--database-url", default=None,
                        help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    work = pathlib.Path(tempfile.mkdtemp(prefix="madre-breaker-bench-"))
    database_url = args.database_url or f"sqlite:///{work}/madre.db"
    with StandinCluster(token=TOKEN) as cluster:
        urls = {k.lower(): v for k, v in cluster.env().items()}
        settings = Settings(
            token=TOKEN, database_url=database_url, parse_timeout_seconds=PARSE_TIMEOUT,
            breaker_reset_seconds=3600.0,  # stays open for the whole "down" round
            health_interval_seconds=3600.0, chat_wait_seconds=10.0, **urls,
        )
        try:
            with Madre(settings) as madre, \
                    LoopbackServer(create_app(madre), lifespan="on", name="madre") as server:
                url = server.url + "/madre/chat"
                with requests.Session() as session:
                    session.headers["X-VX11-Token"] = TOKEN
                    first = chat_once(session, url)
                steps = [s.type for s in madre.get_plan(first["plan_id"]).steps]
                print(f"message: {MESSAGE!r} -> steps {steps}, provider {first['provider']}")
                if any(s == "CALL_SWITCH" for s in steps) or first["status"] != "DONE":
                    print("the benchmark message must plan no Switch call and end DONE",
                          file=sys.stderr)
                    return 2
                print(f"threads={args.threads} duration={args.duration:g} s per round "
                      f"(after {args.warmup:g} s warm-up), database "
                      f"{'sqlite' if database_url.startswith('sqlite') else 'postgresql'}")

                up = drive(url, threads=args.threads, duration=args.duration,
                           warmup=args.warmup)
                show("up", up)

                cluster.behaviours["switch"].mode = "hang"
                opened = time.monotonic()
                with requests.Session() as session:
                    session.headers["X-VX11-Token"] = TOKEN
                    opener = chat_once(session, url)
                paid = time.monotonic() - opened
                state = madre.switch_breaker.state
                print(f"switch hangs: the first chat paid {paid * 1000:.0f} ms "
                      f"(provider {opener['provider']}); breaker {state}")
                if state is not BreakerState.OPEN:
                    print("the breaker did not open", file=sys.stderr)
                    return 2
                before = parse_calls(cluster)
                down = drive(url, threads=args.threads, duration=args.duration,
                             warmup=args.warmup)
                reached = parse_calls(cluster) - before
                show("down", down)
                print(f"parse requests that reached Switch during the down round: {reached}")
        finally:
            cluster.release_all()

    ratio_p50 = down["p50"] / up["p50"]
    ratio_p99 = down["p99"] / up["p99"]
    ok = (ratio_p50 <= TARGET and ratio_p99 <= TARGET and reached == 0
          and not up["errors"] and not down["errors"])
    print(f"ratio down/up: p50 {ratio_p50:.2f}  p99 {ratio_p99:.2f}  (target <= {TARGET})")
    print(f"RESULT up_p50_ms={up['p50']:.2f} up_p99_ms={up['p99']:.2f} "
          f"down_p50_ms={down['p50']:.2f} down_p99_ms={down['p99']:.2f} "
          f"ratio_p50={ratio_p50:.2f} ratio_p99={ratio_p99:.2f} switch_reached={reached} "
          f"down_max_ms={down['max']:.0f} parse_timeout_ms={PARSE_TIMEOUT * 1000:.0f} "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

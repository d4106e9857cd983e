#!/usr/bin/env python3
"""Chat latency with 0 and with N idle, filtered event-stream subscribers.

Issue 10 found each stream running its own database query on every commit: 300 idle
streams filtered on a session that never does anything turned chat p50 from 3.9 ms into
256 ms. Now one reader per process feeds every stream and filters in memory; this measures
that idle streams cost chat (almost) nothing: target p50 with N subscribers within 1.2x of
p50 with none.

Starts the shared fake Switch and Madre (`python run.py`, SQLite in a temporary folder), then
alternates rounds with 0 and N subscribers (`GET /madre/events?session_id=idle-<i>`, held
open and never written to), driving `POST /madre/chat` with wrk in each; prints each round
(p50, p99, requests/s, Madre's CPU seconds) and the medians.

    python bench/subscribers_bench.py                  # 1000 subscribers, 2 rounds of 10 s
    python bench/subscribers_bench.py --subscribers 300 --rounds 1

Needs wrk and the shared bench folder (see chat_bench.py). Loopback only; stops what it
started.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import socket
import statistics
import sys
import tempfile

from chat_bench import ROOT, TOKEN, free_port, process, uvicorn_cmd, wrk


def open_subscribers(port: int, n: int) -> list[socket.socket]:
    """`n` event streams, each filtered on a session nothing happens to, headers read."""
    streams = []
    for i in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(f"GET /madre/events?session_id=idle-{i} HTTP/1.1\r\nHost: madre\r\n"
                     f"X-VX11-Token: {TOKEN}\r\nAccept: text/event-stream\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"subscriber {i} refused: {head[:200]!r}")
        streams.append(sock)
    return streams


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=pathlib.Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    lua = args.shared / "chat.lua"
    work = pathlib.Path(tempfile.mkdtemp(prefix="madre-subscribers-"))
    ports = {name: free_port() for name in ("switch", "madre")}
    switch_url = f"http://127.0.0.1:{ports['switch']}"
    base_env = {**os.environ, "PYTHONPATH": str(args.shared), "VX11_TOKEN": TOKEN}
    madre_env = {**base_env, "SWITCH_URL": switch_url, "MADRE_PORT": str(ports["madre"]),
                 "MADRE_LOG_LEVEL": "WARNING", "DATABASE_URL": f"sqlite:///{work}/madre.db",
                 "MADRE_FORENSIC_DIR": str(work / "trail")}
    url = f"http://127.0.0.1:{ports['madre']}/madre/chat"
    results: dict[int, list[dict[str, float]]] = {0: [], args.subscribers: []}
    with (
        process(uvicorn_cmd("fake_switch:app", ports["switch"]), env=base_env, cwd=args.shared,
                log=work / "switch.log", health=switch_url + "/health"),
        process([sys.executable, str(ROOT / "run.py")], env=madre_env, cwd=work,
                log=work / "madre.log",
                health=f"http://127.0.0.1:{ports['madre']}/health") as madre,
    ):
        wrk(url, lua, duration=3, connections=args.connections)  # warm up
        for round_no in range(1, args.rounds + 1):
            for n in (0, args.subscribers):
                streams = open_subscribers(ports["madre"], n)
                try:
                    before = cpu_seconds(madre.pid)
                    figures = wrk(url, lua, duration=args.duration,
                                  connections=args.connections)
                    figures["cpu_s"] = cpu_seconds(madre.pid) - before
                finally:
                    for sock in streams:
                        sock.close()
                results[n].append(figures)
                print(f"round {round_no} subscribers={n:5} rps={figures['rps']:8.1f} "
                      f"p50={figures['p50_ms']:7.2f} ms p99={figures['p99_ms']:7.2f} ms "
                      f"cpu={figures['cpu_s']:6.2f} s non2xx={figures['non2xx']:.0f}",
                      flush=True)
    median = {n: {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms",
                                                                         "p99_ms", "cpu_s")}
              for n, runs in results.items()}
    for n, m in median.items():
        print(f"median subscribers={n:5} rps={m['rps']:8.1f} p50={m['p50_ms']:7.2f} ms "
              f"p99={m['p99_ms']:7.2f} ms cpu={m['cpu_s']:6.2f} s")
    ratio = median[args.subscribers]["p50_ms"] / median[0]["p50_ms"]
    verdict = "meets" if ratio <= 1.2 else "MISSES"
    print(f"RESULT p50 with {args.subscribers} idle subscribers = {ratio:.2f}x the p50 with "
          f"none (target <= 1.2) -> {verdict} the target")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

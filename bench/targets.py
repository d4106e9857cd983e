#!/usr/bin/env python3
"""Every figure of the performance issue, each next to its target, from one run.

Runs, one after the other on this machine (so they never share the CPU):
1. `../shared/bench/peers_inprocess.sh`: the in-process floor, LangGraph, DBOS and Madre
   (LOW plans/s, approval plans/s, parked plans), medians of the repeats;
2. `bench/chat_bench.py`: HTTP chat against the floor app, alternated, median of the rounds;
3. `bench/waiting_bench.py`: N plans parked WAITING in a Madre server (its RSS and threads,
   read from /proc: the server's own, not the client's), confirm->DONE with 4 clients,
   1,000 RUNNING plans recovered after kill -9;
4. `bench/instances_bench.py` (needs PostgreSQL: --pg or MADRE_TEST_DATABASE_URL): two
   instances against one.
Then prints one table: figure, measured, target, met or not, and the commit measured.

    python bench/targets.py                        # the issue's sizes (about 25 minutes)
    python bench/targets.py --quick                # small sizes, to try the runner (~5 min)
    python bench/targets.py --skip instances,chat  # leave some out

Each part's own output goes to --outdir (default a new folder in /tmp), next to table.txt.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PARTS = ("peers", "chat", "waiting", "instances")


@dataclasses.dataclass
class Row:
    figure: str
    measured: str
    target: str
    met: bool | None  # None: not measured


def run(name: str, command: list[str], outdir: pathlib.Path) -> str:
    """Run one part, echo its output as it comes, keep it in <outdir>/<name>.txt."""
    print(f"## {name}: {' '.join(command)}", flush=True)
    lines = []
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
    text = "".join(lines)
    (outdir / f"{name}.txt").write_text(text)
    if proc.returncode != 0:
        print(f"## {name} exited {proc.returncode}", flush=True)
    return text


def number(pattern: str, text: str) -> float | None:
    found = re.search(pattern, text)
    return float(found.group(1)) if found else None


def peers_rows(outdir: pathlib.Path) -> list[Row]:
    """From peers_inprocess.sh's per-engine outputs: medians and ratios."""
    def output(engine: str) -> str:
        path = outdir / "peers" / f"{engine}.txt"
        return path.read_text() if path.exists() else ""

    def median(engine: str, figure: str) -> float | None:
        return number(rf"SUMMARY {figure} min=\S+ median=([\d.]+)", output(engine))

    rows = []
    for figure, floor_name, times_peers in (("low", "floor_inproc_low", 3.0),
                                            ("high", "floor_inproc_high", 4.0)):
        madre, floor = median("madre", figure), median("floor", floor_name)
        lg, dbos = median("langgraph", figure), median("dbos", figure)
        label = "in-process LOW plans/s" if figure == "low" else "in-process approvals/s"
        if None in (madre, floor, lg, dbos):
            rows.append(Row(label, "not measured", "", None))
            continue
        assert madre and floor and lg and dbos
        rows.append(Row(f"{label} (floor {floor:.0f}, LangGraph {lg:.0f}, DBOS {dbos:.0f})",
                        f"{madre:.0f}: {madre / floor:.2f}x floor, {madre / lg:.2f}x LangGraph, "
                        f"{madre / dbos:.2f}x DBOS",
                        f">= 0.8x floor, >= {times_peers:.0f}x each peer",
                        madre >= 0.8 * floor and madre >= times_peers * max(lg, dbos)))
    park = output("madre")
    rate = number(r"FIGURE park run=\d+ .*park_rate_per_s=([\d.]+)", park)
    threads = number(r"FIGURE park run=\d+ .*threads_parked=(\d+)", park)
    if rate is None or threads is None:
        rows.append(Row("in-process parking", "not measured", "", None))
    else:
        rows.append(Row("in-process parking (peers run, first repeat)",
                        f"{rate:.0f} plans/s, {threads:.0f} threads", ">= 1,000/s",
                        rate >= 1000))
    return rows


def chat_rows(text: str) -> list[Row]:
    rps, p99 = number(r"throughput=([\d.]+)x", text), number(r"p99=([\d.]+)x \(target", text)
    if rps is None or p99 is None:
        return [Row("HTTP chat vs floor", "not measured", "", None)]
    return [Row("HTTP chat vs floor (wrk, one worker, SQLite)",
                f"{rps:.2f}x throughput, p99 {p99:.2f}x", ">= 1.0x, p99 <= 1.2x",
                rps >= 1.0 and p99 <= 1.2)]


def waiting_rows(text: str, waiting: int, recovered: int) -> list[Row]:
    kb, threads = number(r"rss_kb=(\d+)", text), number(r"RESULT waiting=\d+ threads=(\d+)", text)
    rate, p99 = number(r"park_per_s=(\d+)", text), number(r"confirm_p99_ms=([\d.]+)", text)
    recover = number(r"recover_\d+_s=([\d.]+)", text)
    if None in (kb, threads, rate, p99, recover):
        return [Row("parked plans (waiting_bench)", "not measured", "", None)]
    assert kb is not None and threads is not None and rate is not None
    assert p99 is not None and recover is not None
    mb = kb * 1024 / 1e6
    full = waiting >= 100_000 and recovered >= 1000  # the sizes the targets name
    return [
        Row("confirm -> DONE over HTTP, 4 clients", f"p99 {p99:.1f} ms", "< 30 ms", p99 < 30),
        Row(f"{waiting:,} WAITING in a server: its RSS, threads",
            f"{mb:.0f} MB, {threads:.0f} threads", "100,000: < 250 MB, <= 50",
            mb < 250 and threads <= 50 if full else None),
        Row("parking over HTTP (8 clients; not a target)", f"{rate:.0f} plans/s", "", None),
        Row(f"{recovered:,} RUNNING recovered after kill -9", f"{recover:.1f} s",
            "1,000: < 5 s", recover < 5 if full else None),
    ]


def instances_rows(text: str) -> list[Row]:
    ratio = number(r"RESULT two/one instances throughput=([\d.]+)x", text)
    if ratio is None:
        return [Row("two instances vs one (PostgreSQL)", "not measured", "", None)]
    return [Row("two instances vs one (PostgreSQL)", f"{ratio:.2f}x", ">= 1.6x", ratio >= 1.6)]


def table(rows: list[Row], commit: str) -> str:
    width = max(len(r.figure) for r in rows)
    mwidth = max(len(r.measured) for r in rows)
    lines = [f"== the performance issue's targets, commit {commit} ==",
             f"{'figure':{width}}  {'measured':{mwidth}}  target"]
    for r in rows:
        verdict = {True: "met", False: "NOT met", None: "-"}[r.met]
        lines.append(f"{r.figure:{width}}  {r.measured:{mwidth}}  {r.target}  [{verdict}]")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=pathlib.Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--pg", default=os.environ.get("MADRE_TEST_DATABASE_URL", ""),
                        help="PostgreSQL URL for the two-instance part (a database per round "
                             "is created and dropped)")
    parser.add_argument("--quick", action="store_true", help="small sizes: to try the runner")
    parser.add_argument("--skip", default="", help=f"comma list of {','.join(PARTS)}")
    parser.add_argument("--outdir", type=pathlib.Path)
    args = parser.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    if unknown := skip - set(PARTS):
        parser.error(f"--skip: unknown parts {sorted(unknown)}")
    outdir = args.outdir or pathlib.Path(tempfile.mkdtemp(prefix="madre-targets-"))
    outdir.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           text=True, capture_output=True).stdout.strip()
    commit += " (with uncommitted changes)" if dirty else ""
    quick = args.quick
    python = sys.executable
    rows: list[Row] = []

    if "peers" not in skip:
        sizes = (["--smoke"] if quick else ["--n-park", "2000"])
        run("peers", ["bash", str(args.shared / "peers_inprocess.sh"), *sizes,
                      "--madre-path", str(ROOT), "--outdir", str(outdir / "peers")], outdir)
        rows += peers_rows(outdir)
    if "chat" not in skip:
        sizes = ["--rounds", "1", "--duration", "5"] if quick else ["--rounds", "3",
                                                                     "--duration", "15"]
        rows += chat_rows(run("chat", [python, "bench/chat_bench.py", "--shared",
                                       str(args.shared), *sizes], outdir))
    if "waiting" not in skip:
        waiting, recovered = (2_000, 200) if quick else (100_000, 1000)
        sizes = ["--waiting", str(waiting), "--confirm", "200" if quick else "1000",
                 "--recover", str(recovered)]
        rows += waiting_rows(run("waiting", [python, "bench/waiting_bench.py", *sizes], outdir),
                             waiting, recovered)
    if "instances" not in skip:
        if not args.pg:
            rows.append(Row("two instances vs one (PostgreSQL)",
                            "not measured: no --pg / MADRE_TEST_DATABASE_URL", ">= 1.6x", None))
        else:
            sizes = ["--rounds", "1", "--duration", "5", "--kills", "1"] if quick else []
            rows += instances_rows(run("instances", [python, "bench/instances_bench.py",
                                                     "--pg", args.pg, "--shared",
                                                     str(args.shared), *sizes], outdir))
    text = table(rows, commit)
    (outdir / "table.txt").write_text(text + "\n")
    print("\n" + text + f"\n# outputs in {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

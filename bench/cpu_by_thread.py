#!/usr/bin/env python3
"""Where each plan's CPU goes: Madre in-process, CPU time per plan by thread, from /proc.

Runs plans one after the other through the embedding API (as ../shared/bench/madre_inprocess.py
does), against the shared fake Switch in a process of its own (every module URL points at it,
so its CPU is not counted here), and reads each thread's CPU time from
/proc/self/task/<tid>/schedstat (nanoseconds) and its user/system split from .../stat before
and after. Prints, per figure, plans/s, the whole process's CPU per plan, and each kind of
thread's share (the Store actor, the caller, the call pool, the plan actors, the trail ...).

    python bench/cpu_by_thread.py                         # low, high and park, 2,000 each
    python bench/cpu_by_thread.py --figures park --n 5000

Sampling profilers (py-spy, with or without --gil) misattributed time on this machine: short
Python functions on contended threads were over-counted ten-fold against a direct timing.
The kernel's per-thread accounting has no such bias, so this is what the issue notes quote.
Loopback only; stops the fake Switch it started.
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from chat_bench import fake_switch  # noqa: E402

from madre import Madre, Settings  # noqa: E402
from madre.contracts import ControlRequest, ControlStatus, Status  # noqa: E402

FIGURES = ("low", "high", "park")
WARM_UP = 30  # plans per figure not counted: imports, pools, caches


# ------------------------------------------------------------------ per-thread accounting

Sample = dict[int, tuple[str, int, int, int]]  # tid -> (kind, cpu ns, user ticks, sys ticks)


def kind_of(name: str) -> str:
    """A thread's kind from its name: "madre-plan-17" and "madre-plan-3" are one kind."""
    return re.sub(r"[-_]?\d+$", "", name) or name


def sample() -> Sample:
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: Sample = {}
    for entry in os.listdir("/proc/self/task"):
        tid = int(entry)
        try:
            cpu_ns = int(pathlib.Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0])
            stat = pathlib.Path(f"/proc/self/task/{tid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended between the listing and the read
        fields = stat.rsplit(")", 1)[1].split()
        out[tid] = (kind_of(names.get(tid, "?")), cpu_ns, int(fields[11]), int(fields[12]))
    return out


def report(figure: str, n: int, wall: float, process_cpu: float, before: Sample,
           after: Sample) -> None:
    cpu: collections.Counter[str] = collections.Counter()
    user: collections.Counter[str] = collections.Counter()
    system: collections.Counter[str] = collections.Counter()
    for tid, (kind, ns, utime, stime) in after.items():
        _, ns0, u0, s0 = before.get(tid, (kind, 0, 0, 0))
        cpu[kind] += ns - ns0
        user[kind] += utime - u0
        system[kind] += stime - s0
    counted = sum(cpu.values()) / 1e9
    print(f"\n{figure}: {n / wall:.1f} plans/s, wall {wall / n * 1e3:.3f} ms/plan, "
          f"process CPU {process_cpu / n * 1e3:.3f} ms/plan "
          f"({process_cpu / wall:.2f} cores busy)")
    print(f"  {'thread':<22} {'CPU ms/plan':>11} {'share':>6} {'of it system':>13}")
    for kind, ns in cpu.most_common():
        if ns <= 0:
            continue
        ticks = user[kind] + system[kind]
        sys_part = f"{100 * system[kind] / ticks:.0f} %" if ticks else "-"
        print(f"  {kind:<22} {ns / 1e6 / n:>11.3f} {100 * ns / 1e9 / process_cpu:>5.1f}% "
              f"{sys_part:>13}")
    gone = process_cpu - counted
    if gone > 0.01 * process_cpu:
        print(f"  {'(threads that ended)':<22} {gone / n * 1e3:>11.3f} "
              f"{100 * gone / process_cpu:>5.1f}%")


# ------------------------------------------------------------------ the figures


def plan_makers(madre: Madre) -> dict[str, Callable[[], None]]:
    """One plan of each figure, run to where the figure ends."""
    wait_s = 30.0

    def low() -> None:  # a LOW control: one CALL_SWITCH step, waited for to DONE
        answer = madre.control(ControlRequest(target="switch", action="chat"))
        assert answer.status is ControlStatus.ACCEPTED, answer
        plan = madre.wait_for_plan(answer.plan_id, wait_s, final=True)
        assert plan is not None and plan.status is Status.DONE, plan

    def high() -> None:  # a HIGH control parked, confirmed with its token, run to DONE
        answer = madre.control(ControlRequest(target="shub", action="delete"))
        assert answer.confirm_token, answer
        confirmed = madre.confirm(answer.plan_id, answer.confirm_token)
        if confirmed.plan_status is not Status.DONE:
            plan = madre.wait_for_plan(answer.plan_id, wait_s, final=True)
            assert plan is not None and plan.status is Status.DONE, plan

    def park() -> None:  # a HIGH control parked WAITING, nothing more
        answer = madre.control(ControlRequest(target="shub", action="delete"))
        assert answer.status is ControlStatus.PENDING_CONFIRMATION, answer

    return {"low": low, "high": high, "park": park}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--figures", default=",".join(FIGURES),
                        help=f"comma list of {','.join(FIGURES)}")
    parser.add_argument("--n", type=int, default=2000, help="plans per figure")
    parser.add_argument("--shared", type=pathlib.Path, default=ROOT.parent / "shared" / "bench")
    args = parser.parse_args()
    figures = [f for f in args.figures.split(",") if f]
    unknown = [f for f in figures if f not in FIGURES]
    if unknown:
        parser.error(f"unknown figures {unknown}; use some of {', '.join(FIGURES)}")
    if not (args.shared / "fake_switch.py").exists():
        parser.error(f"no fake_switch.py in {args.shared}: give --shared")
    with tempfile.TemporaryDirectory(prefix="madre-cpu-") as work, \
            fake_switch(args.shared, pathlib.Path(work)) as url:
        settings = Settings(
            database_url=f"sqlite:///{work}/madre.db", forensic_dir=f"{work}/forensic",
            switch_url=url, hermes_url=url, hormiguero_url=url, manifestator_url=url,
            shub_url=url, spawner_url=url, confirm_ttl_seconds=3600)
        with Madre(settings) as madre:
            makers = plan_makers(madre)
            print(f"Madre {ROOT}, {args.n} plans per figure, one after the other; "
                  f"fake Switch {url} (its own process)")
            for figure in figures:
                one = makers[figure]
                for _ in range(WARM_UP):
                    one()
                before, cpu0, t0 = sample(), time.process_time(), time.perf_counter()
                for _ in range(args.n):
                    one()
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                report(figure, args.n, wall, cpu, before, sample())
    return 0


if __name__ == "__main__":
    sys.exit(main())

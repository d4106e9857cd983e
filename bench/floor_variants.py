#!/usr/bin/env python3
"""The in-process floor, and the same floor made to do the durable work Madre must do.

The shared floor (../shared/bench/floor_app.py, as floor_inprocess.py calls it) runs a LOW
plan as one transaction and one call to Switch, and never writes the plan's result. Madre's
contract asks more of every plan: its result and audit rows are written durably after the
call (a second transaction), and a chat message is parsed by asking Switch first (a second
call). This runs, alternated in rounds, each on a fresh SQLite file:

  floor        _persist_low + _call_switch                         (1 transaction, 1 call)
  +result      floor, then _finish with its audit rows             (2 transactions, 1 call)
  +parse       +result, with a first _call_switch for the parse    (2 transactions, 2 calls)

and prints each one's median plans/s and its ratio to the floor: what the floor itself
would score against the performance issue's ratio targets if it did Madre's work. (Over
HTTP, floor_app.py's FLOOR_FINAL_UPDATE=1 adds the same second transaction.)

    python bench/floor_variants.py                  # 2,000 plans, 3 rounds
    python bench/floor_variants.py --n 500 --rounds 1

Starts the shared fake Switch on a loopback port and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from chat_bench import fake_switch  # noqa: E402

VARIANTS = {
    "floor": "1 transaction, 1 call",
    "+result": "2 transactions, 1 call",
    "+parse": "2 transactions, 2 calls",
}
WARM_UP = 20


def plan_runner(floor: Any, variant: str) -> Callable[[], None]:
    """One LOW plan as `variant` runs it, with floor_app's own functions."""

    def one() -> None:
        plan_id, intent_id = str(uuid.uuid4()), str(uuid.uuid4())
        plan_json = json.dumps(floor._plan(plan_id, intent_id, "s", "hello"))
        intent = floor._persist_low(plan_id, intent_id, "s", "hello madre",
                                    json.dumps({"message": "hello"}), plan_json)
        if variant == "+parse":
            floor._call_switch("hello madre")  # Madre asks Switch to read the message first
        answer = floor._call_switch("hello madre")
        assert answer["status"] == "ok", answer
        if variant != "floor":
            floor._finish(plan_id, intent, plan_json, True)  # the result and its audit rows

    return one


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="plans per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shared", type=pathlib.Path, default=ROOT.parent / "shared" / "bench")
    args = parser.parse_args()
    if not (args.shared / "floor_app.py").exists():
        parser.error(f"no floor_app.py in {args.shared}: give --shared")
    with tempfile.TemporaryDirectory(prefix="madre-floor-") as work, \
            fake_switch(args.shared, pathlib.Path(work)) as url:
        db = pathlib.Path(work) / "floor.db"
        # floor_app reads these when it is imported.
        os.environ.update(FLOOR_DB=str(db), SWITCH_URL=url)
        sys.path.insert(0, str(args.shared))
        import floor_app as floor  # noqa: PLC0415

        def fresh() -> None:
            floor.db.close()
            for suffix in ("", "-wal", "-shm"):
                pathlib.Path(f"{db}{suffix}").unlink(missing_ok=True)
            floor.db.connect()
            floor.db.create_tables([floor.IntentLog, floor.Task, floor.Context,
                                    floor.MadreAction])

        rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for round_no in range(1, args.rounds + 1):
            for variant in VARIANTS:
                fresh()
                one = plan_runner(floor, variant)
                for _ in range(WARM_UP):
                    one()
                started = time.perf_counter()
                for _ in range(args.n):
                    one()
                rates[variant].append(args.n / (time.perf_counter() - started))
                print(f"round {round_no} {variant:<8} {rates[variant][-1]:7.1f} plans/s",
                      flush=True)
        floor.db.close()
    base = statistics.median(rates["floor"])
    print()
    for variant, work_done in VARIANTS.items():
        median = statistics.median(rates[variant])
        print(f"{variant:<8} ({work_done:<23}) median {median:7.1f} plans/s = "
              f"{median / base:.2f}x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())

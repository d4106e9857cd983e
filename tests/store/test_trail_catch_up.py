"""The forensic trail is complete: it copies the committed rows after its own cursor, so
whatever it did not get (a kill, a torn last line, a full disk) is copied on the next try.

Checked with `madre.trail_check.compare` (what `madre audit verify --db` prints): no row
missing, none behind, and the chain intact.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
from helpers import fill, small_disk, table_rows

from madre import Madre
from madre.contracts.intake import ControlRequest
from madre.forensics import ForensicTrail, verify
from madre.trail_check import compare

DENIED = ControlRequest(target="madre", action="stop")  # an intent row and an audit row


def records(trail: pathlib.Path) -> list[dict]:
    return [json.loads(line) for path in sorted(trail.glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def complete(madre: Madre, trail: pathlib.Path) -> None:
    """The trail verifies and holds every row of the database, nothing behind."""
    assert verify(trail).ok, verify(trail).describe()
    found = compare(trail, madre.database)
    assert (found.missing, found.behind) == (0, 0), found.describe()


@pytest.fixture
def trail(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "trail"


def written(start_madre, trail: pathlib.Path, n: int = 5) -> Madre:
    madre = start_madre(forensic_dir=str(trail))
    for _ in range(n):
        madre.control(DENIED)
    madre.stop()
    return madre


def test_a_running_madre_keeps_the_trail_complete(start_madre, trail) -> None:
    madre = start_madre(forensic_dir=str(trail))
    for _ in range(5):
        madre.control(DENIED)
    madre.trail.catch_up(timeout=30)
    complete(madre, trail)
    assert madre.readiness().trail_behind == 0


def test_a_torn_last_line_is_cut_recorded_and_its_rows_copied_again(start_madre,
                                                                    trail) -> None:
    written(start_madre, trail)
    [path] = list(trail.glob("*.jsonl"))
    text = path.read_bytes()
    last = text.rstrip(b"\n").rsplit(b"\n", 1)[1]
    path.write_bytes(text[:len(text) - len(last) // 2 - 1])  # half the last line, no newline
    assert not verify(trail).ok

    again = start_madre(forensic_dir=str(trail))

    [repair] = [r for r in records(trail) if r["event"] == "trail_repaired"]
    assert repair["cut_text"] == last[:len(last) - len(last) // 2].decode()
    assert repair["cut_bytes"] == len(last) - len(last) // 2
    complete(again, trail)


def test_rows_committed_but_never_copied_are_copied_when_madre_starts(start_madre,
                                                                     trail) -> None:
    written(start_madre, trail)
    [path] = list(trail.glob("*.jsonl"))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-4]), encoding="utf-8")  # as if killed before copying

    again = start_madre(forensic_dir=str(trail))

    complete(again, trail)
    copied = [r["row_id"] for r in records(trail) if r.get("table") == "madre_actions"]
    assert copied == [r["id"] for r in table_rows(again, "madre_actions")]


def test_audit_verify_db_says_how_many_rows_the_trail_is_behind(start_madre, trail,
                                                                database_url) -> None:
    written(start_madre, trail)
    [path] = list(trail.glob("*.jsonl"))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-3]), encoding="utf-8")

    done = subprocess.run([sys.executable, "-m", "madre", "audit", "verify", str(trail),
                           "--db", database_url], capture_output=True, text=True, timeout=60,
                          env={**os.environ}, check=False)

    assert done.returncode == 0, done
    assert "3 rows behind the database" in done.stdout
    assert "no row missing" in done.stdout


def test_a_row_the_trail_skipped_is_reported_missing(madre, tmp_path) -> None:
    madre.control(DENIED)
    madre.control(DENIED)
    ids = [r["id"] for r in table_rows(madre, "madre_actions")]
    intents = [r["id"] for r in table_rows(madre, "intents_log")]
    forged = tmp_path / "forged"
    trail = ForensicTrail(forged)
    trail.append([{"event": "denied", "table": "madre_actions", "row_id": ids[1],
                   "cursor": {"intents_log": intents[-1], "madre_actions": ids[1]}}])
    trail.close()

    found = compare(forged, madre.database)

    assert found.missing == 1 + len(intents) and found.first_missing == ("intents_log",
                                                                          intents[0])


@pytest.fixture
def full_disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    with small_disk(tmp_path / "trail-disk", "256k") as mount:
        yield mount


def test_a_trail_on_a_full_disk_shows_the_lag_and_catches_up_when_space_returns(
        start_madre, full_disk) -> None:
    trail = full_disk / "trail"
    madre = start_madre(forensic_dir=str(trail))
    madre.control(DENIED)
    madre.trail.catch_up(timeout=30)
    filler = fill(full_disk)

    for _ in range(20):  # Madre still answers: the rows are in the database
        assert madre.control(DENIED).status.value == "denied"
    madre.trail.catch_up(timeout=30)
    ready = madre.readiness()
    assert ready.status == "ready" and ready.trail == "failing"
    assert ready.trail_behind and ready.trail_behind > 0
    assert b"madre_trail_behind_rows " + str(float(ready.trail_behind)).encode() in (
        madre.metrics.exposition())

    filler.unlink()
    madre.trail.catch_up(timeout=30)

    assert madre.readiness().trail == "ok" and madre.readiness().trail_behind == 0
    complete(madre, trail)


def test_two_instances_on_one_trail_folder_write_it_once_and_completely(
        database_url, start_madre, trail) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("several instances share a PostgreSQL database only")
    first = start_madre(forensic_dir=str(trail))
    second = start_madre(forensic_dir=str(trail))
    for _ in range(5):
        first.control(DENIED)
        second.control(DENIED)

    first.trail.catch_up(timeout=30)
    second.trail.catch_up(timeout=30)

    assert second.readiness().trail == "busy"  # the first holds the folder's lock
    complete(first, trail)  # ... and copied the second's rows too
    copied = [r["row_id"] for r in records(trail) if r.get("table") == "madre_actions"]
    assert len(copied) == len(set(copied))

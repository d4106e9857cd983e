"""A full disk, for real: the SQLite database on a small tmpfs that the test fills up.

While the disk is full every write is refused with a 503 whose detail names the cause
("disk full", not "cannot rollback - no transaction is active"); /health says `db: down`
(from the last write's outcome: reads still work) and /readyz is 503 db_down. When space
returns, the prober's next round checkpoints the WAL into the database file and Madre
takes writes again by itself; an intent refused meanwhile, retried with its correlation id,
is a fresh attempt that runs. The forensic trail lives on another disk and misses nothing.

Needs root (mount); skipped where tmpfs cannot be mounted.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest
from helpers import TOKEN, WAIT, assert_envelope, fill, make_settings, small_disk
from starlette.testclient import TestClient

from madre import Madre, create_app
from madre.forensics import verify
from madre.model import Status
from madre.store.feed import TrailSource

DENIED = {"target": "madre", "action": "stop"}  # one small write each


@pytest.fixture
def disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    with small_disk(tmp_path / "disk", "3m") as mount:
        yield mount


def test_a_full_disk_is_reported_as_such_and_madre_recovers_when_space_returns(
        disk, tmp_path, standins) -> None:
    trail = tmp_path / "trail"
    settings = make_settings(f"sqlite:///{disk}/madre.db", standins, forensic_dir=str(trail),
                             health_interval_seconds=3600.0)
    with Madre(settings) as madre, TestClient(create_app(madre),
                                              headers={"X-VX11-Token": TOKEN}) as client:
        assert client.post("/madre/control", json=DENIED).status_code == 200
        filler = fill(disk)

        # The WAL may hold some room still: write until the disk refuses.
        for _ in range(2000):
            refused = client.post("/madre/control", json=DENIED)
            if refused.status_code != 200:
                break
        body = assert_envelope(refused, 503, "store_unavailable")
        assert "disk full" in body["detail"]
        assert "no transaction is active" not in body["detail"]
        health = client.get("/health").json()
        assert health["db"] == "down" and health["status"] == "degraded"
        assert "disk full" in health["checks"]["db"]["error"]
        ready = assert_envelope(client.get("/readyz"), 503, "not_ready")
        assert ready["detail"].startswith("db_down:") and "disk full" in ready["detail"]
        intent = {"source": "ops", "action": "ping", "target": "hermes",
                  "correlation_id": "while-full"}
        assert client.post("/madre/intent", json=intent).status_code == 503
        madre.prober.probe_once()  # still full: still down
        assert client.get("/health").json()["db"] == "down"

        filler.unlink()  # space returns
        madre.prober.probe_once()  # what the prober does every MADRE_HEALTH_INTERVAL_SECONDS

        assert client.get("/health").json()["db"] == "ok"
        assert client.get("/readyz").status_code == 200
        assert os.path.getsize(disk / "madre.db-wal") < 256 * 1024  # checkpointed, not regrown
        retried = client.post("/madre/intent", json=intent)
        assert retried.status_code == 200, retried.text
        answer = retried.json()
        assert not answer["duplicate"] and answer["plan_id"]
        assert madre.wait_for_plan(answer["plan_id"], WAIT).status is Status.DONE
        assert client.post("/madre/control", json=DENIED).status_code == 200
        madre.trail.catch_up(timeout=WAIT)
        heads = TrailSource(madre.database).heads()
    verdict = verify(trail)
    assert verdict.ok and verdict.cursor == heads

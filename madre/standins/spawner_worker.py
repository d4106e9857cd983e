"""The Spawner stand-in's worker: it plays the Spawner's side of `daughter_tasks`.

Madre never launches jobs: a SPAWNER_REQUEST step only INSERTs a `daughter_tasks` row and its
plan waits. The real Spawner reads those rows from the shared database, runs the job, and
reports back. This worker does the same on one machine, for tests and the quick start: it
picks up `pending` rows, marks them `running`, "runs" them for `behaviour.complete_after`
seconds, reports the outcome to Madre (`POST /madre/callback/spawn`) and marks the row
`done` or `failed`. It is the Spawner here, so these UPDATEs are its to make, not Madre's.

It must read the database Madre writes: given a SQLite file that does not exist (yet), it
waits for Madre to create it instead of creating an empty one of its own.
"""

from __future__ import annotations

import heapq
import logging
import pathlib
import threading
import time
import uuid
from typing import Any

import peewee
import requests

from madre.settings import sqlite_file
from madre.store.db import open_database

log = logging.getLogger("madre.standins.spawner")


class SpawnerWorker:
    """Polls `daughter_tasks` every `poll` seconds; reports each job once."""

    def __init__(
        self,
        database_url: str,
        *,
        madre_url: str,
        token: str,
        behaviour: Any,
        poll: float = 0.05,
    ) -> None:
        self._database_url = database_url
        self.madre_url = madre_url.rstrip("/")
        self._token = token
        self._behaviour = behaviour
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="standin-spawner", daemon=True)
        self._due: list[tuple[float, int]] = []
        self.reports: list[dict[str, Any]] = []
        self._db: peewee.Database | None = None

    def __enter__(self) -> SpawnerWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SpawnerWorker:
        self._thread.start()
        return self

    @property
    def waiting_for(self) -> pathlib.Path | None:
        """The SQLite file it waits for Madre to create, or None when it reads the database."""
        file = sqlite_file(self._database_url)
        return file if file is not None and not file.exists() else None

    def _open(self) -> bool:
        """Open the database once there is one to open (never creates a SQLite file)."""
        if self._db is None and self.waiting_for is None:
            self._db = open_database(self._database_url)
        return self._db is not None

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._db is not None:
            self._db.close_all() if hasattr(self._db, "close_all") else self._db.close()

    def _run(self) -> None:
        with requests.Session() as session:
            session.trust_env = False
            while not self._stop.is_set():
                if not self._open():
                    self._stop.wait(self._poll * 10)
                    continue
                try:
                    self._claim_new_jobs()
                    self._report_due_jobs(session)
                except peewee.DatabaseError as exc:  # e.g. Madre has not created the tables yet
                    log.debug("spawner stand-in: database not ready: %s", exc)
                self._stop.wait(self._poll)

    def _sql(self, sql: str) -> str:
        assert self._db is not None
        return sql.replace("?", self._db.param)

    def _claim_new_jobs(self) -> None:
        assert self._db is not None
        with self._db.connection_context():
            rows = self._db.execute_sql(
                self._sql("SELECT id FROM daughter_tasks WHERE status = ? ORDER BY id"),
                ("pending",),
            ).fetchall()
            for (job_id,) in rows:
                claimed = self._db.execute_sql(
                    self._sql("UPDATE daughter_tasks SET status = ? WHERE id = ? AND status = ?"),
                    ("running", job_id, "pending"),
                ).rowcount
                if claimed:
                    due = time.monotonic() + float(self._behaviour.complete_after)
                    heapq.heappush(self._due, (due, int(job_id)))

    def _report_due_jobs(self, session: requests.Session) -> None:
        assert self._db is not None
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, job_id = heapq.heappop(self._due)
            ok = getattr(self._behaviour, "spawn_outcome", "ok") == "ok"
            body: dict[str, Any] = {
                "daughter_task_id": job_id,
                "status": "ok" if ok else "error",
                "result": {"exit_code": 0 if ok else 1, "spawn_uuid": str(uuid.uuid4()),
                           "output": "stand-in job finished"},
            }
            if not ok:
                body["error"] = "the stand-in job exited with code 1"
            try:
                answer = session.post(self.madre_url + "/madre/callback/spawn", json=body,
                                      headers={"X-VX11-Token": self._token}, timeout=10)
                status: int | None = answer.status_code
            except requests.RequestException as exc:
                log.warning("spawner stand-in could not report job %s: %s", job_id, exc)
                status = None
            self.reports.append({**body, "http_status": status})
            with self._db.connection_context():
                self._db.execute_sql(
                    self._sql("UPDATE daughter_tasks SET status = ?, finished_at = ? WHERE id = ?"),
                    ("done" if ok else "failed", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                     job_id),
                )


"""The answers of /health, /readyz and /madre/instances, built from cached state.

Pure: they take what the health board, the trail's status and the membership last saw, and
never wait on a module or the database (a load balancer's probe must answer when all hang).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from madre.actors.trail import TrailState
from madre.contracts.health import (
    DependencyCheck,
    HealthResponse,
    InstanceList,
    InstanceView,
    Readiness,
)
from madre.delegation.health import HealthBoard
from madre.instances import InstanceInfo
from madre.version import __version__


def instance_list(instance_id: str, alive: Sequence[InstanceInfo]) -> InstanceList:
    """The instances alive on this database, as of this one's last round."""
    return InstanceList(instance_id=instance_id, instances=[
        InstanceView(instance_id=i.instance_id, host=i.host, pid=i.pid,
                     started_at=i.started_at, heartbeat_at=i.heartbeat_at)
        for i in alive])


def health_answer(board: HealthBoard, *, now: dt.datetime, instances: InstanceList
                  ) -> HealthResponse:
    """`degraded` when the database or any module is down; each check says when it was
    made and why it failed."""
    states = board.deps()
    deps = {name: state.state for name, state in states.items()}
    db = board.db()
    db_state = "down" if db.state == "down" else "ok"
    degraded = db_state == "down" or any(v == "down" for v in deps.values())
    checks = {
        name: DependencyCheck(state=s.state, checked_at=s.checked_at, error=s.error)
        for name, s in {**states, "db": db}.items()
    }
    return HealthResponse(status="degraded" if degraded else "ok", version=__version__,
                          time=now, deps=deps, db=db_state, checks=checks,
                          instance=instances.instance_id, instances=instances.instances)


def readiness_answer(board: HealthBoard, trail: TrailState | None, *, started: bool,
                     stopping: bool) -> Readiness:
    """Whether a load balancer should send work here (`trail`: None before it started)."""
    db = board.db()
    db_state = {"up": "ok", "down": "down"}.get(db.state, "unknown")

    def answer(status: str, detail: str) -> Readiness:
        return Readiness(status=status, detail=detail, db=db_state,
                         trail=trail.state if trail else "starting",
                         trail_behind=trail.behind if trail else None)

    if stopping:
        return answer("draining", "Madre is stopping and takes no new work")
    if not started:
        return answer("starting", "Madre is starting")
    if db.state == "down":
        return answer("db_down", db.error or "the database does not answer")
    if db.state != "up":
        return answer("starting", "the database has not been checked yet")
    return answer("ready", "Madre takes work")

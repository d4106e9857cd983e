"""How Madre says how it is: `GET /health` (with its dependencies), `/livez`, `/readyz`,
and the instances alive on its database (`GET /madre/instances`)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class DependencyCheck(BaseModel):
    state: str  # up | down | unknown
    checked_at: dt.datetime | None = None
    error: str | None = None


class InstanceView(BaseModel):
    """One Madre instance on the database, as its liveness row says."""

    instance_id: str
    host: str
    pid: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime


class InstanceList(BaseModel):
    instance_id: str  # the instance that answers
    instances: list[InstanceView]


class HealthResponse(BaseModel):
    module: str = "madre"
    status: str
    version: str
    time: dt.datetime
    deps: dict[str, str]
    db: str
    checks: dict[str, DependencyCheck] = Field(default_factory=dict)
    instance: str | None = None  # this instance's id
    instances: list[InstanceView] = Field(default_factory=list)  # those alive on its database


class Liveness(BaseModel):
    status: str = "alive"


class Readiness(BaseModel):
    """`GET /readyz`: `ready` (200), or why not: `starting`, `draining`, `db_down` (503)."""

    status: str
    detail: str
    db: str  # ok | down | unknown
    trail: str  # the forensic trail: ok | failing | busy (another Madre writes it) | starting
    trail_behind: int | None  # committed rows the forensic trail does not hold yet

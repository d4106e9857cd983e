"""This instance among the others on one database: it registers, beats, keeps the leases of
the plans it runs, and takes over the plans of instances that died.

Every second (or every third of a lease when that is shorter) one round:
1. heartbeat: its liveness row and every lease it holds are renewed in one write; a plan
   it runs whose lease it no longer holds (another instance took it over, a cancel ended
   it elsewhere) has its actor stopped, without a write (fencing);
2. takeover: the owners of plans that must run are looked at; an owner whose lease ran out,
   or whose session is gone (PostgreSQL frees a dead process's advisory lock at once; on
   SQLite every other owner is dead, one instance per file), loses its plans to this
   instance, which claims them (new epoch) and starts them from their last saved step;
3. the intents those dead instances took in and never planned are closed, audited.
When the heartbeat cannot be written for a whole lease, this instance stops its plans
itself: another instance may be running them by now.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from madre.instances import InstanceInfo

log = logging.getLogger("madre.membership")

# Plans claimed per write, and writes per round: a round takes a whole backlog of up to
# CLAIM_BATCH * CLAIM_BATCHES plans at once (1,000 plans left by a kill -9 resume together,
# not 100 a round), and leaves the rest of a larger one to the next round and to the others.
CLAIM_BATCH = 100
CLAIM_BATCHES = 10


class Liveness(Protocol):
    """Whether another instance's session is gone (PostgreSQL: its advisory lock is free)."""

    def is_dead(self, instance_id: str) -> bool: ...


class EveryOtherIsDead:
    """SQLite: the file lock proves no other instance runs on this database."""

    def is_dead(self, instance_id: str) -> bool:
        return True


@dataclasses.dataclass(frozen=True)
class Round:
    """What one round did."""

    renewed: int
    fenced: tuple[str, ...]
    claimed: tuple[str, ...]
    buried: tuple[str, ...]


def dead_owners(owners: Sequence[tuple[str, dt.datetime | None]], *, me: str,
                now: dt.datetime, liveness: Liveness) -> list[str]:
    """The owners (other than `me`) whose plans may be taken now: their lease ran out, or
    their session is known to be gone."""
    dead = []
    for owner, soonest in owners:
        if owner == me:
            continue
        if soonest is None or soonest <= now or liveness.is_dead(owner):
            dead.append(owner)
    return dead


def instances_to_bury(instances: Sequence[InstanceInfo], *, me: str, now: dt.datetime,
                      lease: float, liveness: Liveness) -> list[InstanceInfo]:
    """Instances that stopped or died and whose leftovers (unplanned intents) are still
    to be closed: not this one, not marked dead yet, and no longer beating (or known dead)."""
    found = []
    for info in instances:
        if info.instance_id == me or info.state == "dead":
            continue
        if info.state == "stopped" or not info.beating(now, lease) or liveness.is_dead(
                info.instance_id):
            found.append(info)
    return found


class Membership:
    """The rounds above, on a thread of their own while Madre runs."""

    def __init__(self, *, me: InstanceInfo, store: Any, repo: Any, supervisor: Any,
                 liveness: Liveness, clock: Callable[[], dt.datetime], lease: float,
                 monotonic: Callable[[], float]) -> None:
        self.me = me
        self._store = store
        self._repo = repo
        self._supervisor = supervisor
        self._liveness = liveness
        self._now = clock
        self._monotonic = monotonic
        self.lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="madre-membership", daemon=False)
        self._last_beat = monotonic()
        self._holding = True
        self._alive: list[InstanceInfo] = [me]  # as last read: what /health shows

    @property
    def instance_id(self) -> str:
        return self.me.instance_id

    @property
    def interval(self) -> float:
        """Seconds between rounds: a takeover should not wait long after a death is known."""
        return min(1.0, self.lease / 3)

    def holds_leases(self) -> bool:
        """Whether this instance's last heartbeat is recent enough that its leases stand:
        a Plan actor starts no new call otherwise."""
        return self._holding and self._monotonic() - self._last_beat < self.lease * 2 / 3

    def alive(self) -> list[InstanceInfo]:
        """The instances beating as of the last round (this one included)."""
        return list(self._alive)

    def register(self) -> None:
        self._store.save_instance(self.instance_id, self.me.to_json(), new=True)

    def start(self) -> None:
        self._thread.start()

    def stop_rounds(self) -> None:
        """No more rounds (first thing when Madre stops: nothing new is taken over)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def release(self) -> None:
        """Once this instance's plan actors have stopped: let the plans still held go
        (others take them at once), and say this instance stopped."""
        self.stop_rounds()
        try:
            self._store.release_leases(self.instance_id)
            stopped = dataclasses.replace(self.me, heartbeat_at=self._now(), state="stopped")
            self._store.save_instance(self.instance_id, stopped.to_json(), new=False)
        except Exception:  # noqa: BLE001 - stopping: the leases will run out by themselves
            log.warning("could not release this instance's leases on stop", exc_info=True)

    def round(self, *, beat: bool = True) -> Round:
        """One heartbeat, takeover and burial round (the thread's, or a test's)."""
        now = self._now()
        renewed, fenced = self._heartbeat(now) if beat else (0, [])
        claimed = self._take_over(now)
        buried = self._bury(now)
        return Round(renewed, tuple(fenced), tuple(claimed), tuple(buried))

    # ------------------------------------------------------------------ the three steps

    def _heartbeat(self, now: dt.datetime) -> tuple[int, list[str]]:
        beat = dataclasses.replace(self.me, heartbeat_at=now)
        # The live plans are read before the renewal is written: a plan's creation is queued
        # before its actor starts, so each of these was written by then (or is in the same
        # commit). Read after, a plan created meanwhile would look lost and be stopped.
        live = self._supervisor.live_plans()
        try:
            held = self._store.renew_leases(self.instance_id, beat.to_json(),
                                            lease_until=now + dt.timedelta(seconds=self.lease))
        except Exception:  # noqa: BLE001 - the database is away: fence ourselves in time
            log.warning("heartbeat failed", exc_info=True)
            if self._monotonic() - self._last_beat >= self.lease * 2 / 3 and self._holding:
                self._holding = False
                lost = self._supervisor.live_plans()
                log.error("no heartbeat for most of a lease: stopping %d plans", len(lost))
                self._supervisor.fence(lost)
                return 0, list(lost)
            return 0, []
        self._last_beat, self._holding = self._monotonic(), True
        lost = [p for p in live if p not in held]
        if lost:  # those that ended meanwhile (no lease: at rest) are no loss
            still = set(self._supervisor.live_plans())
            lost = [p for p in lost if p in still]
        if lost:
            # Taken over, ended elsewhere, or brought to rest here a moment ago by an actor
            # that is stopping: each actor knows which, and warns only for a real loss.
            log.info("live plans without a lease: stopping their actors here",
                     extra={"plan_ids": lost})
            self._supervisor.fence(lost)
        return len(held), lost

    def _take_over(self, now: dt.datetime) -> list[str]:
        if not self._holding:
            return []
        dead = dead_owners(self._repo.active_owners(), me=self.instance_id, now=now,
                           liveness=self._liveness)
        claimed: list[tuple[str, int]] = []
        for _ in range(CLAIM_BATCHES):
            batch = self._store.claim_plans(self.instance_id, dead_owners=dead,
                                            lease_until=now + dt.timedelta(seconds=self.lease),
                                            limit=CLAIM_BATCH)
            for plan_id, _ in batch:
                self._supervisor.activate(plan_id)
            claimed += batch
            if len(batch) < CLAIM_BATCH:  # nothing more to take
                break
        if claimed:
            log.warning("took over %d plans", len(claimed),
                        extra={"from": dead, "plan_ids": [p for p, _ in claimed]})
        return [p for p, _ in claimed]

    def _bury(self, now: dt.datetime) -> list[str]:
        known = [i for i in (InstanceInfo.from_json(iid, value)
                             for iid, value in self._repo.instances()) if i is not None]
        gone = instances_to_bury(known, me=self.instance_id, now=now, lease=self.lease,
                                 liveness=self._liveness)
        buried = {i.instance_id for i in gone}
        self._alive = [i for i in known if i.instance_id not in buried and i.state == "running"]
        for info in gone:
            self._store.bury_instance(info.instance_id,
                                      dataclasses.replace(info, state="dead").to_json(),
                                      before=now)
        return [i.instance_id for i in gone]

    def _run(self) -> None:
        beaten = self._monotonic()
        while not self._stop.wait(self.interval):
            due = self._monotonic() - beaten >= self.lease / 3
            try:
                self.round(beat=due)
            except Exception:  # a round must never end the rounds
                log.exception("membership round failed")
            if due:
                beaten = self._monotonic()

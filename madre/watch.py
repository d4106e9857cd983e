"""Waiting for a plan's outcome (WAITING, DONE or ERROR) without polling.

A caller registers a watch *before* it starts or wakes a plan, then waits on it; whoever
settles a plan (its Plan actor, a command on a passive plan) publishes it here. Chat uses
this to answer with the plan's outcome; tests and embedders through `Madre.wait_for_plan`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict

import pykka

from madre.model import FINAL_STATUSES, SETTLED_STATUSES, Plan, Status


class Watch:
    """One caller waiting for one plan to reach a status in `accept`."""

    def __init__(self, watchers: Watchers, plan_id: str,
                 accept: frozenset[Status] = SETTLED_STATUSES) -> None:
        self._hub = watchers
        self.plan_id = plan_id
        self.accept = accept
        self.future: pykka.ThreadingFuture[Plan] = pykka.ThreadingFuture()

    def wait(self, timeout: float) -> Plan | None:
        """The settled plan, or None if it did not settle within `timeout` seconds."""
        try:
            return self.future.get(timeout=max(timeout, 0.0))
        except pykka.Timeout:
            return None
        finally:
            self._hub.forget(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self._hub.forget(self)


ENDED_KEPT = 1024  # plans that ended lately, kept to answer a waiter that comes after the end


class Watchers:
    """Thread-safe registry of watches per plan id."""

    def __init__(self, *, ended_kept: int = ENDED_KEPT) -> None:
        self._lock = threading.Lock()
        self._watches: defaultdict[str, list[Watch]] = defaultdict(list)
        # Plans an actor of this instance runs from their creation until they settle: one
        # published here when it does, so a waiter needs no read of it first.
        self._running: set[str] = set()
        # The last plans published DONE or ERROR: an end never changes, so a waiter that comes
        # after it is answered from here, without reading the plan back.
        self._ended: OrderedDict[str, Plan] = OrderedDict()
        self._ended_kept = ended_kept

    def watch(self, plan_id: str, *, final: bool = False) -> Watch:
        """A watch woken when the plan settles; with `final`, only when it ends (DONE/ERROR)."""
        with self._lock:
            return self._register(plan_id, final)

    def expect(self, plan_id: str) -> None:
        """`plan_id` is about to run here: it is published when it settles (or, if its
        actor stops without settling it, `unexpect`ed)."""
        with self._lock:
            self._running.add(plan_id)

    def unexpect(self, plan_id: str) -> None:
        with self._lock:
            self._running.discard(plan_id)

    def ended(self, plan_id: str) -> Plan | None:
        """`plan_id` as it ended (DONE or ERROR), if it ended here lately; else None."""
        with self._lock:
            return self._ended.get(plan_id)

    def watch_running(self, plan_id: str, *, final: bool = False) -> Watch | None:
        """A watch of `plan_id` if it runs here and has not settled (it will be published),
        else None: the caller must read the plan, it may have settled already."""
        with self._lock:
            return self._register(plan_id, final) if plan_id in self._running else None

    def _register(self, plan_id: str, final: bool) -> Watch:
        """A new watch of `plan_id`, registered (the caller holds the lock)."""
        watch = Watch(self, plan_id, FINAL_STATUSES if final else SETTLED_STATUSES)
        self._watches[plan_id].append(watch)
        return watch

    def watching(self, plan_id: str) -> bool:
        """Whether anyone waits for `plan_id` now."""
        with self._lock:
            return plan_id in self._watches

    def watched(self) -> list[str]:
        """The plan ids someone waits for now."""
        with self._lock:
            return list(self._watches)

    def forget(self, watch: Watch) -> None:
        with self._lock:
            watches = self._watches.get(watch.plan_id)
            if watches and watch in watches:
                watches.remove(watch)
                if not watches:
                    del self._watches[watch.plan_id]

    def release(self, plan: Plan) -> None:
        """Wake every watch of `plan` with it as it is (Madre is stopping: nobody should wait
        for a plan that will only go on after a restart)."""
        with self._lock:
            watches = self._watches.pop(plan.plan_id, [])
            self._running.discard(plan.plan_id)
        for watch in watches:
            try:
                watch.future.set(plan)
            except Exception:  # noqa: BLE001,S110 - already set
                pass

    def publish(self, plan: Plan) -> None:
        """Wake every watch of `plan` if it has settled."""
        if plan.status not in SETTLED_STATUSES:
            return
        with self._lock:
            self._running.discard(plan.plan_id)
            if plan.status in FINAL_STATUSES:
                self._ended[plan.plan_id] = plan
                self._ended.move_to_end(plan.plan_id)
                if len(self._ended) > self._ended_kept:
                    self._ended.popitem(last=False)
            watches = self._watches.get(plan.plan_id, [])
            woken = [w for w in watches if plan.status in w.accept]
            kept = [w for w in watches if plan.status not in w.accept]
            if kept:
                self._watches[plan.plan_id] = kept
            else:
                self._watches.pop(plan.plan_id, None)
        for watch in woken:
            try:
                watch.future.set(plan)
            except Exception:  # noqa: BLE001,S110 - already set by an earlier publish
                pass

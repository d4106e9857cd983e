"""The Supervisor alone: children it starts are plain records, their reports are sent by the
test, the scheduler is a list the test fires by hand and the clock a number it moves. No
database, no Plan actor, no sleep."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from doubles import FakeClock

from madre.actors.plan_messages import ChildFailed, ChildStopped
from madre.actors.supervisor import (
    DirectLine,
    Places,
    RestartPolicy,
    Supervisor,
    SupervisorClient,
)
from madre.model import Plan, new_id
from madre.records import AuditRow


@dataclasses.dataclass
class FakeChild:
    """What the Supervisor keeps of a started child: enough to be told to stop."""

    plan_id: str
    plan: Plan | None
    incarnation: int
    reports: Any = None  # what the child reports to (its `supervisor`)
    thread: str = ""  # the thread that started it
    stopped: bool = False

    def stop(self, block: bool = True, timeout: float | None = None) -> None:
        self.stopped = True


class FakeScheduler:
    """Calls the Supervisor asks for later, kept until the test fires them."""

    def __init__(self) -> None:
        self.due: list[tuple[float, Callable[[], None]]] = []

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.due.append((delay, fn))

    def fire_all(self) -> list[float]:
        due, self.due = self.due, []
        for _, fn in due:
            fn()
        return [delay for delay, _ in due]


@dataclasses.dataclass
class Rig:
    supervisor: SupervisorClient
    children: list[FakeChild]
    audits: list[AuditRow]
    given_up: list[tuple[str, str]]
    scheduler: FakeScheduler
    clock: FakeClock
    places: Places

    def started(self, plan_id: str) -> list[int]:
        """The incarnations started for `plan_id`, in order."""
        return [c.incarnation for c in self.children if c.plan_id == plan_id]

    def report(self, message: Any) -> None:
        self.supervisor.ref.tell(message)
        self.supervisor.count()  # asked after the tell: answered once it was handled

    def stopped(self, plan_id: str, incarnation: int) -> None:
        self.report(ChildStopped(plan_id, incarnation, "done"))

    def crashed(self, plan_id: str, incarnation: int) -> None:
        self.report(ChildFailed(plan_id, incarnation, "RuntimeError: on purpose"))


@pytest.fixture
def rig() -> Iterator[Callable[..., Rig]]:
    made: list[SupervisorClient] = []

    def build(*, max_active: int = 2, max_restarts: int = 2, period: float = 60.0,
              direct: bool = False) -> Rig:
        children: list[FakeChild] = []
        audits: list[AuditRow] = []
        given_up: list[tuple[str, str]] = []
        scheduler, clock = FakeScheduler(), FakeClock()

        def make_child(plan_id: str, *, plan: Plan | None, incarnation: int,
                       supervisor: Any, written_ahead: str | None = None,
                       created: Any = None) -> Any:
            children.append(FakeChild(plan_id, plan, incarnation, supervisor,
                                      threading.current_thread().name))
            return children[-1]

        places, line = Places(max_active), DirectLine() if direct else None
        ref = Supervisor.start(
            make_child=make_child, audit=audits.extend,
            give_up=lambda plan_id, error: given_up.append((plan_id, error)),
            scheduler=scheduler, max_active=max_active, clock=clock,
            policy=RestartPolicy(max_restarts=max_restarts, period=period, min_backoff=0.1,
                                 random_factor=0.0), places=places, direct=line)
        made.append(SupervisorClient(ref, timeout=5, places=places, direct=line))
        return Rig(made[-1], children, audits, given_up, scheduler, clock, places)

    yield build
    for client in made:
        client.stop(timeout=5)
    assert pykka.ActorRegistry.get_all() == []


def a_plan() -> Plan:
    return Plan(intent_id=new_id(), session_id=new_id())


def test_a_spawned_plan_gets_one_child_with_the_state_it_was_given(rig) -> None:
    r = rig()
    plan = a_plan()
    r.supervisor.spawn(plan)

    assert r.supervisor.count() == 1
    [child] = r.children
    assert (child.plan_id, child.plan, child.incarnation) == (plan.plan_id, plan, 1)


def test_a_child_that_stopped_frees_its_place(rig) -> None:
    r = rig()
    plan = a_plan()
    r.supervisor.spawn(plan)
    r.stopped(plan.plan_id, 1)

    assert r.supervisor.count() == 0
    assert r.supervisor.live_actor(plan.plan_id) is None


def test_the_live_actor_of_a_running_plan_is_the_child_that_runs_it(rig) -> None:
    r = rig()
    plan = a_plan()
    r.supervisor.spawn(plan)

    assert r.supervisor.live_actor(plan.plan_id) is r.children[0]


def test_plans_beyond_max_active_wait_in_order_and_start_as_places_free(rig) -> None:
    r = rig(max_active=2)
    plans = [a_plan() for _ in range(4)]
    for plan in plans:
        r.supervisor.spawn(plan)

    assert (r.supervisor.count(), r.supervisor.queued()) == (2, 2)
    r.stopped(plans[1].plan_id, 1)
    assert [c.plan_id for c in r.children] == [p.plan_id for p in plans[:3]]
    # a queued plan starts from the stored state, not from the (by then stale) one it was given
    assert r.children[2].plan is None
    r.stopped(plans[0].plan_id, 1)
    assert [c.plan_id for c in r.children] == [p.plan_id for p in plans]
    assert r.supervisor.queued() == 0


def test_an_activation_while_the_plans_actor_is_stopping_starts_it_again_after(rig) -> None:
    r = rig()
    plan = a_plan()
    r.supervisor.spawn(plan)
    r.supervisor.activate(plan.plan_id)  # e.g. a confirm while the actor passivates
    r.supervisor.count()

    assert r.started(plan.plan_id) == [1]
    r.stopped(plan.plan_id, 1)
    assert r.started(plan.plan_id) == [1, 2]
    assert r.children[1].plan is None  # loads what the first one saved


def test_a_report_from_an_older_incarnation_is_ignored(rig) -> None:
    r = rig()
    plan = a_plan()
    r.supervisor.spawn(plan)
    r.crashed(plan.plan_id, 1)
    r.scheduler.fire_all()
    r.supervisor.count()
    assert r.started(plan.plan_id) == [1, 2]

    r.stopped(plan.plan_id, 1)  # late news of the first actor
    assert r.supervisor.count() == 1


def test_a_crash_restarts_the_plan_after_the_minimum_backoff_and_audits_it(rig) -> None:
    r = rig()
    plan = a_plan()
    r.supervisor.spawn(plan)
    r.crashed(plan.plan_id, 1)

    assert r.supervisor.count() == 0  # backing off holds no place
    assert r.started(plan.plan_id) == [1]
    assert r.scheduler.fire_all() == [0.1]
    r.supervisor.count()
    assert r.started(plan.plan_id) == [1, 2]
    [restart] = r.audits
    assert (restart.action, restart.plan_id) == ("plan_actor_restarted", plan.plan_id)
    assert restart.detail == {"restart": 1, "backoff_s": 0.1}


def test_each_further_crash_within_the_period_waits_twice_as_long(rig) -> None:
    r = rig(max_restarts=3)
    plan = a_plan()
    r.supervisor.spawn(plan)
    delays = []
    for incarnation in (1, 2, 3):
        r.crashed(plan.plan_id, incarnation)
        delays += r.scheduler.fire_all()
        r.supervisor.count()

    assert delays == [0.1, 0.2, 0.4]
    assert [a.detail["restart"] for a in r.audits] == [1, 2, 3]


def test_one_crash_more_than_max_restarts_within_the_period_gives_the_plan_up(rig) -> None:
    r = rig(max_restarts=2)
    plan = a_plan()
    r.supervisor.spawn(plan)
    for incarnation in (1, 2):
        r.crashed(plan.plan_id, incarnation)
        r.scheduler.fire_all()
        r.supervisor.count()
    r.crashed(plan.plan_id, 3)

    assert r.given_up == [(plan.plan_id, "RuntimeError: on purpose")]
    assert r.scheduler.due == []
    assert r.supervisor.live_actor(plan.plan_id) is None


def test_crashes_further_apart_than_the_period_never_add_up_to_giving_up(rig) -> None:
    r = rig(max_restarts=1, period=10.0)
    plan = a_plan()
    r.supervisor.spawn(plan)
    for incarnation in (1, 2, 3):
        r.crashed(plan.plan_id, incarnation)
        r.clock.advance(11.0)
        r.scheduler.fire_all()
        r.supervisor.count()

    assert r.given_up == []
    assert [a.detail["restart"] for a in r.audits] == [1, 1, 1]


def test_stopping_the_supervisor_stops_every_child_it_holds(rig) -> None:
    r = rig()
    plans = [a_plan(), a_plan()]
    for plan in plans:
        r.supervisor.spawn(plan)
    r.supervisor.count()

    r.supervisor.stop(timeout=5)

    assert all(child.stopped for child in r.children)


# ------------------------------------------------------------------ the direct line


def test_with_a_direct_line_a_spawn_starts_its_child_on_the_callers_thread(rig) -> None:
    r = rig(direct=True)
    plan = a_plan()
    r.supervisor.spawn(plan)

    [child] = r.children  # started before spawn returned: no message was waited for
    assert child.thread == threading.current_thread().name
    assert (child.plan, child.incarnation, r.places.taken) == (plan, 1, 1)
    assert r.supervisor.live_actor(plan.plan_id) is child


def test_with_a_direct_line_a_clean_stop_frees_its_place_before_the_report_returns(rig) -> None:
    r = rig(direct=True, max_active=1)
    first, second = a_plan(), a_plan()
    r.supervisor.spawn(first)
    r.supervisor.spawn(second)  # no room: it queues
    assert [c.plan_id for c in r.children] == [first.plan_id]

    r.children[0].reports.tell(ChildStopped(first.plan_id, 1, "done"))

    # Heard on this thread: the queued plan started from it, before any ask.
    assert [c.plan_id for c in r.children] == [first.plan_id, second.plan_id]
    assert r.children[1].thread == threading.current_thread().name
    assert r.places.taken == 1
    assert r.supervisor.live_actor(first.plan_id) is None


def test_with_a_direct_line_a_crash_still_goes_through_the_mailbox_and_restarts(rig) -> None:
    r = rig(direct=True)
    plan = a_plan()
    r.supervisor.spawn(plan)
    r.children[0].reports.tell(ChildFailed(plan.plan_id, 1, "RuntimeError: on purpose"))
    r.supervisor.count()  # asked after the tell: answered once it was handled

    assert r.scheduler.fire_all() == [pytest.approx(0.1)]
    r.supervisor.count()
    assert r.started(plan.plan_id) == [1, 2]
    assert [a.action for a in r.audits] == ["plan_actor_restarted"]


def test_after_the_supervisor_stopped_a_direct_spawn_is_refused_and_a_late_report_starts_nothing(
        rig) -> None:
    r = rig(direct=True, max_active=1)
    first, second = a_plan(), a_plan()
    r.supervisor.spawn(first)
    r.supervisor.spawn(second)  # queued
    reports = r.children[0].reports
    r.supervisor.stop(timeout=5)

    with pytest.raises(pykka.ActorDeadError):
        r.supervisor.spawn(a_plan())
    reports.tell(ChildStopped(first.plan_id, 1, "suspended"))  # its actor stopped last
    assert [c.plan_id for c in r.children] == [first.plan_id]
    assert r.places.taken == 0

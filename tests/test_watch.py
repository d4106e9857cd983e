"""Watching for a plan's outcome: a watch registered before a plan moves is woken by the
settled state published for it, and only by a state it accepts."""

from __future__ import annotations

import threading

import pykka
import pytest

from madre.model import Plan, Status, WaitReason, new_id
from madre.watch import Watchers


def plan_in(status: Status, plan_id: str | None = None) -> Plan:
    plan = Plan(plan_id=plan_id or new_id(), intent_id=new_id(), session_id=new_id(),
                status=status)
    if status is Status.WAITING:
        plan.wait_reason = WaitReason.CONFIRMATION
    return plan


def test_a_published_settled_plan_wakes_its_watch_with_that_state() -> None:
    watchers = Watchers()
    plan = plan_in(Status.DONE)
    watch = watchers.watch(plan.plan_id)

    watchers.publish(plan)

    assert watch.wait(0) is plan


def test_a_plan_that_is_only_running_wakes_nobody() -> None:
    watchers = Watchers()
    plan = plan_in(Status.RUNNING)
    watch = watchers.watch(plan.plan_id)

    watchers.publish(plan)

    assert watch.wait(0) is None


def test_a_final_watch_sleeps_through_waiting_and_wakes_at_the_end() -> None:
    watchers = Watchers()
    plan_id = new_id()
    watch = watchers.watch(plan_id, final=True)

    watchers.publish(plan_in(Status.WAITING, plan_id))
    with pytest.raises(pykka.Timeout):  # nothing delivered yet
        watch.future.get(timeout=0)
    ended = plan_in(Status.ERROR, plan_id)
    watchers.publish(ended)

    assert watch.wait(0) is ended


def test_other_plans_outcomes_do_not_wake_a_watch() -> None:
    watchers = Watchers()
    watch = watchers.watch(new_id())

    watchers.publish(plan_in(Status.DONE))

    assert watch.wait(0) is None


def test_a_watch_waits_across_threads_until_the_outcome_is_published() -> None:
    watchers = Watchers()
    plan = plan_in(Status.DONE)
    watch = watchers.watch(plan.plan_id)
    publisher = threading.Thread(target=watchers.publish, args=(plan,))

    publisher.start()
    assert watch.wait(5) is plan
    publisher.join()


def test_release_wakes_every_watch_with_the_plan_as_it_is() -> None:
    watchers = Watchers()
    plan = plan_in(Status.RUNNING)
    watches = [watchers.watch(plan.plan_id), watchers.watch(plan.plan_id, final=True)]

    watchers.release(plan)

    assert [w.wait(0) for w in watches] == [plan, plan]


def test_a_watch_that_was_waited_on_is_forgotten() -> None:
    watchers = Watchers()
    plan = plan_in(Status.DONE)
    watch = watchers.watch(plan.plan_id)
    watch.wait(0)

    watchers.publish(plan)  # nobody left to wake: nothing kept for it

    assert watchers._watches == {}  # noqa: SLF001 - the registry does not grow


def test_a_plan_that_ended_is_remembered_so_a_later_waiter_needs_no_read() -> None:
    watchers = Watchers()
    done, waiting = plan_in(Status.DONE), plan_in(Status.WAITING)
    watchers.publish(done)
    watchers.publish(waiting)

    assert watchers.ended(done.plan_id) is done
    assert watchers.ended(waiting.plan_id) is None  # WAITING may still move: never kept


def test_only_the_latest_ended_plans_are_remembered() -> None:
    watchers = Watchers(ended_kept=2)
    plans = [plan_in(Status.DONE), plan_in(Status.ERROR), plan_in(Status.DONE)]
    for plan in plans:
        watchers.publish(plan)

    assert [watchers.ended(p.plan_id) for p in plans] == [None, plans[1], plans[2]]

"""The scheduler: calls run once their time has come by its clock, in order, each once; a
failing call never stops the others. Driven by a fake clock and `run_due`, no sleeping,
except one test that starts the real thread and waits on an event."""

from __future__ import annotations

import threading

from doubles import FakeClock

from madre.scheduler import Scheduler


def test_a_call_runs_only_once_its_delay_has_passed_on_the_clock() -> None:
    clock = FakeClock()
    scheduler = Scheduler(clock=clock)
    ran: list[str] = []
    scheduler.call_later(5.0, lambda: ran.append("late"))

    assert scheduler.run_due() == 0
    clock.advance(4.9)
    assert scheduler.run_due() == 0
    clock.advance(0.1)
    assert scheduler.run_due() == 1
    assert ran == ["late"]
    assert scheduler.run_due() == 0  # once only


def test_calls_due_together_run_in_the_order_of_their_times() -> None:
    clock = FakeClock()
    scheduler = Scheduler(clock=clock)
    ran: list[int] = []
    for delay in (3.0, 1.0, 2.0, 1.0):
        scheduler.call_later(delay, lambda d=delay: ran.append(int(d)))

    clock.advance(10)
    scheduler.run_due()

    assert ran == [1, 1, 2, 3]


def test_a_call_that_raises_is_logged_and_the_next_still_runs(caplog) -> None:
    clock = FakeClock()
    scheduler = Scheduler(clock=clock)
    ran: list[str] = []
    scheduler.call_later(1, lambda: 1 / 0)
    scheduler.call_later(2, lambda: ran.append("after"))

    clock.advance(2)
    assert scheduler.run_due() == 2

    assert ran == ["after"]
    assert "timer callback failed" in caplog.text


def test_every_sets_the_next_run_after_each_one_ends() -> None:
    clock = FakeClock()
    scheduler = Scheduler(clock=clock)
    ticks: list[float] = []
    scheduler.every(1.0, lambda: ticks.append(clock.now))

    for _ in range(3):
        clock.advance(1.0)
        scheduler.run_due()

    assert ticks == [1001.0, 1002.0, 1003.0]
    assert scheduler.pending == 1  # only ever the next one


def test_after_stop_nothing_is_scheduled_and_nothing_runs() -> None:
    clock = FakeClock()
    scheduler = Scheduler(clock=clock)
    ran: list[str] = []
    scheduler.call_later(1, lambda: ran.append("no"))
    scheduler.stop()
    scheduler.call_later(1, lambda: ran.append("no"))

    clock.advance(5)
    assert scheduler.run_due() == 0
    assert ran == [] and scheduler.pending == 0


def test_the_scheduler_thread_runs_a_call_when_it_is_due_and_stops_when_told() -> None:
    scheduler = Scheduler().start()
    done = threading.Event()
    scheduler.call_later(0.01, done.set)

    assert done.wait(5)
    scheduler.stop()
    assert not any(t.name == "madre-scheduler" for t in threading.enumerate())

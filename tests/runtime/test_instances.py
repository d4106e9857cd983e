"""Several Madre instances on one database, in one process: what one does to a plan the
other runs or made, leases, fencing, takeover, and the instances each sees.

On PostgreSQL only (one instance per SQLite file: that refusal is tested here too). Real
processes killed and partitioned are in test_instances_processes.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from helpers import WAIT, at_once, audit_actions, final, plan_actor_count, table_rows

from madre import Madre
from madre.contracts.intake import ChatRequest, ControlRequest, ControlStatus
from madre.errors import ConfigError
from madre.model import Status


@pytest.fixture
def two(database_url: str, start_madre: Callable[..., Madre]) -> tuple[Madre, Madre]:
    if database_url.startswith("sqlite"):
        pytest.skip("several instances share PostgreSQL only (one per SQLite file)")
    return start_madre(lease_seconds=2.0), start_madre(lease_seconds=2.0)


def sent_by(standins: Any, module: str) -> dict[str, set[str]]:
    """For each Idempotency-Key a module received: the instances that sent it."""
    found: dict[str, set[str]] = {}
    for call in standins.recorder.calls(module):
        key = call.idempotency_key
        if key:
            found.setdefault(key, set()).add(call.headers.get("x-madre-instance", "?"))
    return found


def test_a_second_instance_on_one_sqlite_file_refuses_to_start_naming_the_holder(
        tmp_path, standins) -> None:
    from helpers import make_settings

    url = f"sqlite:///{tmp_path}/one.db"
    with Madre(make_settings(url, standins)) as first:
        with pytest.raises(ConfigError) as refused:
            Madre(make_settings(url, standins)).start()
    message = str(refused.value)
    assert str(tmp_path / "one.db") in message
    assert first.instance_id in message
    assert "PostgreSQL" in message


def test_each_instance_sees_the_other_alive_and_says_which_one_it_is(two) -> None:
    a, b = two
    a.membership.round()
    b.membership.round()

    for madre, other in ((a, b), (b, a)):
        health = madre.health()
        assert health.instance == madre.instance_id
        assert {i.instance_id for i in health.instances} == {a.instance_id, b.instance_id}


def test_a_plan_waiting_on_one_instance_is_confirmed_on_the_other_and_runs_there(
        two, standins) -> None:
    a, b = two
    pending = a.control(ControlRequest(target="hermes", action="delete"))

    answer = b.confirm(pending.plan_id, pending.confirm_token)

    assert answer.plan_status is Status.DONE
    assert a.get_plan(pending.plan_id).status is Status.DONE
    assert set().union(*sent_by(standins, "hermes").values()) == {b.instance_id}


def test_a_plan_that_ends_on_the_other_instance_wakes_whoever_waits_for_it_here(
        two, standins) -> None:
    a, b = two
    pending = a.control(ControlRequest(target="hermes", action="delete"))
    waited: list[Any] = []
    waiter = threading.Thread(target=lambda: waited.append(
        a.wait_for_plan(pending.plan_id, WAIT, final=True)))
    waiter.start()

    b.confirm(pending.plan_id, pending.confirm_token, wait=0)
    waiter.join(WAIT + 1)

    assert waited and waited[0] is not None and waited[0].status is Status.DONE


def test_a_cancel_on_the_other_instance_ends_a_running_plan_and_stops_its_actor_here(
        two, standins) -> None:
    a, b = two
    standins.behaviours["shub"].set("hang")
    running = a.control(ControlRequest(target="shub", action="ping"))
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)

    cancelled = b.cancel(running.plan_id, reason="wrong stems")

    assert cancelled.plan_status is Status.ERROR
    standins.release_all()  # the step's late answer reaches an actor that stopped
    assert final(a, running.plan_id).reason == "cancelled: wrong stems"
    assert plan_actor_count(a) == 0
    assert audit_actions(a, running.plan_id).count("step_done:CALL_SHUB") == 0


def test_while_both_instances_live_no_step_is_sent_by_both(two, standins) -> None:
    a, b = two
    answers = []
    threads = [threading.Thread(target=lambda m=m: answers.append(
        m.chat(ChatRequest(message="mix these 3 stems")))) for m in (a, b) * 10]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    for madre in (a, b):
        madre.membership.round()  # a round while plans ran: nothing was taken over

    assert len(answers) == 20 and all(x.status is Status.DONE for x in answers)
    senders = sent_by(standins, "shub")
    assert len(senders) == 20
    assert all(len(instances) == 1 for instances in senders.values())


def test_the_plans_of_an_instance_that_stopped_are_taken_over_from_their_last_step(
        two, standins) -> None:
    a, b = two
    standins.behaviours["shub"].set("hang")
    running = a.control(ControlRequest(target="shub", action="ping"))
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)
    stopper = threading.Thread(target=a.stop)  # its plan suspends once the call answers
    stopper.start()
    standins.release_all()
    stopper.join(WAIT)
    standins.behaviours["shub"].set("ok")

    taken = b.membership.round()  # a stopped instance lets its plans go at once

    assert running.plan_id in taken.claimed
    ended = final(b, running.plan_id)
    assert ended.status is Status.DONE
    [row] = [r for r in table_rows(b, "tasks") if r["uuid"] == running.plan_id]
    assert row["owner"] is None and row["epoch"] == 2  # a's, then b's


def test_a_write_from_the_owner_it_was_taken_from_changes_nothing(two) -> None:
    a, b = two
    pending = a.control(ControlRequest(target="hermes", action="delete"))
    plan = a.repo.load_plan(pending.plan_id)
    plan.owner, plan.epoch = "someone-else", plan.epoch + 1  # a takeover by another instance
    from madre.records import NO_CHANGE

    b.store.save_plan(plan, NO_CHANGE, expected_epoch=plan.epoch - 1)
    stale = a.repo.load_plan(pending.plan_id)
    stale.epoch -= 1

    from madre.errors import StaleWrite

    with pytest.raises(StaleWrite):
        a.store.save_plan(stale, NO_CHANGE)
    assert a.control(ControlRequest(target="shub", action="status")).status is (
        ControlStatus.ACCEPTED)


def test_an_instance_starting_takes_over_nothing_a_live_instance_runs(
        database_url, start_madre, standins) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("several instances share PostgreSQL only (one per SQLite file)")
    a = start_madre()
    standins.behaviours["shub"].set("hang")
    running = a.control(ControlRequest(target="shub", action="ping"))
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)

    b = start_madre()  # its start-up round looks at a's plan: alive, leased, not b's

    assert b.membership.round().claimed == ()
    standins.release_all()
    assert final(a, running.plan_id).status is Status.DONE
    assert set().union(*sent_by(standins, "shub").values()) == {a.instance_id}


def test_the_unplanned_intents_of_an_instance_that_died_are_closed_and_audited(two) -> None:
    a, b = two
    from madre.records import IntentRecord

    orphan = IntentRecord("orphan-intent-1", "operator", {"message": "cut short"}, "s-1")
    a.store.record_intent(orphan)  # taken in, never planned: then a stops
    a.stop()

    buried = b.membership.round().buried

    assert a.instance_id in buried
    [row] = [r for r in table_rows(b, "intents_log") if r["intent_id"] == orphan.intent_id]
    assert row["result_status"] == "error" and row["instance_id"] == a.instance_id
    closed = [r for r in table_rows(b, "madre_actions") if r["intent_id"] == orphan.intent_id]
    assert [r["action"] for r in closed] == ["intent_interrupted"]
    assert a.instance_id not in {i.instance_id for i in b.instances().instances}


# --------------------------------------------------------------------------- any instance answers


def waiting_job(madre: Madre) -> tuple[str, int]:
    """A chat asking for a Spawner job: (plan id, daughter_tasks id), the plan WAITING."""
    from madre.model import StepType

    answer = madre.chat(ChatRequest(message="run the backup job"))
    assert answer.status is Status.WAITING and answer.plan_id is not None
    [step] = [s for s in madre.get_plan(answer.plan_id).steps
              if s.type == StepType.SPAWNER_REQUEST]
    return answer.plan_id, int(step.result["daughter_task_id"])


def test_a_job_report_given_to_both_instances_at_once_resumes_the_plan_made_on_one_once(
        two) -> None:
    a, b = two
    plan_id, job = waiting_job(a)

    reports = at_once(lambda: b.job_finished(job, ok=True, result={"exit": 0}),
                      lambda: a.job_finished(job, ok=True, result={"exit": 0}))

    assert sorted(r.status for r in reports) == ["accepted", "duplicate"], reports
    assert final(a, plan_id).status is Status.DONE
    actions = audit_actions(b, plan_id)
    assert actions.count("plan_done") == 1
    assert actions.count("job_completed") == 1


def test_a_job_failure_reported_to_the_other_instance_ends_the_plan_made_on_the_first(
        two) -> None:
    a, b = two
    plan_id, job = waiting_job(a)
    waited: list[Any] = []
    waiter = threading.Thread(target=lambda: waited.append(
        a.wait_for_plan(plan_id, WAIT, final=True)))
    waiter.start()

    report = b.job_finished(job, ok=False, error="disk full")
    waiter.join(WAIT + 1)

    assert report.status == "accepted" and report.plan_status is Status.ERROR
    assert waited and waited[0] is not None and waited[0].status is Status.ERROR
    assert b.job_finished(job, ok=True).status == "duplicate"  # late: changes nothing
    assert a.get_plan(plan_id).status is Status.ERROR


def test_a_plan_waiting_on_one_instance_is_approved_on_the_other_and_runs_once(
        two, standins) -> None:
    a, b = two
    pending = a.control(ControlRequest(target="hermes", action="delete"))
    digest = a.get_plan(pending.plan_id).plan_digest

    approved = b.approve(pending.plan_id, digest)

    assert approved.plan_status is Status.DONE
    assert a.get_plan(pending.plan_id).status is Status.DONE
    assert [set(w) for w in sent_by(standins, "hermes").values()] == [{b.instance_id}]
    assert audit_actions(a, pending.plan_id).count("plan_done") == 1


def test_a_plan_waiting_on_one_instance_is_rejected_on_the_other_and_nothing_runs(
        two, standins) -> None:
    a, b = two
    pending = a.control(ControlRequest(target="hermes", action="delete"))

    rejected = b.reject(pending.plan_id, "not today")

    assert rejected.plan_status is Status.ERROR and rejected.reason == "rejected: not today"
    assert a.get_plan(pending.plan_id).status is Status.ERROR
    assert standins.recorder.calls("hermes") == []
    from madre.errors import NotWaiting

    with pytest.raises(NotWaiting):  # and it stays rejected on the instance that made it
        a.approve(pending.plan_id, a.get_plan(pending.plan_id).plan_digest)


def test_an_approval_and_a_rejection_on_two_instances_at_once_have_one_outcome(
        two, standins) -> None:
    from madre.errors import NotWaiting

    a, b = two
    pending = a.control(ControlRequest(target="hermes", action="delete"))
    digest = a.get_plan(pending.plan_id).plan_digest

    approved, rejected = at_once(lambda: b.approve(pending.plan_id, digest),
                                 lambda: a.reject(pending.plan_id, "changed my mind"))

    lost = [r for r in (approved, rejected) if isinstance(r, Exception)]
    assert len(lost) == 1 and isinstance(lost[0], NotWaiting), (approved, rejected)
    ended = final(a, pending.plan_id)
    hermes = standins.recorder.calls("hermes")
    if isinstance(rejected, Exception):  # the approval won: it ran, once
        assert ended.status is Status.DONE and len(hermes) == 1
    else:  # the rejection won: nothing ran
        assert ended.reason == "rejected: changed my mind" and hermes == []
    assert audit_actions(b, pending.plan_id).count("plan_done") == (
        1 if ended.status is Status.DONE else 0)


def test_a_chat_waiting_on_one_instance_tells_the_truth_after_the_other_took_its_plan_over(
        two, standins) -> None:
    a, b = two
    standins.behaviours["shub"].set("hang")
    answers: list[Any] = []
    chat = threading.Thread(target=lambda: answers.append(
        a.chat(ChatRequest(message="mix these 3 stems"))))
    chat.start()
    assert standins.recorder.wait_for_calls("shub", 1, timeout=WAIT)
    standins.behaviours["shub"].set("ok")  # the first call hangs on; the next answers
    a.membership.stop_rounds()  # a lives on but beats no more: its lease runs out (2 s)

    chat.join(WAIT + 5)

    assert answers, "the chat did not answer"
    assert answers[0].status is Status.DONE  # what b made of it, not a's RUNNING
    assert a.get_plan(answers[0].plan_id).status is Status.DONE
    assert [w for w in sent_by(standins, "shub").values()] == [{a.instance_id, b.instance_id}]
    standins.release_all()  # a's late answer lands on a plan it no longer owns
    assert audit_actions(b, answers[0].plan_id).count("plan_done") == 1


def test_with_its_notices_lost_an_instance_still_learns_within_a_tick_that_a_plan_ended(
        two) -> None:
    a, b = two
    a._presence._on_notify = lambda payload: None  # every notice to a is dropped
    pending = a.control(ControlRequest(target="hermes", action="delete"))
    watch = a.watchers.watch(pending.plan_id, final=True)  # a waiter on a, before it runs

    assert b.confirm(pending.plan_id, pending.confirm_token).plan_status is Status.DONE
    ended = watch.wait(a.settings.tick_seconds * 3)

    assert ended is not None and ended.status is Status.DONE


def test_with_its_notices_lost_an_instance_s_event_stream_still_carries_the_others_events(
        two) -> None:
    import asyncio

    from madre.event_hub import Subscription

    a, b = two
    a._presence._on_notify = lambda payload: None
    pending = a.control(ControlRequest(target="hermes", action="delete"))
    loop = asyncio.new_event_loop()
    try:
        stream = Subscription(loop, plan_id=pending.plan_id, session_id=None, status=None,
                              max_pending=100)
        a.events.subscribe(stream)
        b.confirm(pending.plan_id, pending.confirm_token)
        seen: list[str] = []

        async def until_done() -> None:
            while "plan_done" not in seen:
                await stream.wake.wait()
                stream.wake.clear()
                seen.extend(e.action for e in stream.take())

        loop.run_until_complete(asyncio.wait_for(until_done(), a.settings.tick_seconds * 3))
        a.events.unsubscribe(stream)
    finally:
        loop.close()
    assert "plan_done" in seen


# --------------------------------------------------------------------------- start-up


def test_an_instance_starting_leaves_a_live_instance_s_keyed_intent_in_progress_alone(
        database_url, start_madre, standins) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("several instances share PostgreSQL only (one per SQLite file)")
    from madre.idempotency import key_for

    a = start_madre(parse_timeout_seconds=WAIT)
    standins.behaviours["switch"].set("hang")  # a parses: its keyed intent is `received`
    request = ChatRequest(message="mix these 3 stems")
    key = key_for("vx11", "retry-me-1", route="chat", body=request.model_dump(mode="json"))
    answers: list[Any] = []
    chat = threading.Thread(target=lambda: answers.append(a.take(request, key=key).answer))
    chat.start()
    assert standins.recorder.wait_for_calls("switch", 1, timeout=WAIT)
    [row] = table_rows(a, "intents_log")
    assert row["result_status"] == "received" and row["instance_id"] == a.instance_id

    b = start_madre()  # its start-up closes only dead instances' intents
    b.membership.round()

    [still] = [r for r in table_rows(b, "intents_log") if r["intent_id"] == row["intent_id"]]
    assert still["result_status"] == "received"
    assert "intent_interrupted" not in {r["action"] for r in table_rows(b, "madre_actions")}
    standins.behaviours["switch"].set("ok")
    standins.release_all()
    chat.join(WAIT * 2)
    assert answers and answers[0].status is Status.DONE
    [done] = [r for r in table_rows(b, "intents_log") if r["intent_id"] == row["intent_id"]]
    assert done["result_status"] != "error" and done["plan_id"] == answers[0].plan_id

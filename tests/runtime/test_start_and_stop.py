"""The runtime's life: plans with steps it cannot run, start and stop without stray threads,
a start that fails part-way, recovery on boot, and the Supervisor restarting crashed plan actors.

Tests that take `madre` or `settings` run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading

import pykka
import pytest
from doubles import CrashingRunner
from helpers import (
    WAIT,
    audit_actions,
    execute,
    make_settings,
    settled,
    store_plan,
    table_rows,
)

from madre import Madre
from madre.contracts.intake import ChatRequest, ControlRequest
from madre.errors import PlanChanged
from madre.model import Plan, Status, Step, StepType, WaitReason, new_id


def threads_left_behind(before: set[threading.Thread]) -> list[str]:
    """Threads started since `before` that are still alive once they have had a moment to end
    (an actor's thread finishes its last lines just after it reports stopped)."""
    new = [t for t in threading.enumerate() if t not in before]
    for thread in new:
        thread.join(timeout=5)
    return [t.name for t in new if t.is_alive()]


def hand_built_plan(*types: str) -> Plan:
    return Plan(intent_id=new_id(), session_id=new_id(), source="test",
                steps=[Step(index=i, type=t) for i, t in enumerate(types)])


# --------------------------------------------------------------------------- unknown step types


def test_a_stored_plan_with_an_unknown_step_type_is_reported_and_fails_naming_the_type(madre,
                                                                                        standins):
    plan = hand_built_plan("NOOP", "CALL_MARS", "NOOP")
    store_plan(madre, plan)

    shown = madre.get_plan(plan.plan_id)
    assert [s.type for s in shown.steps] == ["NOOP", "CALL_MARS", "NOOP"]
    assert shown.status is Status.PENDING

    madre.supervisor.spawn(plan)
    ended = settled(madre, plan.plan_id)

    assert ended.status is Status.ERROR
    assert "CALL_MARS" in ended.reason
    first, unknown, last = madre.get_plan(plan.plan_id).steps
    assert first.status is Status.DONE
    assert unknown.status is Status.ERROR and "CALL_MARS" in unknown.error
    assert last.status is Status.PENDING


def test_a_waiting_plan_rewritten_with_an_unknown_step_fails_naming_it_once_confirmed(madre,
                                                                                    standins):
    pending = madre.control(ControlRequest(target="hermes", action="delete"))
    stored = madre.get_plan(pending.plan_id)
    plan = madre.repo.load_plan(pending.plan_id)
    plan.steps[1].type = "CALL_TELEPORTER"  # as a newer Madre sharing the database might store

    assert execute(madre, "UPDATE tasks SET plan_json = ? WHERE uuid = ?",
                   (plan.model_dump_json(), pending.plan_id)) == 1
    assert madre.get_plan(pending.plan_id).steps[1].type == "CALL_TELEPORTER"
    assert stored.steps[1].type == StepType.CALL_HERMES

    # The token was bound to what was shown: the rewritten plan is not that.
    with pytest.raises(PlanChanged):
        madre.confirm(pending.plan_id, pending.confirm_token)
    madre.approve(pending.plan_id, madre.get_plan(pending.plan_id).plan_digest)
    ended = settled(madre, pending.plan_id)

    assert ended.status is Status.ERROR
    assert "CALL_TELEPORTER" in ended.reason
    assert standins.recorder.calls("hermes") == []


# --------------------------------------------------------------------------- threads, start, stop


def test_no_thread_outlives_madre_across_three_starts_and_stops(settings, standins):
    before = set(threading.enumerate())

    for round_ in range(3):
        with Madre(settings) as runtime:
            answer = runtime.chat(ChatRequest(message=f"mix these {round_ + 2} stems"))
            assert answer.status is Status.DONE
            runtime.control(ControlRequest(target="hermes", action="delete"))  # a passive plan
        assert threads_left_behind(before) == []
        assert pykka.ActorRegistry.get_all() == []


def test_stopping_twice_is_harmless_and_a_stopped_madre_refuses_work(settings, standins):
    runtime = Madre(settings).start()
    runtime.stop()
    runtime.stop()

    assert not runtime.running
    with pytest.raises(Exception, match="not running"):
        runtime.chat(ChatRequest(message="hello"))


def test_a_start_that_cannot_create_the_database_folder_raises_and_leaves_no_thread(tmp_path,
                                                                                   standins):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = make_settings(f"sqlite:///{blocker}/madre.db", standins)
    before = set(threading.enumerate())

    runtime = Madre(settings)
    with pytest.raises(OSError):
        runtime.start()

    assert not runtime.running
    assert threads_left_behind(before) == []
    assert pykka.ActorRegistry.get_all() == []


def test_a_start_against_an_unreachable_postgresql_raises_and_leaves_no_thread(standins):
    settings = make_settings("postgresql://postgres@127.0.0.1:1/nowhere", standins)
    before = set(threading.enumerate())

    with pytest.raises(Exception, match="(?i)connect"):
        Madre(settings).start()

    assert threads_left_behind(before) == []
    assert pykka.ActorRegistry.get_all() == []


def test_a_start_that_fails_after_the_actors_started_stops_them_all(settings, standins):
    """A real Madre whose last start-up step (recovery) fails: every actor, the store and the
    health prober are already running when it raises."""
    before = set(threading.enumerate())
    started_actors: list[int] = []

    def failing_recovery(madre: Madre) -> None:
        started_actors.append(len(pykka.ActorRegistry.get_all()))
        raise RuntimeError("recovery failed on purpose")

    runtime = Madre(settings, recovery=failing_recovery)

    with pytest.raises(RuntimeError, match="recovery failed on purpose"):
        runtime.start()

    assert started_actors[0] >= 3  # store, trail writer, supervisor
    assert not runtime.running
    assert threads_left_behind(before) == []
    assert pykka.ActorRegistry.get_all() == []


# --------------------------------------------------------------------------- recovery on boot


def test_a_plan_left_pending_is_run_by_the_next_madre_on_start(madre, settings, standins):
    plan = hand_built_plan("NOOP", "NOOP")
    store_plan(madre, plan)
    madre.stop()  # it was never spawned: still PENDING in the database

    with Madre(settings) as again:
        ended = settled(again, plan.plan_id)

    assert ended.status is Status.DONE


def test_a_waiting_plan_stays_passive_across_a_restart_and_can_be_confirmed_after(madre, settings,
                                                                                  standins):
    pending = madre.control(ControlRequest(target="hermes", action="delete"))
    madre.stop()

    with Madre(settings) as again:
        assert again.get_plan(pending.plan_id).status is Status.WAITING
        assert again.active_plan_actors() == 0
        assert standins.recorder.calls("hermes") == []
        again.confirm(pending.plan_id, pending.confirm_token)
        ended = settled(again, pending.plan_id)

    assert ended.status is Status.DONE
    assert len(standins.recorder.calls("hermes")) == 1


# --------------------------------------------------------------------------- supervision


def test_a_crashed_plan_actor_is_restarted_and_its_plan_still_reaches_done(start_madre,
                                                                            standins):
    madre = start_madre(step_runner=lambda real: CrashingRunner(real, times=1))

    answer = madre.control(ControlRequest(target="hermes", action="ping", params={"crash": True}))
    ended = settled(madre, answer.plan_id)

    assert ended.status is Status.DONE
    assert madre.executor.crashes == 1
    assert audit_actions(madre, answer.plan_id).count("plan_actor_restarted") == 1
    step = ended.steps[0]
    assert step.attempts == 2
    # the step in flight at the crash ran again with the same Idempotency-Key
    assert standins.recorder.idempotency_counts("hermes") == {step.step_id: 2}


def test_a_plan_actor_that_keeps_crashing_is_given_up_and_other_plans_are_unaffected(
        start_madre, standins):
    madre = start_madre(step_runner=lambda real: CrashingRunner(real, times=None))
    restart_max = madre.settings.restart_max
    standins.behaviours["manifestator"].set("slow", delay=1.5)
    healthy = madre.control(ControlRequest(target="manifestator", action="ping"))
    assert standins.recorder.wait_for_calls("manifestator", 1, timeout=WAIT)  # in flight now

    doomed = madre.control(ControlRequest(target="hermes", action="ping", params={"crash": True}))
    gave_up = settled(madre, doomed.plan_id)

    assert gave_up.status is Status.ERROR
    assert gave_up.reason.startswith("supervisor_gave_up")
    assert "RuntimeError" in gave_up.reason
    assert madre.executor.crashes == restart_max + 1
    actions = audit_actions(madre, doomed.plan_id)
    assert actions.count("plan_actor_restarted") == restart_max
    assert "supervisor_gave_up" in actions
    assert madre.get_plan(healthy.plan_id).status is Status.RUNNING  # still going meanwhile

    standins.behaviours["manifestator"].release_all()
    finished = settled(madre, healthy.plan_id)
    assert finished.status is Status.DONE
    assert "plan_actor_restarted" not in audit_actions(madre, healthy.plan_id)
    intent = [r for r in table_rows(madre, "intents_log") if r["plan_id"] == doomed.plan_id]
    assert intent[0]["result_status"] == "error"


def test_a_plan_parked_for_confirmation_stays_parked_while_another_plan_crashes(start_madre,
                                                                                  standins):
    """A crash in one plan does not wake plans parked for a confirmation."""
    madre = start_madre(step_runner=lambda real: CrashingRunner(real, times=None))
    parked = madre.control(ControlRequest(target="hermes", action="delete"))

    doomed = madre.control(ControlRequest(target="shub", action="ping", params={"crash": True}))
    assert settled(madre, doomed.plan_id).status is Status.ERROR

    plan = madre.get_plan(parked.plan_id)
    assert plan.status is Status.WAITING and plan.wait_reason is WaitReason.CONFIRMATION
    assert standins.recorder.calls("hermes") == []

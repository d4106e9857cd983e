"""The planner's rule table, one row per test."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madre.model import (
    DSL,
    Decision,
    Intent,
    Mode,
    Plan,
    Provider,
    Risk,
    Status,
    StepType,
)
from madre.rules.parsing import fallback_parse, mode_for
from madre.rules.planning import build_plan
from madre.rules.policy import classify_dsl

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
LOW = Decision(risk=Risk.LOW, requires_confirmation=False)
HIGH = Decision(risk=Risk.HIGH, requires_confirmation=True, reason="'delete' is a HIGH-risk verb")


def intent_for(
    dsl: DSL, *, mode: Mode = Mode.MADRE, decision: Decision | None = None, **extra: Any
) -> Intent:
    return Intent(source="operator", session_id="s-1", mode=mode, dsl=dsl,
                  provider=Provider.FALLBACK_LOCAL, decision=decision or classify_dsl(dsl), **extra)


def parsed(text: str, session: Mode = Mode.MADRE) -> Intent:
    dsl = fallback_parse(text, session_mode=session)
    return intent_for(dsl, mode=mode_for(dsl, session))


def control(target: str | None, action: str, **params: Any) -> Intent:
    return intent_for(DSL(domain="system", action=action, target=target, parameters=params))


def types(plan: Plan) -> list[str]:
    return [step.type for step in plan.steps]


# --------------------------------------------------------------------------- the plan itself


def test_a_plan_copies_the_intent_and_starts_pending() -> None:
    intent = intent_for(DSL(domain="general", action="chat", original_text="hi"),
                        mode=Mode.MADRE, targets=["switch"], warnings=["fallback_parser_used"])
    plan = build_plan(intent)
    assert (plan.intent_id, plan.session_id, plan.source, plan.mode, plan.risk, plan.provider) == (
        intent.intent_id, "s-1", "operator", Mode.MADRE, Risk.LOW, Provider.FALLBACK_LOCAL)
    assert (plan.dsl, plan.warnings, plan.targets, plan.status) == (
        intent.dsl, ["fallback_parser_used"], ["switch"], Status.PENDING)


def test_a_given_plan_id_and_clock_are_used() -> None:
    plan = build_plan(parsed("hello"), plan_id="p-1", now=NOW)
    assert (plan.plan_id, plan.created_at, plan.updated_at) == ("p-1", NOW, NOW)


def test_without_a_plan_id_each_plan_gets_a_fresh_one() -> None:
    intent = parsed("hello")
    assert build_plan(intent).plan_id != build_plan(intent).plan_id


def test_steps_are_indexed_from_zero_with_fresh_ids() -> None:
    plan = build_plan(parsed("delete all data"))
    assert [s.index for s in plan.steps] == list(range(len(plan.steps)))
    assert len({s.step_id for s in plan.steps}) == len(plan.steps)


def test_a_plan_survives_a_json_round_trip() -> None:
    plan = build_plan(parsed("mix these 3 stems"), now=NOW)
    assert Plan.model_validate_json(plan.model_dump_json()) == plan


# --------------------------------------------------------------------------- confirmation gate


def test_a_risky_intent_starts_with_a_blocking_confirmation_gate() -> None:
    gate = build_plan(parsed("restart the server")).steps[0]
    assert (gate.type, gate.blocking, gate.is_confirmation_gate) == (StepType.NOOP, True, True)
    assert gate.payload == {"gate": "confirmation", "reason": "awaiting_confirmation", "risk": "MED"}


def test_a_low_risk_intent_has_no_gate_and_nothing_blocks() -> None:
    assert not any(s.blocking for s in build_plan(parsed("hello there")).steps)


def test_a_confirmed_general_destructive_request_goes_to_switch_after_the_gate() -> None:
    assert types(build_plan(parsed("delete all data"))) == ["NOOP", "CALL_SWITCH", "NOOP"]


def test_a_denied_intent_is_born_in_error_with_nothing_to_run() -> None:
    plan = build_plan(parsed("kill madre"))
    assert (plan.status, types(plan), plan.steps[0].payload["reason"]) == (
        Status.ERROR, ["NOOP"], "denied")
    assert plan.reason is not None and "madre/delete" in plan.reason


# --------------------------------------------------------------------------- rows


def test_a_mode_switch_is_one_noop_naming_the_mode() -> None:
    plan = build_plan(parsed("switch to audio mode"))
    assert [(s.type, s.payload) for s in plan.steps] == [
        ("NOOP", {"reason": "mode_switched", "mode": "AUDIO_ENGINEER"})]


def test_mix_these_3_stems_asks_switch_for_an_audio_plan_then_shub() -> None:
    intent = parsed("mix these 3 stems")
    plan = build_plan(intent)
    assert types(plan) == ["CALL_SWITCH", "CALL_SHUB", "NOOP"]
    assert plan.steps[0].payload == {
        "prompt": "mix these 3 stems",
        "metadata": {"purpose": "audio_plan", "intent_id": intent.intent_id, "session_id": "s-1"},
        "source": "madre",
    }
    assert plan.steps[1].payload == {"task": "mix", "params": intent.dsl.parameters}
    assert plan.steps[2].payload == {"reason": "plan_complete"}


def test_a_risky_audio_request_is_gated_too() -> None:
    plan = build_plan(parsed("update the reaper plugin"))
    assert types(plan) == ["NOOP", "CALL_SWITCH", "CALL_SHUB", "NOOP"]


def test_plain_talk_in_an_audio_session_is_an_audio_plan() -> None:
    assert types(build_plan(parsed("make it warmer", Mode.AUDIO_ENGINEER)))[:2] == [
        "CALL_SWITCH", "CALL_SHUB"]


@pytest.mark.parametrize(
    "intent",
    [parsed("run the backup"), parsed("ejecuta la tarea"), control("spawner", "spawn"),
     intent_for(DSL(domain="spawner", action="launch"))],
    ids=["run the backup", "ejecuta la tarea", "target spawner", "domain spawner"],
)
def test_jobs_become_a_spawner_request(intent: Intent) -> None:
    assert types(build_plan(intent)) == ["SPAWNER_REQUEST", "NOOP"]


def test_a_spawner_request_describes_the_job() -> None:
    intent = control("spawner", "run", task_type="backup", cmd="nightly")
    payload = build_plan(intent).steps[0].payload
    assert payload == {"task_type": "backup", "description": "run spawner",
                       "params": {"task_type": "backup", "cmd": "nightly"}, "source": "operator"}


def test_a_spawner_request_defaults_to_a_job() -> None:
    assert build_plan(parsed("run the backup")).steps[0].payload["task_type"] == "job"


@pytest.mark.parametrize(
    ("intent", "targets"),
    [(parsed("check status"), ["all"]), (control(None, "health"), ["all"]),
     (control("madre", "status"), ["madre"]), (control("spawner", "healthcheck"), ["spawner"])],
    ids=["check status", "health", "madre status", "spawner status"],
)
def test_a_status_question_without_a_call_target_is_an_optional_healthcheck(
    intent: Intent, targets: list[str]
) -> None:
    plan = build_plan(intent)
    assert types(plan) == ["SYSTEM_HEALTHCHECK", "NOOP"]
    assert (plan.steps[0].optional, plan.steps[0].payload) == (True, {"targets": targets})


@pytest.mark.parametrize(
    ("target", "step"),
    [("hermes", "CALL_HERMES"), ("hormiguero", "CALL_HORMIGUERO_TASK"),
     ("manifestator", "CALL_MANIFESTATOR"), ("shub", "CALL_SHUB")],
)
def test_a_named_module_gets_its_call_step(target: str, step: str) -> None:
    intent = control(target, "status", verbose=True)
    plan = build_plan(intent)
    assert types(plan) == [step, "NOOP"]
    assert plan.steps[0].payload == {"action": "status", "target": target,
                                     "params": {"verbose": True}, "intent_id": intent.intent_id}


def test_a_call_to_switch_uses_the_route_v5_shape() -> None:
    intent = control("switch", "reload")  # MED: the call comes after the confirmation gate
    payload = next(s for s in build_plan(intent).steps if s.type == "CALL_SWITCH").payload
    assert payload == {
        "prompt": "reload switch",
        "metadata": {"purpose": "control", "intent_id": intent.intent_id, "session_id": "s-1"},
        "source": "madre",
    }


def test_general_chat_goes_to_switch_as_chat() -> None:
    plan = build_plan(parsed("hello there"))
    assert types(plan) == ["CALL_SWITCH", "NOOP"]
    assert plan.steps[0].payload["metadata"]["purpose"] == "chat"


def test_a_gated_module_call_keeps_the_gate_first() -> None:
    assert types(build_plan(parsed("restart hermes"))) == ["NOOP", "CALL_HERMES", "NOOP"]


def test_the_prompt_falls_back_to_action_and_target() -> None:
    payload = build_plan(control(None, "chat")).steps[0].payload
    assert payload["prompt"] == "chat"


def test_the_plan_does_not_share_the_intents_parameters() -> None:
    intent = parsed("mix these 3 stems")
    build_plan(intent).steps[1].payload["params"]["count"] = 99
    assert intent.dsl.parameters["count"] == 3


# --------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), audio=st.booleans())
def test_every_parsed_text_gets_a_well_formed_plan(text: str, audio: bool) -> None:
    intent = parsed(text, Mode.AUDIO_ENGINEER if audio else Mode.MADRE)
    plan = build_plan(intent)
    assert [s.index for s in plan.steps] == list(range(len(plan.steps)))
    assert plan.steps[-1].type == "NOOP"
    assert plan.steps[0].is_confirmation_gate == intent.decision.requires_confirmation
    assert sum(s.blocking for s in plan.steps) == int(intent.decision.requires_confirmation)
    if intent.decision.denied:
        assert types(plan) == ["NOOP"] and plan.status == Status.ERROR


@pytest.mark.parametrize("decision", [LOW, HIGH])
def test_the_gate_follows_the_decision_not_the_text(decision: Decision) -> None:
    plan = build_plan(intent_for(DSL(domain="general", action="chat"), decision=decision))
    assert plan.steps[0].is_confirmation_gate == decision.requires_confirmation

"""The planner: an intent becomes ordered steps. Pure; the Plan actor runs them.

Rule table (prompt = dsl.original_text, or "<action> <target>" when there is no text):

  0. decision.denied                 -> NOOP {"reason": "denied"} only; the plan is born ERROR
  1. decision.requires_confirmation  -> first a blocking NOOP gate {"gate": "confirmation", ...}
  then the first matching row, always closed by NOOP {"reason": "plan_complete"}
  (except switch_mode, whose NOOP is the whole plan):
  | when                                              | steps                                   |
  |---------------------------------------------------|-----------------------------------------|
  | action "switch_mode"                              | NOOP {"reason": "mode_switched", mode}  |
  | mode AUDIO_ENGINEER                               | CALL_SWITCH (audio_plan), CALL_SHUB     |
  | action status/health/healthcheck, target without  | SYSTEM_HEALTHCHECK (optional)           |
  |   a CALL step (None, madre, spawner, ...)         |                                         |
  | target or domain "spawner", or "run" + a job word | SPAWNER_REQUEST                         |
  | target switch/hermes/hormiguero/manifestator/shub | that module's CALL_* step               |
  | anything else (chat, confirmed general requests)  | CALL_SWITCH (chat)                      |

The status row comes before the spawner row so that asking for the Spawner's status checks its
health instead of queueing a job.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType
from typing import Any

from madre.model import Intent, Mode, Plan, Status, Step, StepType, WaitReason, new_id
from madre.rules.parsing import mentions_job

CALL_STEPS = MappingProxyType({
    "switch": StepType.CALL_SWITCH,
    "hermes": StepType.CALL_HERMES,
    "hormiguero": StepType.CALL_HORMIGUERO_TASK,
    "manifestator": StepType.CALL_MANIFESTATOR,
    "shub": StepType.CALL_SHUB,
})
STATUS_ACTIONS = frozenset({"status", "health", "healthcheck"})
_COMPLETE: tuple[StepType, dict[str, Any]] = (StepType.NOOP, {"reason": "plan_complete"})

_Spec = tuple[StepType, dict[str, Any]]


def _switch_call(intent: Intent, prompt: str, purpose: str) -> _Spec:
    # Switch's route-v5 shape: {"prompt", "metadata", "source"}.
    metadata = {"purpose": purpose, "intent_id": intent.intent_id, "session_id": intent.session_id}
    return StepType.CALL_SWITCH, {"prompt": prompt, "metadata": metadata, "source": "madre"}


def _body(intent: Intent) -> list[_Spec]:
    """The steps after the confirmation gate, by the rule table above."""
    dsl = intent.dsl
    action, target = dsl.action, dsl.target
    prompt = dsl.original_text or " ".join(p for p in (action, target) if p)
    if action == "switch_mode":
        return [(StepType.NOOP, {"reason": "mode_switched", "mode": dsl.parameters.get("mode")})]
    if intent.mode == Mode.AUDIO_ENGINEER:
        return [
            _switch_call(intent, prompt, "audio_plan"),
            (StepType.CALL_SHUB, {"task": action, "params": dict(dsl.parameters)}),
            _COMPLETE,
        ]
    if action in STATUS_ACTIONS and target not in CALL_STEPS:
        checks = {"targets": [target] if target else ["all"]}
        return [(StepType.SYSTEM_HEALTHCHECK, checks), _COMPLETE]
    if "spawner" in (target, dsl.domain) or (action == "run" and mentions_job(prompt)):
        request = {
            "task_type": dsl.parameters.get("task_type", "job"),
            "description": prompt,
            "params": dict(dsl.parameters),
            "source": intent.source,
        }
        return [(StepType.SPAWNER_REQUEST, request), _COMPLETE]
    if target == "switch":
        return [_switch_call(intent, prompt, "control"), _COMPLETE]
    if target in CALL_STEPS:
        call = {"action": action, "target": target, "params": dict(dsl.parameters),
                "intent_id": intent.intent_id}
        return [(CALL_STEPS[target], call), _COMPLETE]
    return [_switch_call(intent, prompt, "chat"), _COMPLETE]


def _specs(intent: Intent) -> list[_Spec]:
    decision = intent.decision
    if decision.denied:  # never plan anything that could run; the record still says why
        return [(StepType.NOOP, {"reason": "denied", "detail": decision.reason})]
    gate: list[_Spec] = []
    if decision.requires_confirmation:
        gate.append((StepType.NOOP, {
            "gate": WaitReason.CONFIRMATION.value,
            "reason": "awaiting_confirmation",
            "risk": decision.risk.value,
        }))
    return gate + _body(intent)


def build_plan(
    intent: Intent, *, plan_id: str | None = None, now: dt.datetime | None = None
) -> Plan:
    """The plan for an intent: PENDING (ERROR when denied), steps indexed from 0."""
    steps = [
        Step(index=i, type=kind.value, payload=dict(payload),
             blocking=i == 0 and "gate" in payload, optional=kind == StepType.SYSTEM_HEALTHCHECK)
        for i, (kind, payload) in enumerate(_specs(intent))
    ]
    stamps = {"created_at": now, "updated_at": now} if now is not None else {}
    return Plan(
        plan_id=plan_id or new_id(),
        intent_id=intent.intent_id,
        session_id=intent.session_id,
        source=intent.source,
        mode=intent.mode,
        risk=intent.decision.risk,
        provider=intent.provider,
        dsl=intent.dsl.model_copy(deep=True),
        status=Status.ERROR if intent.decision.denied else Status.PENDING,
        reason=intent.decision.reason if intent.decision.denied else None,
        warnings=list(intent.warnings),
        targets=list(intent.targets),
        steps=steps,
        submitted_by=intent.submitted_by,
        **stamps,
    )

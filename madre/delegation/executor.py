"""How each step type runs. Plain code; the Plan actor calls it from its own thread.

| step                  | what it does                                                       |
|-----------------------|--------------------------------------------------------------------|
| CALL_SWITCH           | POST {SWITCH_URL}/switch/route-v5 with the step payload            |
| CALL_HERMES           | POST {HERMES_URL}{MADRE_HERMES_ROUTE}                              |
| CALL_HORMIGUERO_TASK  | POST {HORMIGUERO_URL}{MADRE_HORMIGUERO_ROUTE}                      |
| CALL_MANIFESTATOR     | POST {MANIFESTATOR_URL}{MADRE_MANIFESTATOR_ROUTE}                  |
| CALL_SHUB             | POST {SHUB_URL}{MADRE_SHUB_ROUTE}                                  |
| SYSTEM_HEALTHCHECK    | reads the cached dependency health (no call; optional: only warns) |
| NOOP                  | nothing; records why it is there                                   |
| SPAWNER_REQUEST       | handled by the Plan actor: a daughter_tasks row, then WAITING      |

Every call carries the step id as Idempotency-Key, so a step that runs again after a crash
is recognised downstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from madre.contracts import Plan, Step, StepType
from madre.delegation.client import Answer, ModuleClient
from madre.delegation.health import HealthBoard

CALL_MODULES: dict[str, str] = {
    StepType.CALL_SWITCH: "switch",
    StepType.CALL_HERMES: "hermes",
    StepType.CALL_HORMIGUERO_TASK: "hormiguero",
    StepType.CALL_MANIFESTATOR: "manifestator",
    StepType.CALL_SHUB: "shub",
}

LOCAL_STEPS = frozenset({StepType.NOOP, StepType.SYSTEM_HEALTHCHECK})
"""Steps with no side effects: they need no write-ahead record before they run."""


class UnknownStepType(Exception):
    def __init__(self, step_type: str) -> None:
        super().__init__(f"unknown step type {step_type!r}; this Madre cannot run it")


class StepExecutor:
    """Runs the steps that are calls or local reads."""

    def __init__(
        self,
        clients: Mapping[str, ModuleClient],
        routes: Mapping[str, str],
        board: HealthBoard,
    ) -> None:
        self._clients = dict(clients)
        self._routes = dict(routes)
        self._board = board

    def is_known(self, step_type: str) -> bool:
        return step_type in CALL_MODULES or step_type in LOCAL_STEPS or (
            step_type == StepType.SPAWNER_REQUEST
        )

    def module_of(self, step: Step) -> str:
        return CALL_MODULES.get(step.type, "madre")

    def run(self, step: Step, plan: Plan) -> Answer:
        """Run `step`: its result and the attempts it took. Raises DownstreamError or
        UnknownStepType."""
        if step.type == StepType.NOOP:
            reason = {k: v for k, v in step.payload.items() if k == "reason"}
            return Answer({"status": "noop", **reason}, 1, 0)
        if step.type == StepType.SYSTEM_HEALTHCHECK:
            return Answer(self._healthcheck(step), 1, 0)
        module = CALL_MODULES.get(step.type)
        if module is None:
            raise UnknownStepType(step.type)
        return self._clients[module].call(
            self._routes[module],
            step.payload,
            idempotency_key=step.step_id,
            correlation_id=plan.intent_id,
        )

    def _healthcheck(self, step: Step) -> dict[str, Any]:
        wanted = step.payload.get("targets") or ["all"]
        deps = self._board.deps()
        names = list(deps) if "all" in wanted else [n for n in wanted if n in deps]
        return {name: deps[name].state for name in names}

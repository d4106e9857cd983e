"""How each step type runs. Plain code; Plan actors hand their calls to it on a pool thread.

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
is recognised downstream, and the id of the HTTP request that created the plan as
X-Request-ID, so the module's logs can be matched to Madre's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from madre.delegation.client import Answer, ModuleClient
from madre.delegation.health import HealthBoard
from madre.errors import DownstreamError
from madre.model import Plan, Step, StepType
from madre.modules import KNOWN_STEPS, STEP_MODULES


class StepRunner(Protocol):
    """What a Plan actor needs to run its steps (tests wrap the real one)."""

    def is_known(self, step_type: str) -> bool: ...

    def run(self, step: Step, plan: Plan) -> Answer: ...


class StepExecutor:
    """Runs the steps that are calls or local reads."""

    def __init__(
        self,
        clients: Mapping[str, ModuleClient],
        routes: Mapping[str, str],
        board: HealthBoard,
    ) -> None:
        self.clients = dict(clients)
        self.routes = dict(routes)
        self.board = board

    def is_known(self, step_type: str) -> bool:
        return step_type in KNOWN_STEPS

    def run(self, step: Step, plan: Plan) -> Answer:
        """Run `step`: its result and the attempts it took. Raises DownstreamError."""
        if step.type == StepType.NOOP:
            reason = {k: v for k, v in step.payload.items() if k == "reason"}
            return Answer({"status": "noop", **reason}, 1, 0)
        if step.type == StepType.SYSTEM_HEALTHCHECK:
            return Answer(self._healthcheck(step), 1, 0)
        module = STEP_MODULES.get(step.type)  # type: ignore[call-overload]
        if module is None:
            raise DownstreamError("madre", f"unknown step type {step.type!r}; this Madre "
                                  "cannot run it")
        return self.clients[module].call(
            self.routes[module],
            step.payload,
            idempotency_key=step.step_id,
            correlation_id=plan.intent_id,
            request_id=plan.request_id,
        )

    def _healthcheck(self, step: Step) -> dict[str, Any]:
        wanted = step.payload.get("targets") or ["all"]
        deps = self.board.deps()
        names = list(deps) if "all" in wanted else [n for n in wanted if n in deps]
        return {name: deps[name].state for name in names}

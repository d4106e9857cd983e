"""The VX11 modules Madre delegates to: one table, read by the settings (default addresses
and routes), the planner (which step calls which module), the delegation layer and the
stand-ins. A module is named here once.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from madre.model import StepType


@dataclasses.dataclass(frozen=True)
class Module:
    """One VX11 module: its name, default port, the route Madre posts a step to (the
    Spawner has none: Madre never calls it, it records a job request), and that step's type."""

    name: str
    port: int
    route: str | None
    step: StepType | None

    @property
    def default_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url_variable(self) -> str:
        """The environment variable that gives its address (SWITCH_URL, ...)."""
        return f"{self.name.upper()}_URL"


MODULES: tuple[Module, ...] = (
    Module("switch", 8002, "/switch/route-v5", StepType.CALL_SWITCH),
    Module("hermes", 8003, "/hermes/execute", StepType.CALL_HERMES),
    Module("hormiguero", 8004, "/hormiguero/task", StepType.CALL_HORMIGUERO_TASK),
    Module("manifestator", 8005, "/manifestator/drift", StepType.CALL_MANIFESTATOR),
    Module("shub", 8007, "/shub/process", StepType.CALL_SHUB),
    Module("spawner", 8008, "/spawner/spawn", None),
)

MODULE_NAMES: tuple[str, ...] = tuple(m.name for m in MODULES)
BY_NAME = MappingProxyType({m.name: m for m in MODULES})

CALL_STEPS = MappingProxyType({m.name: m.step for m in MODULES if m.step is not None})
"""module name → the step type that calls it."""

STEP_MODULES = MappingProxyType({m.step: m.name for m in MODULES if m.step is not None})
"""step type → the module it calls."""

LOCAL_STEPS = frozenset({StepType.NOOP, StepType.SYSTEM_HEALTHCHECK})
"""Steps with no side effects: they need no write-ahead record before they run."""

KNOWN_STEPS = frozenset({*STEP_MODULES, *LOCAL_STEPS, StepType.SPAWNER_REQUEST})


def module_of(step_type: str) -> str:
    """The module a step of this type talks to ("madre" for Madre's own steps)."""
    if step_type == StepType.SPAWNER_REQUEST:
        return "spawner"
    return STEP_MODULES.get(step_type, "madre")  # type: ignore[call-overload]

"""The Planner actor: turns a classified intent into a plan (rules in `madre.rules.planning`)."""

from __future__ import annotations

import pykka

from madre.model import Intent, Plan
from madre.rules.planning import build_plan


class PlannerActor(pykka.ThreadingActor):
    """Turns classified intents into plans."""

    def plan(self, intent: Intent) -> Plan:
        return build_plan(intent)

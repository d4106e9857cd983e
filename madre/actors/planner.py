"""The Planner actor: turns a classified intent into a plan (rules in `madre.rules.planning`)."""

from __future__ import annotations

import pykka

from madre.contracts import Intent, Plan
from madre.rules.planning import build_plan


class PlannerActor(pykka.ThreadingActor):
    def plan(self, intent: Intent) -> Plan:
        return build_plan(intent)

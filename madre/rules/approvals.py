"""Approve what you saw: the digest of what a plan will run, and the approval rules.

A plan that waits for a human carries `plan_digest`, the SHA-256 of the canonical JSON of
what will run: each step's type, module, route and payload, the plan's targets and its risk.
Whoever approves (or confirms) names the digest they were shown; if it is not the digest of
the plan as it stands, what they approved is not what would run, and the approval is
refused (`plan_changed`). Statuses, results and times are not part of it: they say how the
plan went, not what it does.

The rules are plain values, read by the intake (how many approvals a new plan needs) and
the commands (whether four eyes apply). Nothing here reads a clock or a database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from madre.model import Approval, Plan, Risk
from madre.modules import module_of

FOUR_EYES = ("off", "high", "all")


def what_will_run(plan: Plan, routes: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each step as the digest sees it: type, module, route (None when Madre calls no
    route for it) and payload."""
    return [
        {"type": s.type, "module": module_of(s.type), "route": routes.get(module_of(s.type)),
         "payload": s.payload}
        for s in plan.steps
    ]


def canonical_json(value: Any) -> str:
    """One text for one value: sorted keys, no spaces, UTF-8 as it is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def plan_digest(plan: Plan, routes: Mapping[str, str]) -> str:
    """The SHA-256 (hex) of what `plan` will run."""
    content = {"steps": what_will_run(plan, routes), "targets": sorted(plan.targets),
               "risk": plan.risk.value}
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def summary(plan: Plan) -> str:
    """One line about what the plan does, for a notification or a list."""
    action = plan.dsl.action if plan.dsl else "plan"
    target = plan.dsl.target if plan.dsl and plan.dsl.target else ""
    ran = ", ".join(s.type for s in plan.steps if not s.is_confirmation_gate)
    head = " ".join(p for p in (action, target) if p)
    return f"{head} ({plan.risk}): {ran}"


def counted(plan: Plan, digest: str) -> list[Approval]:
    """The approvals that count: of this digest (an approval of other content does not),
    the first of each principal."""
    seen: set[str] = set()
    out = []
    for approval in plan.approvals:
        if approval.plan_digest == digest and approval.by not in seen:
            seen.add(approval.by)
            out.append(approval)
    return out


@dataclasses.dataclass(frozen=True)
class ApprovalRules:
    """MADRE_FOUR_EYES, MADRE_HIGH_APPROVALS and the routes the digest names."""

    four_eyes: str = "off"
    high_approvals: int = 1
    routes: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}))

    def digest(self, plan: Plan) -> str:
        return plan_digest(plan, self.routes)

    def needed(self, risk: Risk) -> int:
        """Approvals by distinct principals a plan of this risk needs before it runs."""
        return self.high_approvals if risk is Risk.HIGH else 1

    def four_eyes_apply(self, risk: Risk) -> bool:
        """Whether the principal that submitted a plan of this risk may not approve it."""
        return self.four_eyes == "all" or (self.four_eyes == "high" and risk is Risk.HIGH)


def approvals_needed(plan: Plan) -> int:
    """What the plan needs (at least one: a plan stored before approvals existed has 0)."""
    return max(1, plan.approvals_needed)

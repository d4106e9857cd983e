"""Reading Switch's answer to an intent_parse request, and combining it with the local parser's.

Switch may raise a risk, never lower it: when the local parser sees a destructive verb its
reading wins over a different one of Switch's, and the merged reading is never less cautious
than the local one (denied first, then by risk), so a model that misreads "delete all data" as
small talk cannot lower the risk. A Switch action Madre does not know ("frobnicate") is judged
like any unknown action: MED. Pure: `madre.parsing.SwitchParser` calls these, with the tables in force.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from madre.model import DSL, Risk
from madre.rules.parsing import DESTRUCTIVE_WARNING
from madre.rules.policy import classify_dsl
from madre.rules.tables import DEFAULT_TABLES, PolicyTables


def dsl_from_switch(answer: dict[str, Any], text: str) -> DSL | None:
    """The DSL in a Switch answer, or None when there is no usable one."""
    raw = answer.get("dsl")
    if not isinstance(raw, dict):
        return None
    try:
        dsl = DSL.model_validate({**raw, "original_text": text})
    except ValidationError:
        return None
    if not dsl.domain.strip() or not dsl.action.strip():
        return None
    dsl.domain = dsl.domain.strip().lower()
    dsl.action = dsl.action.strip().lower()
    dsl.target = dsl.target.strip().lower() if dsl.target else None
    return dsl


_RISK_RANK = {Risk.LOW: 0, Risk.MED: 1, Risk.HIGH: 2}


def _caution(dsl: DSL, tables: PolicyTables) -> tuple[bool, int]:
    """How cautious the policy is about a reading: denied first, then by risk."""
    decision = classify_dsl(dsl, tables=tables)
    return decision.denied, _RISK_RANK[decision.risk]


def merge(switch_dsl: DSL, local: DSL, *, tables: PolicyTables = DEFAULT_TABLES) -> DSL:
    """Switch's reading, completed by what the local parser found, never less cautious."""
    if DESTRUCTIVE_WARNING in local.warnings and switch_dsl.action != local.action:
        return local
    parameters = {**local.parameters, **switch_dsl.parameters}
    merged = switch_dsl.model_copy(
        update={
            "target": switch_dsl.target or local.target,
            "parameters": parameters,
            "warnings": sorted(set(switch_dsl.warnings) | set(local.warnings)),
        }
    )
    # A model that reads "restart the hormiguero" as small talk must not lower the risk the
    # local rules see (MED) to LOW: the more cautious reading wins.
    if _caution(local, tables) > _caution(merged, tables):
        return local
    return merged

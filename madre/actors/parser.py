"""The Parser actor: asks Switch what an intent means, falls back to the local parser.

Switch is asked first (`POST /switch/route-v5`, purpose `intent_parse`, short timeout).
When it is down, slow, answers an error or no usable DSL, the local fallback parser answers
and the result carries the warning `fallback_parser_used`. A circuit breaker, shared by
all Parser actors, stops paying Switch's timeout on every request while it is down.

Safety floor: when the local parser sees a destructive verb, its reading wins over Switch's,
so a model that misreads "delete all data" as small talk cannot lower the risk.
"""

from __future__ import annotations

import logging
from typing import Any

import pykka
from pydantic import ValidationError

from madre.breaker import CircuitBreaker
from madre.contracts import DSL, Mode, ParseResult, Provider, Risk
from madre.downstream import ModuleClient
from madre.errors import DownstreamError
from madre.parsing import fallback_parse
from madre.policy import classify_dsl

log = logging.getLogger("madre.parser")

FALLBACK_WARNING = "fallback_parser_used"


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


def _caution(dsl: DSL) -> tuple[bool, int]:
    """How cautious the policy is about a reading: denied first, then by risk."""
    decision = classify_dsl(dsl)
    return decision.denied, _RISK_RANK[decision.risk]


def merge(switch_dsl: DSL, local: DSL) -> DSL:
    """Switch's reading, completed by what the local parser found, never less cautious."""
    if "destructive_intent_detected" in local.warnings and switch_dsl.action != local.action:
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
    if _caution(local) > _caution(merged):
        return local
    return merged


class ParserActor(pykka.ThreadingActor):
    def __init__(self, switch: ModuleClient, route: str, breaker: CircuitBreaker) -> None:
        super().__init__()
        self._switch = switch
        self._route = route
        self._breaker = breaker

    def parse(
        self, text: str, session_mode: Mode, *, session_id: str, intent_id: str
    ) -> ParseResult:
        local = fallback_parse(text, session_mode=session_mode)
        if self._breaker.allow():
            try:
                answer = self._switch.post(
                    self._route,
                    {
                        "prompt": text,
                        "metadata": {"purpose": "intent_parse", "session_id": session_id,
                                     "intent_id": intent_id, "mode": session_mode.value},
                        "source": "madre",
                    },
                    correlation_id=intent_id,
                    retries=0,
                )
            except DownstreamError as exc:
                self._breaker.record_failure(open_now=exc.timed_out)
                log.info("switch parse failed: %s", exc.reason, extra={"intent_id": intent_id})
            else:
                self._breaker.record_success()
                dsl = dsl_from_switch(answer, text)
                if dsl is not None:
                    merged = merge(dsl, local)
                    return ParseResult(dsl=merged, provider=Provider.SWITCH,
                                       warnings=list(merged.warnings))
        return ParseResult(
            dsl=local, provider=Provider.FALLBACK_LOCAL,
            warnings=[FALLBACK_WARNING, *local.warnings],
        )

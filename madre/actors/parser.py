"""The Parser actor: asks Switch what an intent means, falls back to the local parser.

Switch is asked first (`POST /switch/route-v5`, purpose `intent_parse`, short timeout).
When it is down, slow, answers an error or no usable DSL, the local fallback parser answers
and the result carries the warning `fallback_parser_used`. A circuit breaker, shared by
all Parser actors, stops paying Switch's timeout on every request while it is down.
How Switch's reading and the local one are combined is `madre.rules.reading`.
"""

from __future__ import annotations

import itertools
import logging
import threading

import pykka

from madre.delegation.breaker import CircuitBreaker
from madre.delegation.client import ModuleClient
from madre.errors import DownstreamError
from madre.model import Mode, ParseResult, Provider
from madre.rules.parsing import fallback_parse
from madre.rules.reading import dsl_from_switch, merge
from madre.rules.tables import DEFAULT_TABLES, PolicyTables

log = logging.getLogger("madre.parser")

FALLBACK_WARNING = "fallback_parser_used"


class ParserActor(pykka.ThreadingActor):
    """Parses text into a DSL: Switch first (behind the breaker), the local parser after."""

    def __init__(self, switch: ModuleClient, route: str, breaker: CircuitBreaker, *,
                 tables: PolicyTables = DEFAULT_TABLES) -> None:
        super().__init__()
        self._switch = switch
        self._route = route
        self._breaker = breaker
        self._tables = tables  # the built-in verb tables, or those of MADRE_POLICY_FILE

    def parse(
        self, text: str, session_mode: Mode, *, session_id: str, intent_id: str
    ) -> ParseResult:
        local = fallback_parse(text, session_mode=session_mode, tables=self._tables)
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
                    merged = merge(dsl, local, tables=self._tables)
                    return ParseResult(dsl=merged, provider=Provider.SWITCH,
                                       warnings=list(merged.warnings))
        return ParseResult(
            dsl=local, provider=Provider.FALLBACK_LOCAL,
            warnings=[FALLBACK_WARNING, *local.warnings],
        )


class ParserPool:
    """Several Parser actors taken in turn, so parses (each may wait on Switch) overlap."""

    def __init__(self, parsers: list[pykka.ActorProxy[ParserActor]], *,
                 timeout: float = 30.0) -> None:
        self._cycle = itertools.cycle(parsers)
        self._lock = threading.Lock()
        self._timeout = timeout

    def parse(self, text: str, session_mode: Mode, *, session_id: str,
              intent_id: str) -> ParseResult:
        with self._lock:
            parser = next(self._cycle)
        future = parser.parse(text, session_mode, session_id=session_id, intent_id=intent_id)
        return future.get(timeout=self._timeout)  # type: ignore[no-any-return]

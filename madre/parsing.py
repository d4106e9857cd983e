"""Reading text: ask Switch what an intent means, fall back to the local parser.

Called directly on the thread that took the request (an actor round trip would buy nothing:
a parse owns no state beyond the breaker, which is thread-safe). At most `at_once` parses wait
on Switch together; the others wait their turn for at most `wait` seconds (the parse
timeout) and then read locally, as when the breaker is open, so a slow Switch cannot hold
every request thread for longer than one parse takes. Switch is asked first (`POST /switch/route-v5`, purpose `intent_parse`, short timeout).
When it is down, slow, answers an error or no usable DSL, the local fallback parser answers
and the result carries the warning `fallback_parser_used`. A circuit breaker, shared by
all parses, stops paying Switch's timeout on every request while it is down.
How Switch's reading and the local one are combined is `madre.rules.reading`.
"""

from __future__ import annotations

import logging
import threading

from madre.delegation.breaker import CircuitBreaker
from madre.delegation.client import ModuleClient
from madre.errors import DownstreamError
from madre.model import DSL, Mode, ParseResult, Provider
from madre.rules.parsing import fallback_parse
from madre.rules.reading import dsl_from_switch, merge
from madre.rules.tables import DEFAULT_TABLES, PolicyTables

log = logging.getLogger("madre.parser")

FALLBACK_WARNING = "fallback_parser_used"


class SwitchParser:
    """Parses text into a DSL: Switch first (behind the breaker), the local parser after."""

    def __init__(self, switch: ModuleClient, route: str, breaker: CircuitBreaker, *,
                 tables: PolicyTables = DEFAULT_TABLES, at_once: int = 8,
                 wait: float = 1.0) -> None:
        self._switch = switch
        self._route = route
        self._breaker = breaker
        self._tables = tables  # the built-in verb tables, or those of MADRE_POLICY_FILE
        self._slots = threading.BoundedSemaphore(at_once)
        self._wait = wait

    def parse(
        self, text: str, session_mode: Mode, *, session_id: str, intent_id: str
    ) -> ParseResult:
        local = fallback_parse(text, session_mode=session_mode, tables=self._tables)
        if self._breaker.allow() and self._slots.acquire(timeout=self._wait):
            try:
                dsl = self._ask_switch(text, session_mode, session_id, intent_id)
            finally:
                self._slots.release()
            if dsl is not None:
                merged = merge(dsl, local, tables=self._tables)
                return ParseResult(dsl=merged, provider=Provider.SWITCH,
                                   warnings=list(merged.warnings))
        return ParseResult(
            dsl=local, provider=Provider.FALLBACK_LOCAL,
            warnings=[FALLBACK_WARNING, *local.warnings],
        )

    def _ask_switch(self, text: str, session_mode: Mode, session_id: str,
                    intent_id: str) -> DSL | None:
        """Switch's reading of `text`, or None when it failed or gave no usable DSL."""
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
            return None
        self._breaker.record_success()
        return dsl_from_switch(answer, text)

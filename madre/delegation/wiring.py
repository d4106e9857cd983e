"""Building what talks to the modules: one client per module over shared keep-alive pools,
the Switch breaker and parse client, and the step executor.

Kept apart from the runtime so that how delegation is put together reads in one place; the
runtime only closes the pools when it stops.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from madre.clock import Clock
from madre.delegation.breaker import CircuitBreaker
from madre.delegation.client import ConnectionPools, ModuleClient
from madre.delegation.executor import StepExecutor
from madre.delegation.health import HealthBoard
from madre.modules import MODULE_NAMES
from madre.settings import Settings


@dataclasses.dataclass(frozen=True)
class Delegation:
    pools: ConnectionPools  # close them when stopping
    clients: dict[str, ModuleClient]  # every module, for calls and health probes
    switch_breaker: CircuitBreaker  # shared by every parse
    parse_client: ModuleClient  # Switch, with the parse's shorter timeouts
    executor: StepExecutor


def build_delegation(settings: Settings, *, board: HealthBoard, routes: Mapping[str, str],
                     clock: Clock, instance_id: str) -> Delegation:
    """`routes`: the route each called module's steps post to (those the approval digest
    names, so what is approved is what is called)."""
    s = settings
    # Enough kept-alive connections per module for every active plan and parse at once.
    pools = ConnectionPools(maxsize=s.max_active_plans + s.parses_at_once + 2)
    token = s.token.get_secret_value()
    clients = {
        m: ModuleClient(
            m, s.module_url(m), token=token, pools=pools,
            connect_timeout=s.connect_timeout_seconds, read_timeout=s.step_timeout_seconds,
            retries=s.module_retries(m), backoff=s.retry_backoff_seconds,
            retry_after_max=s.retry_after_max_seconds, instance_id=instance_id,
        )
        for m in MODULE_NAMES
    }
    breaker = CircuitBreaker("switch", failures=s.breaker_failures,
                             reset_seconds=s.breaker_reset_seconds, clock=clock.monotonic)
    parse_client = ModuleClient(
        "switch", s.switch_url, token=token, pools=pools,
        connect_timeout=min(s.connect_timeout_seconds, s.parse_timeout_seconds),
        read_timeout=s.parse_timeout_seconds,
    )
    executor = StepExecutor({m: clients[m] for m in routes}, dict(routes), board)
    return Delegation(pools, clients, breaker, parse_client, executor)

"""The two clocks Madre reads: wall time for what it records and decides (expiries, step
times), a monotonic one for what it measures (the breaker's reset, restart windows).
Passed in, so tests drive time without sleeping."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable

from madre.model import utcnow


@dataclasses.dataclass(frozen=True)
class Clock:
    now: Callable[[], dt.datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic


SYSTEM_CLOCK = Clock()

"""What a starting Madre picks up from the one before it.

It closes the intents that never got a plan, ends the confirmations that expired meanwhile,
and resumes every plan left PENDING or RUNNING (a step that was in flight runs again with
the same Idempotency-Key). WAITING plans stay passive: a confirmation or a job report
wakes them. `Madre(recovery=...)` takes another function of the same shape (tests).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from madre.runtime import Madre

log = logging.getLogger("madre")


def recover(madre: Madre) -> None:
    """Recovery on start, run once every actor is up and before any request is taken."""
    started = madre.clock.now()
    closed = madre.store.close_orphan_intents(before=started)
    if closed:
        log.warning("closed %d intents left without a plan", closed)
    madre.tick(now=started)
    unfinished = madre.repo.unfinished_plan_ids()
    for plan_id in unfinished:
        madre.supervisor.activate(plan_id)
    if unfinished:
        log.info("recovering %d unfinished plans", len(unfinished))

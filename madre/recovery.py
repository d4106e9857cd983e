"""What a starting Madre picks up from the instances before it.

It says it is here (its liveness row), closes the intents that no instance planned (those
of instances that are gone, audited), ends the confirmations that expired meanwhile, and
takes over every plan left PENDING or RUNNING by an instance that is gone — never a live
instance's — resuming each from its last saved step (a step that was in flight runs again
with the same Idempotency-Key). WAITING plans stay passive: a confirmation or a job report
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
    madre.membership.register()
    # Intents no instance is named on come from a Madre older than instances.
    closed = madre.store.close_orphan_intents(before=started, include_unowned=True)
    if closed:
        log.warning("closed %d intents left without a plan", closed)
    madre.tick(now=started)
    round_ = madre.membership.round()
    if round_.claimed:
        log.info("recovering %d unfinished plans", len(round_.claimed))

"""A doorbell: how a writer wakes an actor once however many commits it makes meanwhile."""

from __future__ import annotations

import threading


class Doorbell:
    """Rung after every commit; answered when the woken actor starts its work (a trail
    catch-up, a checkpoint). While it is rung and not yet answered, more rings queue nothing
    more: that one piece of work covers them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rung = False

    def ring(self) -> bool:
        """True when this ring must be delivered (nobody rang since the last answer)."""
        with self._lock:
            if self._rung:
                return False
            self._rung = True
            return True

    def answer(self) -> None:
        with self._lock:
            self._rung = False

"""The trail actor: the forensic trail's one writer, told what each commit recorded.

The Store actor, which every write waits on, hands the committed records here instead of
hashing and writing files itself.
"""

from __future__ import annotations

import logging
from typing import Any

import pykka

from madre.forensics import ForensicTrail

log = logging.getLogger("madre.forensics")


class TrailWriter(pykka.ThreadingActor):
    """Appends committed records to the trail; a failing disk is logged, never raised."""

    def __init__(self, trail: ForensicTrail) -> None:
        super().__init__()
        self._trail = trail

    def on_receive(self, message: Any) -> None:
        if isinstance(message, list):
            try:
                self._trail.append(message)
            except OSError:
                log.exception("could not append %d records to the forensic trail", len(message))

    def on_stop(self) -> None:
        self._trail.close()

"""The Policy actor: risk decisions and confirmation tokens (rules in `madre.policy`)."""

from __future__ import annotations

import datetime as dt

import pykka

from madre import policy
from madre.contracts import DSL, Decision


class PolicyActor(pykka.ThreadingActor):
    def __init__(self, *, confirm_ttl_seconds: float) -> None:
        super().__init__()
        self._ttl = confirm_ttl_seconds

    def classify(self, target: str | None, action: str) -> Decision:
        return policy.classify(target, action)

    def classify_dsl(self, dsl: DSL) -> Decision:
        return policy.classify_dsl(dsl)

    def issue_token(self, now: dt.datetime) -> policy.IssuedToken:
        return policy.issue_token(now=now, ttl_seconds=self._ttl)

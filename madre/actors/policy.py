"""The Policy actor: risk decisions and confirmation tokens (rules in `madre.rules.policy`)."""

from __future__ import annotations

import datetime as dt

import pykka

from madre.rules import policy, tokens
from madre.model import DSL, Decision


class PolicyActor(pykka.ThreadingActor):
    """Classifies requests and issues confirmation tokens (with their time to live)."""

    def __init__(self, *, confirm_ttl_seconds: float) -> None:
        super().__init__()
        self._ttl = confirm_ttl_seconds

    def classify(self, target: str | None, action: str) -> Decision:
        return policy.classify(target, action)

    def classify_dsl(self, dsl: DSL) -> Decision:
        return policy.classify_dsl(dsl)

    def issue_token(self, now: dt.datetime) -> tokens.IssuedToken:
        return tokens.issue_token(now=now, ttl_seconds=self._ttl)

"""The Policy actor: risk decisions and confirmation tokens (rules in `madre.rules.policy`)."""

from __future__ import annotations

import datetime as dt

import pykka

from madre.model import DSL, Decision
from madre.rules import policy, tokens
from madre.rules.tables import DEFAULT_TABLES, PolicyTables


class PolicyActor(pykka.ThreadingActor):
    """Classifies requests and issues confirmation tokens (with their time to live)."""

    def __init__(self, *, confirm_ttl_seconds: float, tables: PolicyTables = DEFAULT_TABLES
                 ) -> None:
        super().__init__()
        self._ttl = confirm_ttl_seconds
        self._tables = tables  # the built-in verb tables, or those of MADRE_POLICY_FILE

    def classify(self, target: str | None, action: str) -> Decision:
        return policy.classify(target, action, tables=self._tables)

    def classify_dsl(self, dsl: DSL) -> Decision:
        return policy.classify_dsl(dsl, tables=self._tables)

    def issue_token(self, now: dt.datetime) -> tokens.IssuedToken:
        return tokens.issue_token(now=now, ttl_seconds=self._ttl)

"""Hooks for the schemathesis run (SCHEMATHESIS_HOOKS names this module).

A generated Idempotency-Key is often the same for two different bodies, which the server
rightly refuses (422 `idempotency_key_reused`) and schemathesis would count as a valid
request refused. A key that is valid is made unique per request; an invalid one is left as
generated, so the server's refusal of it is still checked."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis

from madre.idempotency import key_problem


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and isinstance(headers[name], str) and (
                key_problem(headers[name]) is None):
            headers[name] = uuid.uuid4().hex

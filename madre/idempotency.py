"""Idempotent intake: a request sent again with its Idempotency-Key starts nothing new.

The key is claimed by the intents_log row of the request's intent (a unique column holding
the SHA-256 of the principal and the key), written before anything is decided, so of two
requests with one key exactly one claims it, on one instance or several. The row keeps a
hash of what was asked and, once answered, the first answer (without its confirm token,
which is shown once): a retry with the same body gets that answer again (`replayed`);
another body under the same key is 422 `idempotency_key_reused`; a retry while the first is
still running is 409 `request_in_progress`. A request that fails frees its key, so a retry
is tried for real. Keys are kept as long as intents_log rows: for good (at least 24 h).

Signed webhooks use the same claim, with the message's `webhook-id` as the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from madre.actors.store import StoreClient
from madre.errors import DuplicateIntent, IdempotencyKeyReused, MadreError, RequestInProgress
from madre.records import IntentRecord
from madre.rules.approvals import canonical_json
from madre.store.repository import Repository

log = logging.getLogger("madre.idempotency")

M = TypeVar("M", bound=BaseModel)

MAX_KEY_CHARS = 255


@dataclasses.dataclass(frozen=True)
class IdempotencyKey:
    """A key as stored: hashed with its principal, and the hash of what it came with."""

    key_hash: str
    request_hash: str


def key_for(principal: str, key: str, *, route: str, body: dict[str, Any]) -> IdempotencyKey:
    """The stored form of `key` sent by `principal` to `route` with `body`."""
    key_hash = hashlib.sha256(f"{principal}\n{key}".encode()).hexdigest()
    asked = hashlib.sha256(f"{route}\n{canonical_json(body)}".encode()).hexdigest()
    return IdempotencyKey(key_hash, asked)


def key_problem(value: str) -> str | None:
    """Why a header value cannot be an Idempotency-Key, or None when it can."""
    if not value or len(value) > MAX_KEY_CHARS:
        return f"must be 1 to {MAX_KEY_CHARS} characters"
    if not all(" " <= c <= "~" for c in value):
        return "must be printable ASCII"
    return None


@dataclasses.dataclass(frozen=True)
class Answered(Generic[M]):
    """An answer, and whether it is the first answer given again."""

    answer: M
    replayed: bool = False


class Once:
    """Runs each keyed request once, over the repository (reads) and the store (writes)."""

    def __init__(self, repo: Repository, store: StoreClient) -> None:
        self._repo = repo
        self._store = store

    def run(self, key: IdempotencyKey | None, record: IntentRecord, model: type[M],
            compute: Callable[[IntentRecord | None], M]) -> Answered[M]:
        """`compute(record)` without a key. With one, claim it with `record` (written now),
        then `compute(None)` (the row is written) and keep its answer; or, when the key is
        claimed already, the first answer again. Raises IdempotencyKeyReused,
        RequestInProgress, or DuplicateIntent when the intent id itself was used (a
        correlation id) under another key."""
        if key is None:
            return Answered(compute(record))
        claim = dataclasses.replace(record, idempotency_key=key.key_hash,
                                    request_hash=key.request_hash)
        try:
            self._store.record_intent(claim)
        except DuplicateIntent:
            return Answered(self._first_answer(key, model), replayed=True)
        try:
            answer = compute(None)
        except BaseException:
            self._release(record.intent_id)
            raise
        kept = answer.model_copy(update={"confirm_token": None}) if (
            "confirm_token" in type(answer).model_fields) else answer
        self._store.remember_answer(record.intent_id, kept.model_dump_json())
        return Answered(answer)

    def _first_answer(self, key: IdempotencyKey, model: type[M]) -> M:
        row = self._repo.find_key(key.key_hash)
        if row is None:  # not the key: the intent id (a correlation id) was recorded before
            raise DuplicateIntent("intent already recorded")
        if row.request_hash != key.request_hash:
            raise IdempotencyKeyReused(
                "this Idempotency-Key came before with another request; use a new key for "
                "a new request")
        if row.answer_json is None:
            raise RequestInProgress(
                "the first request with this Idempotency-Key has not answered yet; retry "
                "in a moment to get its answer")
        return model.model_validate_json(row.answer_json)

    def _release(self, intent_id: str) -> None:
        try:
            self._store.release_key(intent_id)
        except MadreError:  # the database is down: the retry will find the key in progress
            log.warning("could not free an Idempotency-Key", extra={"intent_id": intent_id})

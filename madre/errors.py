"""Madre's exceptions. One root; each class says when it is raised.

    MadreError
    ├── ConfigError            a setting is invalid; start-up stops
    ├── BadRequest             the input cannot be acted on
    ├── NotFound               no such plan / job
    ├── NotAllowed             the principal's roles do not cover what it asks
    ├── BadSignature           a webhook is not signed with its source's secret
    ├── IdempotencyKeyReused   an Idempotency-Key sent again with another body
    ├── RequestInProgress      the first request with that Idempotency-Key is still running
    ├── ConfirmationError      a confirm, an approval or a rejection was refused
    │   ├── InvalidToken       the token does not match
    │   ├── TokenExpired       the token's time ran out
    │   ├── ApprovalExpired    the plan's time to be approved ran out
    │   ├── NotWaiting         the plan is not waiting for a confirmation
    │   ├── PlanChanged        the digest given is not the plan's (it is not what was shown)
    │   ├── AlreadyApproved    this principal approved this plan already
    │   └── SelfApproval       four eyes: who asked for a plan may not approve it
    ├── NotCancellable         the plan already ended
    ├── IllegalTransition      a state change the state machine forbids
    ├── StaleWrite             a plan was saved against a version someone else moved on from
    ├── DuplicateIntent        an intent id that is already recorded
    ├── DownstreamError        a call to a VX11 module failed (carries attempts, status, reason)
    ├── StoreUnavailable       the database did not answer, or refused the write
    └── ShuttingDown           Madre is stopping and takes no new work

Each carries a `code` (the error envelope's `error`); the HTTP layer maps classes to status
codes (`madre.http.errors`), so nothing here knows about HTTP.
"""

from __future__ import annotations


class MadreError(Exception):
    """Root of every error Madre raises on purpose."""

    code = "madre_error"


class ConfigError(MadreError):
    """A setting (or a file a setting names) is invalid: start-up stops with this message."""

    code = "config_error"


class BadRequest(MadreError):
    """The request is well-formed but cannot be acted on (a cursor this server never gave)."""

    code = "bad_request"


class NotFound(MadreError):
    """No plan or job has that id."""

    code = "not_found"


class ConfirmationError(MadreError):
    """A confirmation was refused; `plan_id` names the plan it was for."""

    def __init__(self, message: str, *, plan_id: str | None = None) -> None:
        super().__init__(message)
        self.plan_id = plan_id


class InvalidToken(ConfirmationError):
    """The confirm token is not the one this plan was issued."""

    code = "invalid_token"


class TokenExpired(ConfirmationError):
    """The confirm token's time ran out; the plan ended in ERROR."""

    code = "token_expired"


class NotWaiting(ConfirmationError):
    """The plan is not waiting for a confirmation (used, cancelled, never needed)."""

    code = "not_waiting"


class ApprovalExpired(ConfirmationError):
    """The plan's time to be approved ran out; it ended in ERROR (confirmation_expired)."""

    code = "approval_expired"


class PlanChanged(ConfirmationError):
    """The digest given is not the digest of the plan as it stands: what was approved is
    not what would run."""

    code = "plan_changed"


class AlreadyApproved(ConfirmationError):
    """This principal's approval of this plan is recorded already (or the token was used)."""

    code = "already_approved"


class SelfApproval(ConfirmationError):
    """Four eyes: the principal that submitted the plan may not approve or confirm it."""

    code = "self_approval"


class NotAllowed(MadreError):
    """The principal's roles do not cover what it asks for."""

    code = "not_allowed"


class BadSignature(MadreError):
    """A webhook without a valid Standard Webhooks signature of its source (or too old)."""

    code = "bad_signature"


class IdempotencyKeyReused(MadreError):
    """An Idempotency-Key this principal used before, now with another body."""

    code = "idempotency_key_reused"


class RequestInProgress(MadreError):
    """The first request with this Idempotency-Key has not answered yet."""

    code = "request_in_progress"


class NotCancellable(MadreError):
    """The plan already ended: there is nothing to cancel."""

    code = "not_cancellable"


class IllegalTransition(MadreError):
    """A move the plan (or step) state machine forbids, such as DONE → RUNNING."""

    code = "illegal_transition"

    def __init__(self, current: str, target: str, *, plan_id: str | None = None) -> None:
        super().__init__(f"a plan cannot go from {current} to {target}")
        self.current = current
        self.target = target
        self.plan_id = plan_id


class StaleWrite(MadreError):
    """A save of a plan read at `version` found the stored plan moved on (a cancel, a
    confirm, another owner): nothing was written; read it again."""

    code = "stale_write"

    def __init__(self, plan_id: str, version: int) -> None:
        super().__init__(f"plan {plan_id} changed since version {version} was read")
        self.plan_id = plan_id
        self.version = version


class DuplicateIntent(MadreError):
    """An intents_log row with this intent id exists already (a retried correlation id)."""

    code = "duplicate_intent"


class DownstreamError(MadreError):
    """A call to a VX11 module failed: after its retries, or at once when a retry cannot
    help. `attempts`, `status_code` and `reason` say what happened."""

    code = "downstream_error"

    def __init__(
        self,
        module: str,
        reason: str,
        *,
        attempts: int = 1,
        status_code: int | None = None,
        retryable: bool = False,
        timed_out: bool = False,
    ) -> None:
        super().__init__(f"{module}: {reason}")
        self.module = module
        self.reason = reason
        self.attempts = attempts
        self.status_code = status_code
        self.retryable = retryable
        self.timed_out = timed_out


class StoreUnavailable(MadreError):
    """The database did not answer in time, or refused a write."""

    code = "store_unavailable"


class ShuttingDown(MadreError):
    """Madre is stopping (or not started) and takes no new work."""

    code = "shutting_down"

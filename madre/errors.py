"""Madre's exceptions. One root, each class says when it is raised.

    MadreError
    ├── ConfigError            a setting is invalid; start-up stops
    ├── BadRequest             the input cannot be acted on (422/400)
    ├── NotFound               no such plan / job (404)
    ├── ConfirmationError      a confirm was refused
    │   ├── InvalidToken       the token does not match (403)
    │   ├── TokenExpired       the token's time ran out (410)
    │   └── NotWaiting         the plan is not waiting for a confirmation (409)
    ├── NotCancellable         the plan already ended (409)
    ├── IllegalTransition      a plan state change the state machine forbids
    ├── DownstreamError        a call to a VX11 module failed (carries attempts, status, reason)
    ├── StoreUnavailable       the database did not answer in time
    └── ShuttingDown           Madre is stopping and takes no new work (503)

The HTTP layer maps each to one status code and the one error envelope.
"""

from __future__ import annotations


class MadreError(Exception):
    """Root of every error Madre raises on purpose."""

    code = "madre_error"
    http_status = 500


class ConfigError(MadreError):
    code = "config_error"


class BadRequest(MadreError):
    code = "bad_request"
    http_status = 400


class NotFound(MadreError):
    code = "not_found"
    http_status = 404


class ConfirmationError(MadreError):
    def __init__(self, message: str, *, plan_id: str | None = None) -> None:
        super().__init__(message)
        self.plan_id = plan_id


class InvalidToken(ConfirmationError):
    code = "invalid_token"
    http_status = 403


class TokenExpired(ConfirmationError):
    code = "token_expired"
    http_status = 410


class NotWaiting(ConfirmationError):
    code = "not_waiting"
    http_status = 409


class NotCancellable(MadreError):
    code = "not_cancellable"
    http_status = 409


class IllegalTransition(MadreError):
    code = "illegal_transition"
    http_status = 409

    def __init__(self, current: str, target: str, *, plan_id: str | None = None) -> None:
        super().__init__(f"a plan cannot go from {current} to {target}")
        self.current = current
        self.target = target
        self.plan_id = plan_id


class DownstreamError(MadreError):
    code = "downstream_error"
    http_status = 502

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
    code = "store_unavailable"
    http_status = 503


class ShuttingDown(MadreError):
    code = "shutting_down"
    http_status = 503

"""The one error envelope: `{"error": code, "detail": sentence[, "errors": [...]]}`.

Every failure leaves through here: Madre's own errors by their class, Starlette's HTTP
errors (unknown route, wrong method) by status, anything unexpected as a 500 that says
only that it is Madre's fault (the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from madre import errors
from madre.errors import MadreError

log = logging.getLogger("madre.http")

HTTP_CODES = {
    400: "bad_request",
    401: "auth_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "unavailable",
}


STATUS_OF: dict[type[MadreError], int] = {
    errors.BadRequest: 400,
    errors.NotFound: 404,
    errors.InvalidToken: 403,
    errors.NotAllowed: 403,
    errors.SelfApproval: 403,
    errors.BadSignature: 401,
    errors.TokenExpired: 410,
    errors.ApprovalExpired: 410,
    errors.NotWaiting: 409,
    errors.PlanChanged: 409,
    errors.AlreadyApproved: 409,
    errors.RequestInProgress: 409,
    errors.IdempotencyKeyReused: 422,
    errors.NotCancellable: 409,
    errors.IllegalTransition: 409,
    errors.StaleWrite: 409,
    errors.DuplicateIntent: 409,
    errors.DownstreamError: 502,
    errors.StoreUnavailable: 503,
    errors.ShuttingDown: 503,
}
"""The HTTP status of each of Madre's errors (the nearest listed class counts); 500 else."""


def status_of(exc: MadreError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]  # type: ignore[index]
    return 500


def envelope(status: int, code: str, detail: str, *, errors: list[dict[str, Any]] | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


class RequestRejected(Exception):
    """Raised by body parsing: the request is refused with this status and code."""

    def __init__(self, status: int, code: str, detail: str,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors


async def on_rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestRejected)
    return envelope(exc.status, exc.code, exc.detail, errors=exc.errors)


async def on_madre_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MadreError)
    status = status_of(exc)
    if status >= 500:
        log.warning("request failed: %s", exc, extra={"path": request.url.path})
    return envelope(status, exc.code, str(exc))


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404:
        detail = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return envelope(exc.status_code, code, detail, headers=exc.headers)


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return envelope(500, "internal_error",
                    "Madre failed while handling this request; the operator log has details")


EXCEPTION_HANDLERS = {
    RequestRejected: on_rejected,
    MadreError: on_madre_error,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}

"""The endpoints. Each one parses, makes one call on the running Madre, and answers.

Calls into Madre block (they wait on actors), so they run in the thread pool; the event
loop only parses and serialises.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from madre.contracts import (
    MAX_ID_CHARS,
    ChatRequest,
    ConfirmRequest,
    ControlRequest,
    IntentRequest,
    Status,
)
from madre.errors import NotFound
from madre.http.bodies import parse_json
from madre.http.errors import RequestRejected
from madre.runtime import Madre

MAX_PAGE = 200


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status_code,
                    media_type="application/json")


def _madre(request: Request) -> Madre:
    madre: Madre = request.app.state.madre
    return madre


def _limit(request: Request) -> int:
    return _madre(request).settings.max_body_bytes


def _plan_id(request: Request) -> str:
    plan_id = str(request.path_params["plan_id"])
    if not plan_id or len(plan_id) > MAX_ID_CHARS:
        raise NotFound(f"no plan {plan_id[:MAX_ID_CHARS]}")
    return plan_id


async def health(request: Request) -> Response:
    return json_response(_madre(request).health())


async def chat(request: Request) -> Response:
    body = await parse_json(request, ChatRequest, limit=_limit(request))
    return json_response(await run_in_threadpool(_madre(request).chat, body))


async def control(request: Request) -> Response:
    body = await parse_json(request, ControlRequest, limit=_limit(request))
    return json_response(await run_in_threadpool(_madre(request).control, body))


async def intent(request: Request) -> Response:
    body = await parse_json(request, IntentRequest, limit=_limit(request))
    return json_response(await run_in_threadpool(_madre(request).submit_intent, body))


def _query_status(raw: str | None) -> Status | None:
    if raw is None or raw == "":
        return None
    try:
        return Status(raw.upper())
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise RequestRejected(422, "validation_error", f"status must be one of {allowed}",
                              errors=[{"loc": ["query", "status"], "msg": f"one of {allowed}",
                                       "type": "enum"}]) from None


def _query_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise RequestRejected(422, "validation_error",
                              f"limit must be a whole number from 1 to {MAX_PAGE}",
                              errors=[{"loc": ["query", "limit"], "msg": f"1..{MAX_PAGE}",
                                       "type": "int_range"}])
    return int(raw)


async def list_plans(request: Request) -> Response:
    query = request.query_params
    session_id = query.get("session_id") or None
    if session_id is not None and len(session_id) > MAX_ID_CHARS:
        raise RequestRejected(422, "validation_error", "session_id is too long")
    kwargs: dict[str, Any] = {
        "status": _query_status(query.get("status")),
        "session_id": session_id,
        "limit": _query_limit(query.get("limit")),
        "cursor": query.get("cursor") or None,
    }
    return json_response(await run_in_threadpool(_madre(request).list_plans, **kwargs))


async def get_plan(request: Request) -> Response:
    plan_id = _plan_id(request)
    return json_response(await run_in_threadpool(_madre(request).get_plan, plan_id))


async def confirm(request: Request) -> Response:
    plan_id = _plan_id(request)
    from_query = request.query_params.get("confirm_token")
    defaults = {"confirm_token": from_query} if from_query else None
    body = await parse_json(request, ConfirmRequest, limit=_limit(request), defaults=defaults)
    return json_response(await run_in_threadpool(_madre(request).confirm, plan_id,
                                                 body.confirm_token))


ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/madre/chat", chat, methods=["POST"]),
    Route("/madre/control", control, methods=["POST"]),
    Route("/madre/intent", intent, methods=["POST"]),
    Route("/madre/plans", list_plans, methods=["GET"]),
    Route("/madre/plans/{plan_id}", get_plan, methods=["GET"]),
    Route("/madre/plans/{plan_id}/confirm", confirm, methods=["POST"]),
]

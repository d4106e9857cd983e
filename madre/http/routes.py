"""The endpoints. Each one parses, makes one call on the running Madre, and answers.

Calls into Madre block (they wait on actors), so they run in the thread pool; the event
loop only parses and serialises.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from madre.contracts import (
    CancelRequest,
    MAX_ID_CHARS,
    ChatRequest,
    ConfirmRequest,
    ControlRequest,
    DaughterReport,
    IntentRequest,
    SpawnCallback,
)
from madre.errors import NotFound
from madre.http.bodies import parse_json
from madre.http.errors import RequestRejected
from madre.http.query import query_status
from madre.http.stream import events
from madre.runtime import Madre
from madre.store.repository import decode_cursor

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
    if not plan_id or len(plan_id) > MAX_ID_CHARS or "\x00" in plan_id:
        # No plan has such an id; asking the database would only fail (PostgreSQL refuses NUL).
        raise NotFound("no plan has that id")
    return plan_id


async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(_madre(request).metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def health(request: Request) -> Response:
    return json_response(_madre(request).health())


async def chat(request: Request) -> Response:
    body = await parse_json(request, ChatRequest, limit=_limit(request))
    return json_response(await run_in_threadpool(_madre(request).chat, body))


async def control(request: Request) -> Response:
    body = await parse_json(request, ControlRequest, limit=_limit(request))
    return json_response(await run_in_threadpool(_madre(request).control, body))


def _check_correlation_id(value: str | None) -> None:
    """A correlation id becomes the intent id, which travels on to the modules in the
    X-Correlation-Id header: only printable ASCII can go there (a newline or an emoji made
    the outgoing request raise, and the intake answer a 500)."""
    if value is not None and not all(" " <= c <= "~" for c in value):
        raise RequestRejected(
            422, "validation_error",
            "correlation_id: use printable ASCII characters only (it is sent on in a header)",
            errors=[{"loc": ["correlation_id"], "msg": "printable ASCII characters only",
                     "type": "string_pattern_mismatch"}])


async def intent(request: Request) -> Response:
    body = await parse_json(request, IntentRequest, limit=_limit(request))
    _check_correlation_id(body.correlation_id)
    return json_response(await run_in_threadpool(_madre(request).submit_intent, body))


def _query_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 50
    # ASCII digits only, and few of them: int() of thousands of digits raises, of "١" succeeds.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_PAGE:
        raise RequestRejected(422, "validation_error",
                              f"limit must be a whole number from 1 to {MAX_PAGE}",
                              errors=[{"loc": ["query", "limit"], "msg": f"1..{MAX_PAGE}",
                                       "type": "int_range"}])
    return int(raw)


def _query_cursor(raw: str | None) -> str | None:
    """The cursor as given, once it is known to be one this server gave out (400 otherwise)."""
    if raw is None or raw == "":
        return None
    decode_cursor(raw)
    return raw


async def list_plans(request: Request) -> Response:
    query = request.query_params
    session_id = query.get("session_id") or None
    if session_id is not None and (len(session_id) > MAX_ID_CHARS or "\x00" in session_id):
        raise RequestRejected(422, "validation_error",
                              f"session_id must be at most {MAX_ID_CHARS} characters, without NUL",
                              errors=[{"loc": ["query", "session_id"],
                                       "msg": f"at most {MAX_ID_CHARS} characters, no NUL",
                                       "type": "string_invalid"}])
    kwargs: dict[str, Any] = {
        "status": query_status(query.get("status")),
        "session_id": session_id,
        "limit": _query_limit(query.get("limit")),
        "cursor": _query_cursor(query.get("cursor")),
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


async def cancel(request: Request) -> Response:
    plan_id = _plan_id(request)
    body = await parse_json(request, CancelRequest, limit=_limit(request), defaults={})
    actor = body.by or request.headers.get("x-vx11-actor") or "api"
    return json_response(await run_in_threadpool(
        functools.partial(_madre(request).cancel, plan_id, actor=actor, reason=body.reason)))


def _daughter_id(request: Request) -> int:
    raw = str(request.path_params["daughter_id"])
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 2**63 - 1:
        raise NotFound(f"no job {raw[:40]} (daughter_tasks ids are positive whole numbers)")
    return int(raw)


async def spawn_callback(request: Request) -> Response:
    body = await parse_json(request, SpawnCallback, limit=_limit(request))
    answer = await run_in_threadpool(
        functools.partial(_madre(request).job_finished, body.daughter_task_id, ok=body.ok,
                          result=body.result, error=body.error, actor="spawner_callback"))
    return json_response(answer)


def _failure_reason(body: DaughterReport) -> str:
    if body.error:
        return body.error
    if body.exit_code is not None:
        return f"exit code {body.exit_code}"
    return body.status or "the Spawner reported a failure"


def _daughter_report(ok: bool):  # type: ignore[no-untyped-def]  # noqa: ANN202
    async def report(request: Request) -> Response:
        daughter_id = _daughter_id(request)
        body = await parse_json(request, DaughterReport, limit=_limit(request), defaults={})
        result = body.model_dump(exclude_none=True)
        error = None if ok else _failure_reason(body)
        answer = await run_in_threadpool(
            functools.partial(_madre(request).job_finished, daughter_id, ok=ok, result=result,
                              error=error, actor="spawner"))
        return json_response(answer)

    return report


ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/madre/chat", chat, methods=["POST"]),
    Route("/madre/control", control, methods=["POST"]),
    Route("/madre/intent", intent, methods=["POST"]),
    Route("/madre/plans", list_plans, methods=["GET"]),
    Route("/madre/plans/{plan_id}", get_plan, methods=["GET"]),
    Route("/madre/plans/{plan_id}/confirm", confirm, methods=["POST"]),
    Route("/madre/plans/{plan_id}/cancel", cancel, methods=["POST"]),
    Route("/madre/events", events, methods=["GET"]),
    Route("/madre/callback/spawn", spawn_callback, methods=["POST"]),
    Route("/madre/daughter/{daughter_id}/complete", _daughter_report(ok=True), methods=["POST"]),
    Route("/madre/daughter/{daughter_id}/fail", _daughter_report(ok=False), methods=["POST"]),
]

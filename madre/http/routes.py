"""The endpoints. Each one parses, makes one call on the running Madre, and answers.

Calls into Madre block (they wait on actors), so they run in the thread pool; the event
loop only parses and serialises. Which path and method reach each one is the operations
table (`madre.http.operations`).
"""

from __future__ import annotations

import functools

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from madre.contracts import (
    CancelRequest,
    ChatRequest,
    ConfirmRequest,
    ControlRequest,
    DaughterReport,
    IntentRequest,
    Liveness,
    PlanList,
    SpawnCallback,
)
from madre.errors import InvalidToken
from madre.http.bodies import parse_json
from madre.http.errors import envelope
from madre.http.query import (
    encode_cursor,
    path_daughter_id,
    path_plan_id,
    query_cursor,
    query_id,
    query_limit,
    query_status,
)
from madre.runtime import Madre


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status_code,
                    media_type="application/json")


def _madre(request: Request) -> Madre:
    madre: Madre = request.app.state.madre
    return madre


def _limit(request: Request) -> int:
    return _madre(request).settings.max_body_bytes


async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(_madre(request).metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def health(request: Request) -> Response:
    return json_response(_madre(request).health())


async def livez(request: Request) -> Response:
    return json_response(Liveness())


async def readyz(request: Request) -> Response:
    readiness = _madre(request).readiness()
    if readiness.status == "ready":
        return json_response(readiness)
    behind = readiness.trail_behind
    trail = f"; the forensic trail is {behind} rows behind" if behind else ""
    return envelope(503, "not_ready", f"{readiness.status}: {readiness.detail}{trail}")


async def instances(request: Request) -> Response:
    return json_response(_madre(request).instances())


async def chat(request: Request) -> Response:
    body = await parse_json(request, ChatRequest, limit=_limit(request))
    return json_response(await run_in_threadpool(_madre(request).chat, body))


async def control(request: Request) -> Response:
    body = await parse_json(request, ControlRequest, limit=_limit(request))
    return json_response(await run_in_threadpool(_madre(request).control, body))


async def intent(request: Request) -> Response:
    body = await parse_json(request, IntentRequest, limit=_limit(request))
    return json_response(await run_in_threadpool(_madre(request).submit_intent, body))


async def list_plans(request: Request) -> Response:
    query = request.query_params
    listing = functools.partial(
        _madre(request).list_plans,
        status=query_status(query.get("status")),
        session_id=query_id(query.get("session_id"), "session_id"),
        limit=query_limit(query.get("limit")),
        before=query_cursor(query.get("cursor")),
    )
    page = await run_in_threadpool(listing)
    cursor = encode_cursor(page.next_before) if page.next_before is not None else None
    return json_response(PlanList(plans=page.plans, next_cursor=cursor))


async def get_plan(request: Request) -> Response:
    plan_id = path_plan_id(str(request.path_params["plan_id"]))
    return json_response(await run_in_threadpool(_madre(request).get_plan, plan_id))


async def confirm(request: Request) -> Response:
    plan_id = path_plan_id(str(request.path_params["plan_id"]))
    from_query = request.query_params.get("confirm_token")
    defaults = {"confirm_token": from_query} if from_query else None
    # No body and no query parameter: nothing to check against the plan's token (403).
    body = await parse_json(request, ConfirmRequest, limit=_limit(request), defaults=defaults,
                            empty=InvalidToken("give the confirm_token this plan was issued",
                                               plan_id=plan_id))
    return json_response(await run_in_threadpool(_madre(request).confirm, plan_id,
                                                 body.confirm_token))


async def cancel(request: Request) -> Response:
    plan_id = path_plan_id(str(request.path_params["plan_id"]))
    body = await parse_json(request, CancelRequest, limit=_limit(request), defaults={})
    actor = body.by or request.headers.get("x-vx11-actor") or "api"
    return json_response(await run_in_threadpool(
        functools.partial(_madre(request).cancel, plan_id, actor=actor, reason=body.reason)))


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


async def _daughter_report(request: Request, *, ok: bool) -> Response:
    daughter_id = path_daughter_id(str(request.path_params["daughter_id"]))
    body = await parse_json(request, DaughterReport, limit=_limit(request), defaults={})
    result = body.model_dump(exclude_none=True)
    error = None if ok else _failure_reason(body)
    answer = await run_in_threadpool(
        functools.partial(_madre(request).job_finished, daughter_id, ok=ok, result=result,
                          error=error, actor="spawner"))
    return json_response(answer)


async def daughter_complete(request: Request) -> Response:
    return await _daughter_report(request, ok=True)


async def daughter_fail(request: Request) -> Response:
    return await _daughter_report(request, ok=False)

"""The endpoints. Each one parses, makes one call on the running Madre, and answers.

Calls into Madre block (they wait on actors), so they run in the thread pool; the event
loop only parses and serialises. Which path and method reach each one is the operations
table (`madre.http.operations`).
"""

from __future__ import annotations

import functools

from asgi_correlation_id import correlation_id  # the request id, set by the middleware
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from madre.contracts.commands import (
    ApproveRequest,
    CancelRequest,
    ConfirmRequest,
    DaughterReport,
    RejectRequest,
    SpawnCallback,
)
from madre.contracts.health import Liveness
from madre.contracts.intake import ChatRequest, ControlRequest, IntentRequest
from madre.contracts.plans import PendingList, PlanList
from madre.errors import BadSignature, InvalidToken, NotAllowed, NotFound
from madre.http.auth import principal_of
from madre.http.bodies import decode_json, parse_json, read_body
from madre.http.errors import RequestRejected, envelope
from madre.idempotency import IdempotencyKey, key_for, key_problem
from madre.http.query import (
    encode_cursor,
    path_daughter_id,
    path_plan_id,
    query_cursor,
    query_id,
    query_limit,
    query_status,
)
from madre.principals import Principal
from madre.runtime import Madre
from madre.webhooks import verify


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status_code,
                    media_type="application/json")


def _madre(request: Request) -> Madre:
    madre: Madre = request.app.state.madre
    return madre


def _limit(request: Request) -> int:
    return _madre(request).settings.max_body_bytes


def _who(request: Request) -> Principal:
    """The principal the auth middleware found for this request."""
    principal = principal_of(request)
    if principal is None:  # only open paths have none, and they do not come here
        raise NotAllowed("this route needs a principal's token")
    return principal


def _claimed_by(request: Request, body_by: str | None = None) -> str | None:
    """Whom the caller says it acts for (`by`, else X-VX11-Actor): a note in the audit,
    never its actor, which is the principal."""
    return body_by or request.headers.get("x-vx11-actor") or None


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


REPLAYED_HEADER = "Idempotent-Replayed"


def _idempotency_key(request: Request, principal: Principal, body: BaseModel
                     ) -> IdempotencyKey | None:
    """The request's Idempotency-Key (hashed with its principal, its route and body), or
    None without one; a 422 for a value that cannot be one."""
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    problem = key_problem(value)
    if problem:
        raise RequestRejected(422, "validation_error", f"Idempotency-Key: {problem}",
                              errors=[{"loc": ["header", "Idempotency-Key"], "msg": problem,
                                       "type": "value_error"}])
    return key_for(principal.name, value, route=request.url.path,
                   body=body.model_dump(mode="json"))


async def _take(request: Request, body: ChatRequest | ControlRequest | IntentRequest
                ) -> Response:
    """Intake, once per Idempotency-Key: a retry answers the first answer again."""
    principal = _who(request)
    key = _idempotency_key(request, principal, body)
    answered = await run_in_threadpool(functools.partial(
        _madre(request).take, body, principal=principal, key=key,
        request_id=correlation_id.get()))
    response = json_response(answered.answer)
    if answered.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


async def chat(request: Request) -> Response:
    return await _take(request, await parse_json(request, ChatRequest, limit=_limit(request)))


async def control(request: Request) -> Response:
    return await _take(request, await parse_json(request, ControlRequest,
                                                 limit=_limit(request)))


async def intent(request: Request) -> Response:
    body = await parse_json(request, IntentRequest, limit=_limit(request))
    return await _take(request, body)


async def webhook(request: Request) -> Response:
    """A Standard Webhooks message from a source of the principals file: verified with its
    secret before anything else is read, then taken as `/madre/intent`'s body."""
    madre = _madre(request)
    source = str(request.path_params["source"])
    secret = madre.principals.webhooks.get(source)
    if secret is None:
        madre.metrics.webhook_refused("unknown_source")
        raise NotFound(f"no webhook source {source!r}: add a [[webhook]] entry for it to "
                       "the principals file")
    raw = await read_body(request, _limit(request))
    try:
        message_id = verify(secret, raw, request.headers)
    except BadSignature:
        madre.metrics.webhook_refused("bad_signature")
        raise
    body = decode_json(raw, request.headers.get("content-type", ""), IntentRequest)
    answered = await run_in_threadpool(madre.webhook, source, message_id, body)
    return json_response(answered.answer)


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
    return json_response(await run_in_threadpool(functools.partial(
        _madre(request).confirm, plan_id, body.confirm_token, principal=_who(request),
        plan_digest=body.plan_digest)))


async def approve(request: Request) -> Response:
    plan_id = path_plan_id(str(request.path_params["plan_id"]))
    body = await parse_json(request, ApproveRequest, limit=_limit(request))
    return json_response(await run_in_threadpool(functools.partial(
        _madre(request).approve, plan_id, body.plan_digest, principal=_who(request),
        comment=body.comment)))


async def reject(request: Request) -> Response:
    plan_id = path_plan_id(str(request.path_params["plan_id"]))
    body = await parse_json(request, RejectRequest, limit=_limit(request))
    return json_response(await run_in_threadpool(functools.partial(
        _madre(request).reject, plan_id, body.reason, principal=_who(request),
        token=body.confirm_token)))


async def pending(request: Request) -> Response:
    plan_id = query_id(request.query_params.get("plan_id"), "plan_id")
    plans = await run_in_threadpool(_madre(request).pending, plan_id)
    return json_response(PendingList(plans=plans))


async def cancel(request: Request) -> Response:
    plan_id = path_plan_id(str(request.path_params["plan_id"]))
    body = await parse_json(request, CancelRequest, limit=_limit(request), defaults={})
    return json_response(await run_in_threadpool(functools.partial(
        _madre(request).cancel, plan_id, principal=_who(request), reason=body.reason,
        claimed_by=_claimed_by(request, body.by))))


async def spawn_callback(request: Request) -> Response:
    body = await parse_json(request, SpawnCallback, limit=_limit(request))
    answer = await run_in_threadpool(
        functools.partial(_madre(request).job_finished, body.daughter_task_id, ok=body.ok,
                          result=body.result, error=body.error, actor=_who(request).name))
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
                          error=error, actor=_who(request).name))
    return json_response(answer)


async def daughter_complete(request: Request) -> Response:
    return await _daughter_report(request, ok=True)


async def daughter_fail(request: Request) -> Response:
    return await _daughter_report(request, ok=False)

"""The OpenAPI 3.1 document of Madre's HTTP API, built from the pydantic contracts.

Two halves:
- OPERATIONS, a small declarative table: one entry per route in `madre.http.routes.ROUTES`
  (method, path, summary, request model, query and path parameters, response model, the
  error statuses it can answer);
- the schemas, generated from the models in `madre.contracts` by pydantic
  (`models_json_schema`), so a field added to a contract shows up here by itself.

`build_openapi(routes)` assembles the document for the routes an app really serves, and
`docs_routes(routes)` builds it once and returns `GET /openapi.json` and `GET /docs`.
A route without an entry here is caught by `undocumented()` (and the test that calls it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from madre.contracts import (
    MAX_ID_CHARS,
    CancelRequest,
    CancelResponse,
    ChatRequest,
    ChatResponse,
    ConfirmRequest,
    ConfirmResponse,
    ControlRequest,
    ControlResponse,
    DaughterReport,
    ErrorBody,
    Event,
    HealthResponse,
    IntentRequest,
    IntentResponse,
    JobReportResponse,
    PlanDetail,
    PlanList,
    SpawnCallback,
    Status,
)
from madre.http.auth import HEADER
from madre.http.docs import DOCS_CSP, DOCS_HTML
from madre.version import __version__

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
DOC_PATHS = frozenset({OPENAPI_PATH, DOCS_PATH})
"""The documentation's own routes: open (no token), and not described in the document."""

REF_TEMPLATE = "#/components/schemas/{model}"
HEADER_NAME = "X-VX11-Token"
assert HEADER_NAME.lower() == HEADER  # the header the auth middleware reads
SECURITY_SCHEME = "VX11Token"
MAX_PAGE = 200  # GET /madre/plans `limit` (the same bound as madre.http.routes.MAX_PAGE)

# --------------------------------------------------------------------------- error responses

ERRORS: dict[int, tuple[str, str, str]] = {
    # status: (description, example code, example detail)
    400: ("The body is not JSON, or a value cannot be acted on (`invalid_json`, "
          "`bad_request`).", "invalid_json", "the body is not valid JSON: Expecting value"),
    401: ("The `X-VX11-Token` header is missing (`auth_required`).", "auth_required",
          "send the X-VX11-Token header with this server's token"),
    403: ("The `X-VX11-Token` header is not this server's token (`forbidden`).", "forbidden",
          "the X-VX11-Token header is not this server's token"),
    404: ("No such plan or job (`not_found`).", "not_found", "no plan 0b7c…"),
    409: ("The plan is not waiting for a confirmation: already confirmed, used, cancelled or "
          "never needed (`not_waiting`).", "not_waiting",
          "the plan is not waiting for a confirmation"),
    410: ("The confirmation token expired; the plan ended in ERROR (`token_expired`).",
          "token_expired", "the confirmation token expired; submit the request again"),
    413: ("The body is larger than MADRE_MAX_BODY_BYTES (`payload_too_large`).",
          "payload_too_large", "the body is larger than 262144 bytes"),
    415: ("The body is not `application/json` (`unsupported_media_type`).",
          "unsupported_media_type", "send the body as application/json, not text/plain"),
    422: ("A field is missing or invalid (`validation_error`); `errors` lists each one.",
          "validation_error", "message: Field required"),
    503: ("Madre is stopping or its database did not answer in time (`shutting_down`, "
          "`store_unavailable`); try again later.", "shutting_down",
          "Madre is not running (stopping or not started); try again later"),
}

BODY_ERRORS = (400, 413, 415, 422)  # what reading a JSON body can answer
AUTH_ERRORS = (401, 403)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False
    deprecated: bool = False
    where: str = ""  # "header" for a header; else where the Operation lists it


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    description: str
    tag: str
    response: type[BaseModel] | None  # the 200 JSON body; None with `content` instead
    request: type[BaseModel] | None = None
    content: dict[str, Any] | None = None  # a 200 that is not JSON: {"text/plain": {...}}
    mentions: tuple[type[BaseModel], ...] = ()  # models `content` refers to, for the schemas
    body_required: bool = True
    query: tuple[Param, ...] = ()  # query parameters, and headers (where="header")
    path_params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    error_notes: dict[int, str] = field(default_factory=dict)
    public: bool = False  # no token needed


PLAN_ID = Param("plan_id", {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS},
                "The plan's id (`plan_id` of a chat, control or intent answer).", required=True)
DAUGHTER_ID = Param("daughter_id", {"type": "integer", "format": "int64", "minimum": 1},
                    "The job's `daughter_tasks.id`.", required=True)
SPAWNER_AUTH = ("Sent by the Spawner. Besides the server token, the Spawner's own token "
                "(MADRE_SPAWNER_TOKEN) is accepted; with MADRE_CALLBACK_AUTH=none this route "
                "needs no token at all.")

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET", "/health", "health", "Health of Madre and its dependencies",
        "From cached probes: answers fast even when every dependency hangs. `status` is "
        "`degraded` when the database or a module is down. Open: no token needed.",
        "health", HealthResponse, public=True),
    Operation(
        "GET", "/metrics", "metrics", "Prometheus metrics",
        "The Prometheus text exposition: plans, steps, confirmations, intake and the running "
        "Madre's gauges. Needs the token unless MADRE_METRICS_OPEN=true opens it for "
        "scrapers that cannot send headers.",
        "health", None,
        content={"text/plain": {
            "schema": {"type": "string",
                       "description": "Prometheus text format (version 0.0.4)."},
        }},
        errors=AUTH_ERRORS),
    Operation(
        "POST", "/madre/chat", "chat", "Chat: a natural-language intent",
        "The message is parsed (by Switch, or the local fallback parser), classified, planned "
        "and run. Waits up to MADRE_CHAT_WAIT_SECONDS for the plan: DONE or ERROR when it "
        "finished, WAITING when it needs a confirmation (then `confirm_token` is shown, once) "
        "or a Spawner job, RUNNING when the wait ran out (the plan goes on). With `dry_run` "
        "the plan is only described.",
        "intake", ChatResponse, request=ChatRequest, errors=(*BODY_ERRORS, *AUTH_ERRORS, 503)),
    Operation(
        "POST", "/madre/control", "control", "Control: a structured order for one module",
        "LOW runs at once (`accepted`); MED and HIGH answer `pending_confirmation` with a "
        "`confirm_token`; stopping or destroying `madre` or `tentaculo_link` is `denied`. "
        "With `confirm_token` (and optionally `plan_id`) it confirms the plan that token was "
        "issued for instead.",
        "intake", ControlResponse, request=ControlRequest,
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 410, 503),
        error_notes={
            403: "The token header is wrong (`forbidden`), or `confirm_token` matches no "
                 "waiting plan (`invalid_token`).",
            404: "`plan_id` names no plan (`not_found`), when confirming.",
        }),
    Operation(
        "POST", "/madre/intent", "submitIntent", "Intent: structured intake",
        "For Operator, Hormiguero, webhooks and the CLI. Give `text` (parsed) or `action` "
        "(with `target`, skips parsing); the original `{type, payload}` body is read as "
        "`action` and `params`. Does not wait for the plan. A repeated `correlation_id` "
        "returns the first answer with `duplicate: true`.",
        "intake", IntentResponse, request=IntentRequest,
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 503)),
    Operation(
        "GET", "/madre/plans", "listPlans", "List plans, newest first",
        "Filtered by `status` and `session_id`; pages of `limit` plans. Pass `next_cursor` "
        "back as `cursor` for the next page; it is null on the last one.",
        "plans", PlanList,
        query=(
            # Status is among the schemas: PlanList's summaries carry it.
            Param("status", {"$ref": REF_TEMPLATE.format(model="Status")},
                  "Only plans in this status (case-insensitive)."),
            Param("session_id", {"type": "string", "maxLength": MAX_ID_CHARS},
                  "Only plans of this session."),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                            "default": 50}, "How many plans per page."),
            Param("cursor", {"type": "string"},
                  "The `next_cursor` of the previous page."),
        ),
        errors=(400, *AUTH_ERRORS, 422),
        error_notes={400: "`cursor` is not one this server gave out (`bad_request`)."}),
    Operation(
        "GET", "/madre/plans/{plan_id}", "getPlan", "One plan, everything about it",
        "The intent (DSL, risk, mode, provider), every step (type, status, payload, result, "
        "error, attempts, times), the confirmation state (never the token) and the audit "
        "history.",
        "plans", PlanDetail, path_params=(PLAN_ID,), errors=(*AUTH_ERRORS, 404)),
    Operation(
        "POST", "/madre/plans/{plan_id}/confirm", "confirmPlan", "Confirm a waiting plan",
        "With the `confirm_token` the plan was issued (single use). The plan resumes; the "
        "answer waits up to MADRE_CHAT_WAIT_SECONDS and gives the plan's status then. The "
        "token may also come as the `confirm_token` query parameter (old clients); then the "
        "body may be empty.",
        "plans", ConfirmResponse, request=ConfirmRequest, body_required=False,
        path_params=(PLAN_ID,),
        query=(Param("confirm_token", {"type": "string", "maxLength": 256},
                     "The token, for clients that cannot send a body. Prefer the body.",
                     deprecated=True),),
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 410, 503),
        error_notes={403: "The token header is wrong (`forbidden`), or the confirm token "
                          "does not match this plan (`invalid_token`)."}),
    Operation(
        "POST", "/madre/plans/{plan_id}/cancel", "cancelPlan", "Cancel a plan",
        "A plan that has not finished ends in ERROR with the reason `cancelled`, audited with "
        "who asked (`by`, else the `X-VX11-Actor` header, else `api`). The body may be empty.",
        "plans", CancelResponse, request=CancelRequest, body_required=False,
        path_params=(PLAN_ID,),
        query=(Param("X-VX11-Actor", {"type": "string"},
                     "Who asks, for the audit trail, when the body has no `by`.",
                     where="header"),),
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 503),
        error_notes={409: "The plan already ended, DONE or ERROR (`not_cancellable`)."}),
    Operation(
        "GET", "/madre/events", "events", "Follow plan events (Server-Sent Events)",
        "A `text/event-stream` of the audit trail: each event's `event` is its action, its "
        "`id` the audit row id, its `data` an `Event` as JSON. Without `Last-Event-ID` (or "
        "`since`) the stream starts with what happens next; with it, everything after that "
        "id is sent first, so a client that reconnects misses nothing. A client too far "
        "behind gets a `dropped` event saying where to resume, and is disconnected.",
        "plans", None,
        content={"text/event-stream": {
            "schema": {"type": "string",
                       "description": "Server-Sent Events; each `data` is an Event as JSON."},
            "example": 'event: plan_done\nid: 42\ndata: {"id": 42, "action": "plan_done", '
                       '"module": "madre", "plan_id": "0b7c…", "plan_status": "DONE", '
                       '"created_at": "2025-01-01T00:00:00Z"}\n\n',
        }},
        mentions=(Event,),
        query=(
            Param("plan_id", {"type": "string", "maxLength": MAX_ID_CHARS},
                  "Only the events of this plan."),
            Param("session_id", {"type": "string", "maxLength": MAX_ID_CHARS},
                  "Only the events of this session's plans."),
            Param("status", {"type": "string", "enum": [s.value for s in Status]},
                  "Only events after which the plan is in this status (case-insensitive)."),
            Param("since", {"type": "integer", "minimum": 0},
                  "Resume after this event id (as `Last-Event-ID` does)."),
            Param("Last-Event-ID", {"type": "integer", "minimum": 0},
                  "The id of the last event received; the stream resumes after it.",
                  where="header"),
        ),
        errors=(400, *AUTH_ERRORS, 422),
        error_notes={400: "`Last-Event-ID` (or `since`) is not an event id (`bad_request`)."}),
    Operation(
        "POST", "/madre/callback/spawn", "spawnCallback", "A Spawner job has ended",
        "Resumes the plan waiting for the job (`status` ok) or ends it in ERROR. A repeated "
        "or late report changes nothing and answers `duplicate`. " + SPAWNER_AUTH,
        "spawner", JobReportResponse, request=SpawnCallback,
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 503)),
    Operation(
        "POST", "/madre/daughter/{daughter_id}/complete", "daughterComplete",
        "The Spawner reports a job completed",
        "The plan waiting for the job resumes. The body may be empty. " + SPAWNER_AUTH,
        "spawner", JobReportResponse, request=DaughterReport, body_required=False,
        path_params=(DAUGHTER_ID,), errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 503)),
    Operation(
        "POST", "/madre/daughter/{daughter_id}/fail", "daughterFail",
        "The Spawner reports a job failed",
        "The plan waiting for the job ends in ERROR with the reason (`error`, else the exit "
        "code). The body may be empty. " + SPAWNER_AUTH,
        "spawner", JobReportResponse, request=DaughterReport, body_required=False,
        path_params=(DAUGHTER_ID,), errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 503)),
)

TAGS = [
    {"name": "health", "description": "Is Madre up, its dependencies, its metrics."},
    {"name": "intake", "description": "Intents in: chat, control, structured intake."},
    {"name": "plans", "description": "Follow and confirm plans."},
    {"name": "spawner", "description": "Job reports from the Spawner."},
]


# --------------------------------------------------------------------------- routes ↔ table

_CONVERTER = re.compile(r"{(\w+):\w+}")


def route_operations(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(METHOD, path) of every HTTP operation `routes` serve (HEAD, added by Starlette to
    GET routes, left out; `{id:int}` converters written as `{id}`)."""
    found = set()
    for route in routes:
        if isinstance(route, Route) and route.methods:
            path = _CONVERTER.sub(r"{\1}", route.path)
            found.update((m, path) for m in route.methods if m != "HEAD")
    return found


def undocumented(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """Operations `routes` serve that OPERATIONS does not describe (the doc routes aside)."""
    described = {(op.method, op.path) for op in OPERATIONS}
    return {(m, p) for m, p in route_operations(routes)
            if p not in DOC_PATHS and (m, p) not in described}


# --------------------------------------------------------------------------- the document


def _models(operations: Sequence[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}  # ordered, no repeats
    wanted[(ErrorBody, "serialization")] = None
    for op in operations:
        if op.request is not None:
            wanted[(op.request, "validation")] = None
        if op.response is not None:
            wanted[(op.response, "serialization")] = None
        for model in op.mentions:
            wanted[(model, "serialization")] = None
    return list(wanted)


def _param(param: Param, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": param.name, "in": where, "required": param.required,
                           "description": param.description, "schema": param.schema}
    if param.deprecated:
        out["deprecated"] = True
    return out


def _json_content(ref: str, example: dict[str, Any] | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": ref}}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _operation(op: Operation, refs: dict[tuple[type[BaseModel], JsonSchemaMode], Any]
               ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "description": op.description,
        "tags": [op.tag],
    }
    params = [_param(p, p.where or "path") for p in op.path_params] + [
        _param(p, p.where or "query") for p in op.query]
    if params:
        out["parameters"] = params
    if op.request is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": _json_content(refs[(op.request, "validation")]["$ref"]),
        }
    if op.response is not None:
        ok = {"description": f"OK: a {op.response.__name__}",
              "content": _json_content(refs[(op.response, "serialization")]["$ref"])}
    else:
        assert op.content, f"{op.method} {op.path}: give a response model or a content"
        ok = {"description": "OK", "content": op.content}
    responses: dict[str, Any] = {"200": ok}
    error_ref = refs[(ErrorBody, "serialization")]["$ref"]
    for status in sorted(op.errors):
        description, code, detail = ERRORS[status]
        responses[str(status)] = {
            "description": op.error_notes.get(status, description),
            "content": _json_content(error_ref, {"error": code, "detail": detail}),
        }
    out["responses"] = responses
    out["security"] = [] if op.public else [{SECURITY_SCHEME: []}]
    return out


def build_openapi(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the operations `routes` serve."""
    served = route_operations(routes)
    operations = [op for op in OPERATIONS if (op.method, op.path) in served]
    refs, top = models_json_schema(_models(operations), ref_template=REF_TEMPLATE)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Madre",
            "version": __version__,
            "summary": "The orchestrator of the VX11 services.",
            "description": (
                "Madre takes in intents (chat, control, structured intake), classifies their "
                "risk, plans them as steps, runs them by delegating to the VX11 modules, and "
                "stops for a human confirmation where the risk asks for it.\n\n"
                f"Every endpoint except `GET /health` needs the `{HEADER_NAME}` header. Every "
                "error is one envelope, `{\"error\": \"<code>\", \"detail\": \"<sentence>\"}` "
                "(a 422 adds `errors`)."),
        },
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey", "in": "header", "name": HEADER_NAME,
                    "description": "The server's token (VX11_TOKEN).",
                },
            },
        },
        "security": [{SECURITY_SCHEME: []}],
    }


def docs_routes(routes: Iterable[BaseRoute]) -> list[Route]:
    """`GET /openapi.json` and `GET /docs` for an app serving `routes`; the document is built
    once, here."""
    body = json.dumps(build_openapi(routes), ensure_ascii=False).encode()

    async def openapi_json(request: Request) -> Response:
        return Response(body, media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(DOCS_HTML, headers={"Content-Security-Policy": DOCS_CSP})

    return [
        Route(OPENAPI_PATH, openapi_json, methods=["GET"]),
        Route(DOCS_PATH, docs, methods=["GET"]),
    ]


__all__ = ["DOC_PATHS", "OPERATIONS", "build_openapi", "docs_routes", "undocumented"]

"""The HTTP API as one table: each operation's method, path, endpoint and what it documents.

The app serves `ROUTES`, built from `OPERATIONS`, and the OpenAPI document
(`madre.http.openapi`) is built from the same entries: a route cannot exist without its
description, nor a description without its route.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.routing import Route

from madre.contracts import (
    MAX_ID_CHARS,
    MAX_PAGE,
    CancelRequest,
    CancelResponse,
    ChatRequest,
    ChatResponse,
    ConfirmRequest,
    ConfirmResponse,
    ControlRequest,
    ControlResponse,
    DaughterReport,
    Dropped,
    Event,
    HealthResponse,
    InstanceList,
    IntentRequest,
    Liveness,
    Readiness,
    IntentResponse,
    JobReportResponse,
    PlanDetail,
    PlanList,
    SpawnCallback,
)
from madre.http import routes as endpoints
from madre.http.query import CURSOR_PATTERN, STATUS_PATTERN
from madre.http.stream import events
from madre.model import Status

REF_TEMPLATE = "#/components/schemas/{model}"

BODY_ERRORS = (400, 413, 415, 422)  # what reading a JSON body can answer
AUTH_ERRORS = (401, 403)


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
    endpoint: Callable[..., Any] | None = None  # the handler the route calls


ID = {"type": "string", "maxLength": MAX_ID_CHARS, "pattern": "^[^\\x00]*$"}
STATUS = Param("status", {"type": "string", "pattern": STATUS_PATTERN},
               "Only plans in this status (any letter case): "
               + ", ".join(s.value for s in Status) + ".")
MAX_EVENT_ID = 10**18 - 1
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
        "health", HealthResponse, public=True,
        endpoint=endpoints.health),
    Operation(
        "GET", "/livez", "livez", "Liveness: the process serves",
        "200 while the process serves HTTP, whatever the state of the database or the "
        "modules (a load balancer restarts an instance that stops answering it). Open: no "
        "token needed.",
        "health", Liveness, public=True,
        endpoint=endpoints.livez),
    Operation(
        "GET", "/readyz", "readyz", "Readiness: send work here?",
        "200 `ready` when the database answers (the last write went through) and Madre "
        "takes work; 503 while `starting`, `draining` (stopping) or when the database is "
        "down (`db_down`, with the cause: disk full, read-only, locked, unreachable). "
        "`trail_behind` says how many committed rows the forensic trail does not hold yet. "
        "Open: no token needed.",
        "health", Readiness, public=True, errors=(503,),
        error_notes={503: "Not ready (`not_ready`): the detail starts with why, `starting:`, "
                          "`draining:` or `db_down:`."},
        endpoint=endpoints.readyz),
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
        errors=AUTH_ERRORS,
        endpoint=endpoints.metrics),
    Operation(
        "GET", "/madre/instances", "listInstances", "The Madre instances on this database",
        "The instances alive on the database this one uses, as of its last heartbeat round "
        "(every second): id, host, pid, when each started and last beat. On SQLite, one.",
        "health", InstanceList, errors=AUTH_ERRORS,
        endpoint=endpoints.instances),
    Operation(
        "POST", "/madre/chat", "chat", "Chat: a natural-language intent",
        "The message is parsed (by Switch, or the local fallback parser), classified, planned "
        "and run. Waits up to MADRE_CHAT_WAIT_SECONDS for the plan: DONE or ERROR when it "
        "finished, WAITING when it needs a confirmation (then `confirm_token` is shown, once) "
        "or a Spawner job, RUNNING when the wait ran out (the plan goes on). With `dry_run` "
        "the plan is only described.",
        "intake", ChatResponse, request=ChatRequest, errors=(*BODY_ERRORS, *AUTH_ERRORS, 503),
        endpoint=endpoints.chat),
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
        },
        endpoint=endpoints.control),
    Operation(
        "POST", "/madre/intent", "submitIntent", "Intent: structured intake",
        "For Operator, Hormiguero, webhooks and the CLI. Give `text` (parsed) or `action` "
        "(with `target`, skips parsing); the original `{type, payload}` body is read as "
        "`action` and `params`. Does not wait for the plan. A repeated `correlation_id` "
        "returns the first answer with `duplicate: true`.",
        "intake", IntentResponse, request=IntentRequest,
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 503),
        endpoint=endpoints.intent),
    Operation(
        "GET", "/madre/plans", "listPlans", "List plans, newest first",
        "Filtered by `status` and `session_id`; pages of `limit` plans. Pass `next_cursor` "
        "back as `cursor` for the next page; it is null on the last one.",
        "plans", PlanList,
        query=(
            STATUS,
            Param("session_id", ID, "Only plans of this session."),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                            "default": 50}, "How many plans per page."),
            Param("cursor", {"type": "string", "pattern": CURSOR_PATTERN},
                  "The `next_cursor` of the previous page."),
        ),
        errors=(400, *AUTH_ERRORS, 422),
        error_notes={400: "`cursor` is not one this server gave out (`bad_request`)."},
        endpoint=endpoints.list_plans),
    Operation(
        "GET", "/madre/plans/{plan_id}", "getPlan", "One plan, everything about it",
        "The intent (DSL, risk, mode, provider), every step (type, status, payload, result, "
        "error, attempts, times), the confirmation state (never the token) and the audit "
        "history.",
        "plans", PlanDetail, path_params=(PLAN_ID,), errors=(*AUTH_ERRORS, 404),
        endpoint=endpoints.get_plan),
    Operation(
        "POST", "/madre/plans/{plan_id}/confirm", "confirmPlan", "Confirm a waiting plan",
        "With the `confirm_token` the plan was issued (single use). The plan resumes; the "
        "answer waits up to MADRE_CHAT_WAIT_SECONDS and gives the plan's status then. The "
        "token may also come as the `confirm_token` query parameter (old clients); then the "
        "body may be empty.",
        "plans", ConfirmResponse, request=ConfirmRequest, body_required=False,
        path_params=(PLAN_ID,),
        query=(Param("confirm_token", {"type": "string", "minLength": 1, "maxLength": 256,
                                       "pattern": "^[^\\x00]*$"},
                     "The token, for clients that cannot send a body. Prefer the body.",
                     deprecated=True),),
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 410, 503),
        error_notes={403: "The token header is wrong (`forbidden`), or the confirm token "
                          "does not match this plan (`invalid_token`)."},
        endpoint=endpoints.confirm),
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
        error_notes={409: "The plan already ended, DONE or ERROR (`not_cancellable`)."},
        endpoint=endpoints.cancel),
    Operation(
        "GET", "/madre/events", "events", "Follow plan events (Server-Sent Events)",
        "A `text/event-stream` of the audit trail: each event's `event` is its action, its "
        "`id` the audit row id, its `data` an `Event` as JSON. Without `Last-Event-ID` (or "
        "`since`) the stream starts with what happens next; with it, everything after that "
        "id is sent first, so a client that reconnects misses nothing. A client too far "
        "behind gets a `dropped` event saying where to resume, and is disconnected.",
        "plans", None,
        content={"text/event-stream": {
            # Each event as an object of its fields (as schemathesis and the SSE tooling of
            # OpenAPI 3.2 read it): `data` is JSON, an Event (or, for `dropped`, a Dropped).
            "schema": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "pattern": "^[0-9]+$"},
                    "event": {"type": "string"},
                    "data": {"type": "string", "contentMediaType": "application/json",
                             "contentSchema": {"anyOf": [
                                 {"$ref": REF_TEMPLATE.format(model="Event")},
                                 {"$ref": REF_TEMPLATE.format(model="Dropped")}]}},
                },
                "required": ["data"],
            },
            "example": 'event: plan_done\nid: 42\ndata: {"id": 42, "action": "plan_done", '
                       '"module": "madre", "plan_id": "0b7c…", "plan_status": "DONE", '
                       '"created_at": "2025-01-01T00:00:00Z"}\n\n',
        }},
        mentions=(Event, Dropped),
        query=(
            Param("plan_id", ID, "Only the events of this plan."),
            Param("session_id", ID, "Only the events of this session's plans."),
            dataclasses.replace(STATUS, description="Only events after which the plan is in "
                                                    "this status (any letter case)."),
            Param("since", {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID},
                  "Resume after this event id (as `Last-Event-ID` does)."),
            Param("Last-Event-ID", {"type": "string", "pattern": "^[0-9]{1,18}$"},
                  "The id of the last event received (digits); the stream resumes after it.",
                  where="header"),
        ),
        errors=(400, *AUTH_ERRORS, 422),
        error_notes={400: "`Last-Event-ID` (or `since`) is not an event id (`bad_request`)."},
        endpoint=events),
    Operation(
        "POST", "/madre/callback/spawn", "spawnCallback", "A Spawner job has ended",
        "Resumes the plan waiting for the job (`status` ok) or ends it in ERROR. A repeated "
        "or late report changes nothing and answers `duplicate`. " + SPAWNER_AUTH,
        "spawner", JobReportResponse, request=SpawnCallback,
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 503),
        endpoint=endpoints.spawn_callback),
    Operation(
        "POST", "/madre/daughter/{daughter_id}/complete", "daughterComplete",
        "The Spawner reports a job completed",
        "The plan waiting for the job resumes. The body may be empty. " + SPAWNER_AUTH,
        "spawner", JobReportResponse, request=DaughterReport, body_required=False,
        path_params=(DAUGHTER_ID,), errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 503),
        endpoint=endpoints.daughter_complete),
    Operation(
        "POST", "/madre/daughter/{daughter_id}/fail", "daughterFail",
        "The Spawner reports a job failed",
        "The plan waiting for the job ends in ERROR with the reason (`error`, else the exit "
        "code). The body may be empty. " + SPAWNER_AUTH,
        "spawner", JobReportResponse, request=DaughterReport, body_required=False,
        path_params=(DAUGHTER_ID,), errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 503),
        endpoint=endpoints.daughter_fail),
)

TAGS = [
    {"name": "health", "description": "Is Madre up, its dependencies, its metrics."},
    {"name": "intake", "description": "Intents in: chat, control, structured intake."},
    {"name": "plans", "description": "Follow and confirm plans."},
    {"name": "spawner", "description": "Job reports from the Spawner."},
]




ROUTES = [Route(op.path, op.endpoint, methods=[op.method]) for op in OPERATIONS
          if op.endpoint is not None]
"""Every route the app serves (besides the documentation's own)."""

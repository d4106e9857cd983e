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

from madre.contracts.commands import (
    ApproveRequest,
    ApproveResponse,
    CancelRequest,
    CancelResponse,
    ConfirmRequest,
    ConfirmResponse,
    DaughterReport,
    JobReportResponse,
    RejectRequest,
    RejectResponse,
    SpawnCallback,
)
from madre.contracts.events import Dropped, Event
from madre.contracts.fields import MAX_ID_CHARS, MAX_PAGE
from madre.contracts.health import HealthResponse, InstanceList, Liveness, Readiness
from madre.contracts.intake import (
    ChatRequest,
    ChatResponse,
    ControlRequest,
    ControlResponse,
    IntentRequest,
    IntentResponse,
)
from madre.contracts.plans import PendingList, PlanDetail, PlanList
from madre.http import routes as endpoints
from madre.http.auth import guarded
from madre.http.query import CURSOR_PATTERN, STATUS_PATTERN
from madre.http.stream import events
from madre.model import Status
from madre.principals import Role

REF_TEMPLATE = "#/components/schemas/{model}"

BODY_ERRORS = (400, 413, 415, 422)  # what reading a JSON body can answer
AUTH_ERRORS = (401, 403)

# Which roles cover which routes (admin covers all). Every role but spawner reads plans:
# who submits, approves or operates must see what they act on.
SUBMIT = frozenset({Role.SUBMITTER})
READ = frozenset({Role.VIEWER, Role.SUBMITTER, Role.APPROVER, Role.OPERATOR})
APPROVE = frozenset({Role.APPROVER})
OPERATE = frozenset({Role.OPERATOR})
SPAWN = frozenset({Role.SPAWNER})
HANDLER_DECIDES: frozenset[Role] = frozenset()  # any principal; the command checks more


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
    roles: frozenset[Role] = HANDLER_DECIDES  # the roles that cover it (admin: all)


IDEMPOTENCY_KEY = Param(
    "Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 255,
                        "pattern": "^[ -~]+$"},
    "Makes a retry safe: the same key with the same body (per principal, kept at least "
    "24 h) answers the first answer again, with `Idempotent-Replayed: true`, and starts "
    "nothing; the same key with another body is 422 `idempotency_key_reused`; while the "
    "first is still running, 409 `request_in_progress`. A replayed answer has no "
    "`confirm_token` (it is shown once); approve with the `plan_digest` instead.",
    where="header")

RETRY_NOTES = {
    409: "The first request with this Idempotency-Key has not answered yet "
         "(`request_in_progress`).",
    422: "A field is missing or invalid (`validation_error`), or the Idempotency-Key came "
         "before with another body (`idempotency_key_reused`).",
}

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
        endpoint=endpoints.metrics, roles=OPERATE),
    Operation(
        "GET", "/madre/instances", "listInstances", "The Madre instances on this database",
        "The instances alive on the database this one uses, as of its last heartbeat round "
        "(every second): id, host, pid, when each started and last beat. On SQLite, one.",
        "health", InstanceList, errors=AUTH_ERRORS,
        endpoint=endpoints.instances, roles=READ),
    Operation(
        "POST", "/madre/chat", "chat", "Chat: a natural-language intent",
        "The message is parsed (by Switch, or the local fallback parser), classified, planned "
        "and run. Waits up to MADRE_CHAT_WAIT_SECONDS for the plan: DONE or ERROR when it "
        "finished, WAITING when it needs a confirmation (then `confirm_token` is shown, once) "
        "or a Spawner job, RUNNING when the wait ran out (the plan goes on). With `dry_run` "
        "the plan is only described.",
        "intake", ChatResponse, request=ChatRequest, query=(IDEMPOTENCY_KEY,),
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 409, 503),
        error_notes=RETRY_NOTES,
        endpoint=endpoints.chat, roles=SUBMIT),
    Operation(
        "POST", "/madre/control", "control", "Control: a structured order for one module",
        "LOW runs at once (`accepted`); MED and HIGH answer `pending_confirmation` with a "
        "`confirm_token`; stopping or destroying `madre` or `tentaculo_link` is `denied`. "
        "With `confirm_token` (and optionally `plan_id`) it confirms the plan that token was "
        "issued for instead (that needs the approver role too).",
        "intake", ControlResponse, request=ControlRequest, query=(IDEMPOTENCY_KEY,),
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 410, 503),
        error_notes={
            403: "The token header is wrong (`forbidden`), the principal is no submitter "
                 "(`not_allowed`), or `confirm_token` matches no waiting plan "
                 "(`invalid_token`).",
            404: "`plan_id` names no plan (`not_found`), when confirming.",
            422: RETRY_NOTES[422],
        },
        endpoint=endpoints.control, roles=SUBMIT),
    Operation(
        "POST", "/madre/intent", "submitIntent", "Intent: structured intake",
        "For Operator, Hormiguero, webhooks and the CLI. Give `text` (parsed) or `action` "
        "(with `target`, skips parsing); the original `{type, payload}` body is read as "
        "`action` and `params`. Does not wait for the plan. A repeated `correlation_id` "
        "returns the first answer with `duplicate: true`.",
        "intake", IntentResponse, request=IntentRequest, query=(IDEMPOTENCY_KEY,),
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 409, 503),
        error_notes=RETRY_NOTES,
        endpoint=endpoints.intent, roles=SUBMIT),
    Operation(
        "POST", "/madre/webhook/{source}", "webhook", "A signed webhook: structured intake",
        "The body of `/madre/intent`, signed per Standard Webhooks (headers `webhook-id`, "
        "`webhook-timestamp`, `webhook-signature`) with the secret of `source`'s "
        "[[webhook]] entry in the principals file; the intent's source is `source`. Needs no "
        "token. A repeated `webhook-id` returns the first answer with `duplicate: true` and "
        "starts nothing.",
        "intake", IntentResponse, request=IntentRequest,
        path_params=(Param("source", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
                           "The webhook source, as the principals file names it.",
                           required=True),
                     ),
        query=tuple(Param(h, {"type": "string"}, f"Standard Webhooks `{h}`.", required=True,
                          where="header")
                    for h in ("webhook-id", "webhook-timestamp", "webhook-signature")),
        errors=(*BODY_ERRORS, 401, 404, 409, 503), public=True,
        error_notes={
            401: "The signature is missing or not the source's, or the timestamp is more "
                 "than 5 minutes away (`bad_signature`).",
            404: "No webhook source of that name (`not_found`).",
            409: "The first message with this `webhook-id` has not answered yet "
                 "(`request_in_progress`)."},
        endpoint=endpoints.webhook),
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
        endpoint=endpoints.list_plans, roles=READ),
    Operation(
        "GET", "/madre/plans/{plan_id}", "getPlan", "One plan, everything about it",
        "The intent (DSL, risk, mode, provider), every step (type, status, payload, result, "
        "error, attempts, times), the confirmation state (never the token), the audit "
        "history, who submitted it and, for a plan that waits for a human, the `plan_digest` "
        "of what will run, the approvals of it so far and how many it needs.",
        "plans", PlanDetail, path_params=(PLAN_ID,), errors=(*AUTH_ERRORS, 404),
        endpoint=endpoints.get_plan, roles=READ),
    Operation(
        "POST", "/madre/plans/{plan_id}/confirm", "confirmPlan", "Confirm a waiting plan",
        "With the `confirm_token` the plan was issued (single use): the principal's approval, "
        "through the token, of what the plan will run (of `plan_digest`, when given). With "
        "the approvals it needs the plan resumes; the answer waits up to "
        "MADRE_CHAT_WAIT_SECONDS and gives the plan's status then. The token may also come "
        "as the `confirm_token` query parameter (old clients); then the body may be empty.",
        "plans", ConfirmResponse, request=ConfirmRequest, body_required=False,
        path_params=(PLAN_ID,),
        query=(Param("confirm_token", {"type": "string", "minLength": 1, "maxLength": 256,
                                       "pattern": "^[^\\x00]*$"},
                     "The token, for clients that cannot send a body. Prefer the body.",
                     deprecated=True),),
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 410, 503),
        error_notes={
            403: "The token header is wrong (`forbidden`), the principal is no approver "
                 "(`not_allowed`), the confirm token does not match this plan "
                 "(`invalid_token`), or four eyes apply and the principal asked for the plan "
                 "(`self_approval`).",
            409: "The plan is not waiting (`not_waiting`), the digest is not the plan's or "
                 "the plan changed since the token was issued (`plan_changed`), or the token "
                 "or this principal approved it already (`already_approved`).",
            410: "The token expired (`token_expired`), also after the expiry timer ended the "
                 "plan."},
        endpoint=endpoints.confirm, roles=APPROVE),
    Operation(
        "POST", "/madre/plans/{plan_id}/cancel", "cancelPlan", "Cancel a plan",
        "A plan that has not finished ends in ERROR with the reason `cancelled`, audited with "
        "the principal that asked as its actor (`by`, else the `X-VX11-Actor` header, is kept "
        "as a note: whom the caller says it acts for). The body may be empty.",
        "plans", CancelResponse, request=CancelRequest, body_required=False,
        path_params=(PLAN_ID,),
        query=(Param("X-VX11-Actor", {"type": "string"},
                     "Whom the caller acts for, noted in the audit, when the body has no `by`.",
                     where="header"),),
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 503),
        error_notes={409: "The plan already ended, DONE or ERROR (`not_cancellable`)."},
        endpoint=endpoints.cancel, roles=OPERATE),
    Operation(
        "POST", "/madre/plans/{plan_id}/approve", "approvePlan",
        "Approve what a waiting plan will run",
        "The principal's approval (no token needed: this is how an approver approves a plan "
        "someone else asked for) of the content `plan_digest`, as shown by the plan detail or "
        "GET /madre/pending. A HIGH plan runs after MADRE_HIGH_APPROVALS approvals by "
        "distinct principals, any other after one; then the answer waits up to "
        "MADRE_CHAT_WAIT_SECONDS for it. With MADRE_FOUR_EYES the principal that asked may "
        "not approve.",
        "plans", ApproveResponse, request=ApproveRequest, path_params=(PLAN_ID,),
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 410, 503),
        error_notes={
            403: "The token header is wrong (`forbidden`), the principal is no approver "
                 "(`not_allowed`), or four eyes apply and it asked for the plan "
                 "(`self_approval`).",
            409: "The digest is not the plan's (`plan_changed`), this principal approved it "
                 "already (`already_approved`), or it is not waiting (`not_waiting`).",
            410: "The time to approve it ran out (`approval_expired`), also after the expiry "
                 "timer ended the plan."},
        endpoint=endpoints.approve, roles=APPROVE),
    Operation(
        "POST", "/madre/plans/{plan_id}/reject", "rejectPlan", "Reject a waiting plan",
        "By an approver, or by whoever holds the plan's `confirm_token` (then give it). The "
        "plan ends in ERROR with the reason `rejected: <reason>`; nothing of it runs.",
        "plans", RejectResponse, request=RejectRequest, path_params=(PLAN_ID,),
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 410, 503),
        error_notes={
            403: "The token header is wrong (`forbidden`), the principal is no approver and "
                 "gave no token (`not_allowed`), or the token is not the plan's "
                 "(`invalid_token`).",
            410: "The time to approve or reject it ran out (`approval_expired`)."},
        endpoint=endpoints.reject, roles=HANDLER_DECIDES),
    Operation(
        "GET", "/madre/pending", "pendingPlans", "Plans waiting for a human",
        "Every plan waiting for a confirmation, the soonest to expire first: what will run "
        "(each step's type, module, route and payload), its `plan_digest`, who asked, when "
        "it expires, the approvals so far and how many it needs.",
        "plans", PendingList, errors=(*AUTH_ERRORS, 422),
        query=(Param("plan_id", ID,
                     "Only this plan (an empty list when it does not wait for a human)."),),
        endpoint=endpoints.pending, roles=READ),
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
        endpoint=events, roles=OPERATE),
    Operation(
        "POST", "/madre/callback/spawn", "spawnCallback", "A Spawner job has ended",
        "Resumes the plan waiting for the job (`status` ok) or ends it in ERROR. A repeated "
        "or late report changes nothing and answers `duplicate`. " + SPAWNER_AUTH,
        "spawner", JobReportResponse, request=SpawnCallback,
        errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 503),
        endpoint=endpoints.spawn_callback, roles=SPAWN),
    Operation(
        "POST", "/madre/daughter/{daughter_id}/complete", "daughterComplete",
        "The Spawner reports a job completed",
        "The plan waiting for the job resumes. The body may be empty. " + SPAWNER_AUTH,
        "spawner", JobReportResponse, request=DaughterReport, body_required=False,
        path_params=(DAUGHTER_ID,), errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 503),
        endpoint=endpoints.daughter_complete, roles=SPAWN),
    Operation(
        "POST", "/madre/daughter/{daughter_id}/fail", "daughterFail",
        "The Spawner reports a job failed",
        "The plan waiting for the job ends in ERROR with the reason (`error`, else the exit "
        "code). The body may be empty. " + SPAWNER_AUTH,
        "spawner", JobReportResponse, request=DaughterReport, body_required=False,
        path_params=(DAUGHTER_ID,), errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 503),
        endpoint=endpoints.daughter_fail, roles=SPAWN),
)

TAGS = [
    {"name": "health", "description": "Is Madre up, its dependencies, its metrics."},
    {"name": "intake", "description": "Intents in: chat, control, structured intake."},
    {"name": "plans", "description": "Follow, approve, reject and cancel plans."},
    {"name": "spawner", "description": "Job reports from the Spawner."},
]




ROUTES = [Route(op.path, guarded(op.endpoint, op.roles), methods=[op.method])
          for op in OPERATIONS if op.endpoint is not None]
"""Every route the app serves (besides the documentation's own)."""

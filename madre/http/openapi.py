"""The OpenAPI 3.1 document of Madre's HTTP API, built from the operations table and the
pydantic contracts.

- `madre.http.operations.OPERATIONS`: one entry per operation (method, path, endpoint,
  summary, request model, parameters, response model, the error statuses it can answer);
  the app's routes are built from it too;
- the schemas, generated from the models in `madre.contracts` by pydantic
  (`models_json_schema`), so a field added to a contract shows up here by itself.

`build_openapi(routes)` assembles the document for the routes an app really serves, and
`docs_routes(routes)` builds it once and returns `GET /openapi.json` and `GET /docs`. A
route added to an app by hand, outside the table, is caught by `undocumented()`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from madre.contracts.envelope import TOKEN_HEADER, ErrorBody
from madre.http.docs import docs_page
from madre.http.operations import OPERATIONS, REF_TEMPLATE, TAGS, Operation, Param
from madre.version import __version__

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
DOC_PATHS = frozenset({OPENAPI_PATH, DOCS_PATH})
"""The documentation's own routes: open (no token), and not described in the document."""

SECURITY_SCHEME = "VX11Token"
BEARER_SCHEME = "Bearer"  # the same token as `Authorization: Bearer <token>`
SECURITY = [{SECURITY_SCHEME: []}, {BEARER_SCHEME: []}]  # either one

# --------------------------------------------------------------------------- error responses

ERRORS: dict[int, tuple[str, str, str]] = {
    # status: (description, example code, example detail)
    400: ("The body is not JSON, or a value cannot be acted on (`invalid_json`, "
          "`bad_request`).", "invalid_json", "the body is not valid JSON: Expecting value"),
    401: ("No token was sent, neither `X-VX11-Token` nor `Authorization: Bearer` "
          "(`auth_required`).", "auth_required",
          "send this server's token in the X-VX11-Token header (or as Authorization: "
          "Bearer <token>)"),
    403: ("The token sent is not a token this server knows (`forbidden`), or the "
          "principal's roles do not cover this route (`not_allowed`).", "forbidden",
          "the token sent is not a token this server knows"),
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

# --------------------------------------------------------------------------- what bodies may hold

STORABLE = "^[^\\x00]*$"
"""Every string a request body carries (values and keys, at any depth) is Unicode text without
NUL: the server refuses NUL with a 422, and so (I-JSON, RFC 7493) an unpaired surrogate."""
JSON_VALUE = "JsonValue"
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value whose strings and keys are storable text (no NUL, no "
                   "unpaired surrogate) and whose numbers are finite, nested at most 32 "
                   "levels deep.",
    "anyOf": [
        {"type": "null"}, {"type": "boolean"}, {"type": "number"},
        {"type": "string", "pattern": STORABLE},
        {"type": "array", "items": {"$ref": REF_TEMPLATE.format(model=JSON_VALUE)}},
        {"type": "object", "propertyNames": {"pattern": STORABLE},
         "additionalProperties": {"$ref": REF_TEMPLATE.format(model=JSON_VALUE)}},
    ],
}


def _storable(schema: Any) -> Any:
    """A request schema saying what the server keeps: every string without NUL, every free
    object (`dict[str, Any]`) made of storable JSON values."""
    if isinstance(schema, list):
        return [_storable(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _storable(value) for key, value in schema.items()}
    if out.get("type") == "string":
        if "pattern" in out:  # two patterns: both must match
            out.setdefault("allOf", []).append({"pattern": out.pop("pattern")})
            out["allOf"].append({"pattern": STORABLE})
        else:
            out["pattern"] = STORABLE
    if out.get("type") == "object" and out.get("additionalProperties") is True:
        out["additionalProperties"] = {"$ref": REF_TEMPLATE.format(model=JSON_VALUE)}
        out["propertyNames"] = {"pattern": STORABLE}
    return out


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
    out["security"] = [] if op.public else SECURITY
    return out


def build_openapi(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the operations `routes` serve."""
    served = route_operations(routes)
    operations = [op for op in OPERATIONS if (op.method, op.path) in served]
    models = _models(operations)
    refs, top = models_json_schema(models, ref_template=REF_TEMPLATE)
    schemas = top.get("$defs", {})
    for model, mode in models:
        if mode == "validation":  # a request body: say what the server keeps
            name = refs[(model, mode)]["$ref"].rsplit("/", 1)[1]
            schemas[name] = _storable(schemas[name])
    schemas[JSON_VALUE] = JSON_VALUE_SCHEMA
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
                "Every endpoint except `GET /health` and the signed webhooks needs a "
                f"principal's token (the server token in single-token mode), in the "
                f"`{TOKEN_HEADER}` header or as `Authorization: Bearer <token>`, and a role "
                "that covers it. Every error is one envelope, "
                "`{\"error\": \"<code>\", \"detail\": \"<sentence>\"}` "
                "(a 422 adds `errors`)."),
        },
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey", "in": "header", "name": TOKEN_HEADER,
                    "description": "A principal's token (MADRE_PRINCIPALS_FILE), or the "
                                   "server's (VX11_TOKEN) in single-token mode.",
                },
                BEARER_SCHEME: {
                    "type": "http", "scheme": "bearer",
                    "description": "The server's token (VX11_TOKEN), as a bearer token.",
                },
            },
        },
        "security": SECURITY,
    }


def docs_routes(routes: Iterable[BaseRoute]) -> list[Route]:
    """`GET /openapi.json` and `GET /docs` for an app serving `routes`; the document is built
    once, here."""
    body = json.dumps(build_openapi(routes), ensure_ascii=False).encode()

    async def openapi_json(request: Request) -> Response:
        return Response(body, media_type="application/json")

    page, policy = docs_page()

    async def docs(request: Request) -> Response:
        return HTMLResponse(page, headers={"Content-Security-Policy": policy})

    return [
        Route(OPENAPI_PATH, openapi_json, methods=["GET"]),
        Route(DOCS_PATH, docs, methods=["GET"]),
    ]


__all__ = ["DOC_PATHS", "OPERATIONS", "build_openapi", "docs_routes", "undocumented"]

"""GET /openapi.json describes every endpoint and model truthfully, and GET /docs renders it.

The document is generated (madre/http/openapi.py: a table of operations plus the pydantic
contracts), so these tests hold it to the running app: every route is in it with its method,
request bodies list their models' required fields, response schemas are the models' schemas,
real answers validate against the documented schemas, and the documented auth is what the
app does. A guard fails when a Route is added to ROUTES without an entry in the table.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import TOKEN, make_settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from madre import Madre, create_app
from madre.contracts.envelope import ErrorBody
from madre.contracts.intake import ChatResponse
from madre.http.app import OPEN_PATHS
from madre.http.openapi import (
    DOC_PATHS,
    OPERATIONS,
    REF_TEMPLATE,
    build_openapi,
    route_operations,
    undocumented,
)
from madre.http.operations import ROUTES
from madre.standins import StandinCluster

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def app(tmp_path: Path, standins: StandinCluster) -> Iterator[Starlette]:
    """The real app over a running Madre. SQLite only: the document does not depend on the
    database (the PostgreSQL half of the suite covers the endpoints themselves)."""
    with Madre(make_settings(f"sqlite:///{tmp_path}/madre.db", standins)) as madre:
        yield create_app(madre)


@pytest.fixture
def anonymous(app: Starlette) -> TestClient:
    """A client that sends no token."""
    return TestClient(app)


@pytest.fixture
def authed(app: Starlette) -> TestClient:
    return TestClient(app, headers={"X-VX11-Token": TOKEN})


@pytest.fixture
def doc(anonymous: TestClient) -> dict[str, Any]:
    resp = anonymous.get("/openapi.json")
    assert resp.status_code == 200, resp.text
    return resp.json()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def schema_of(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    prefix = "#/components/schemas/"
    assert ref.startswith(prefix), ref
    return doc["components"]["schemas"][ref[len(prefix):]]


def validator(doc: dict[str, Any], ref: str) -> Draft202012Validator:
    """A JSON Schema validator for the component `ref`, its references resolved in `doc`."""
    return Draft202012Validator({"$ref": ref, "components": doc["components"]})


def ok_schema_ref(doc: dict[str, Any], method: str, path: str) -> str:
    return str(doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]
               ["schema"]["$ref"])


# --------------------------------------------------------------------------- the document


def test_the_document_is_a_valid_openapi_3_1_document(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "Madre"


def test_openapi_json_needs_no_token_and_is_json(anonymous: TestClient) -> None:
    resp = anonymous.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert "/openapi.json" in OPEN_PATHS and "/docs" in OPEN_PATHS


def test_the_document_is_built_once_per_app_and_served_the_same_each_time(
    anonymous: TestClient,
) -> None:
    assert anonymous.get("/openapi.json").content == anonymous.get("/openapi.json").content


def test_every_route_of_the_running_app_is_in_the_document_with_its_method(
    app: Starlette, doc: dict[str, Any],
) -> None:
    checked = 0
    for route in app.routes:
        if not isinstance(route, Route) or route.path in DOC_PATHS:
            continue
        for method in route.methods or ():
            if method == "HEAD":
                continue
            assert route.path in doc["paths"], f"{route.path} is missing from the document"
            assert method.lower() in doc["paths"][route.path], f"{method} {route.path} missing"
            checked += 1
    assert checked >= len(ROUTES)


def test_the_document_describes_no_operation_the_app_does_not_serve(
    app: Starlette, doc: dict[str, Any],
) -> None:
    served = route_operations(app.routes)
    described = {(method.upper(), path) for method, path, _ in operations(doc)}
    assert described <= served


def test_every_route_in_routes_has_an_openapi_entry() -> None:
    """The guard: adding a Route to madre.http.routes.ROUTES needs an Operation in
    madre.http.openapi.OPERATIONS (method, path, summary, models, errors)."""
    missing = undocumented(ROUTES)
    assert not missing, (
        f"routes without an OpenAPI entry: {sorted(missing)}; add an Operation for each to "
        "OPERATIONS in madre/http/openapi.py")
    stale = {(op.method, op.path) for op in OPERATIONS} - route_operations(ROUTES)
    assert not stale, f"OPERATIONS describes routes ROUTES no longer has: {sorted(stale)}"


def test_the_guard_notices_a_route_added_without_an_openapi_entry() -> None:
    async def endpoint(request: Any) -> Response:
        return Response()

    added = [*ROUTES, Route("/madre/undocumented/{thing}", endpoint, methods=["POST"])]
    assert undocumented(added) - undocumented(ROUTES) == {("POST", "/madre/undocumented/{thing}")}


def test_every_request_body_lists_the_fields_of_its_model_and_their_required_ones(
    doc: dict[str, Any],
) -> None:
    by_id = {op.operation_id: op for op in OPERATIONS}
    bodies = 0
    for method, path, op in operations(doc):
        model = by_id[op["operationId"]].request
        if model is None:
            assert "requestBody" not in op, f"{method} {path} documents a body it does not read"
            continue
        bodies += 1
        schema = schema_of(doc, op["requestBody"]["content"]["application/json"]["schema"]
                           ["$ref"])
        required = {f.alias or name for name, f in model.model_fields.items() if f.is_required()}
        assert required <= set(schema.get("required", [])), f"{method} {path}"
        assert set(schema["properties"]) == {f.alias or n for n, f in model.model_fields.items()}
    assert bodies >= 7  # chat, control, intent, confirm, callback, daughter complete, fail


def test_the_chat_response_schema_is_the_chat_response_models_schema(
    doc: dict[str, Any],
) -> None:
    schema = schema_of(doc, ok_schema_ref(doc, "post", "/madre/chat"))
    expected = ChatResponse.model_json_schema(ref_template=REF_TEMPLATE)
    assert schema["properties"] == expected["properties"]
    assert set(schema["required"]) == set(expected["required"])


def test_every_error_response_is_the_error_envelope(doc: dict[str, Any]) -> None:
    envelope = doc["components"]["schemas"]["ErrorBody"]
    assert set(envelope["required"]) == {"error", "detail"}
    assert set(envelope["properties"]) == set(ErrorBody.model_fields)
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            if status == "200":
                continue
            media = response["content"]["application/json"]
            assert media["schema"]["$ref"].endswith("/ErrorBody"), f"{method} {path} {status}"
            validator(doc, media["schema"]["$ref"]).validate(media["example"])


def test_the_token_schemes_apply_to_every_operation_but_the_probes_and_signed_webhooks(
        doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["VX11Token"] == {"type": "apiKey", "in": "header", "name": "X-VX11-Token",
                                    "description": schemes["VX11Token"]["description"]}
    assert schemes["Bearer"] == {"type": "http", "scheme": "bearer",
                                 "description": schemes["Bearer"]["description"]}
    for method, path, op in operations(doc):
        if (method, path) in {("get", "/health"), ("get", "/livez"), ("get", "/readyz"),
                              ("post", "/madre/webhook/{source}")}:
            assert op["security"] == []
        else:
            assert op["security"] == [{"VX11Token": []}, {"Bearer": []}], f"{method} {path}"
            assert {"401", "403"} <= set(op["responses"]), f"{method} {path}"


# --------------------------------------------------------------------------- truthfulness


def _concrete(path: str) -> str:
    return path.replace("{plan_id}", str(uuid.uuid4())).replace("{daughter_id}", "1")


@pytest.mark.parametrize("method,path", sorted(
    (op.method, op.path) for op in OPERATIONS if not op.public))
def test_an_operation_documented_as_needing_the_token_answers_401_without_it(
    anonymous: TestClient, doc: dict[str, Any], method: str, path: str,
) -> None:
    resp = anonymous.request(method, _concrete(path), json={})
    assert resp.status_code == 401
    assert "401" in doc["paths"][path][method.lower()]["responses"]
    validator(doc, "#/components/schemas/ErrorBody").validate(resp.json())


def test_health_is_open_as_documented_and_answers_its_documented_schema(
    anonymous: TestClient, doc: dict[str, Any],
) -> None:
    resp = anonymous.get("/health")
    assert resp.status_code == 200
    validator(doc, ok_schema_ref(doc, "get", "/health")).validate(resp.json())


def test_real_answers_validate_against_their_documented_schemas(
    authed: TestClient, doc: dict[str, Any],
) -> None:
    answer = authed.post("/madre/chat", json={"message": "mix these 3 stems"})
    assert answer.status_code == 200, answer.text
    validator(doc, ok_schema_ref(doc, "post", "/madre/chat")).validate(answer.json())
    plan_id = answer.json()["plan_id"]

    waiting = authed.post("/madre/control", json={"target": "shub", "action": "delete"})
    validator(doc, ok_schema_ref(doc, "post", "/madre/control")).validate(waiting.json())

    listed = authed.get("/madre/plans", params={"limit": 1})
    validator(doc, ok_schema_ref(doc, "get", "/madre/plans")).validate(listed.json())

    detail = authed.get(f"/madre/plans/{plan_id}")
    validator(doc, ok_schema_ref(doc, "get", "/madre/plans/{plan_id}")).validate(detail.json())

    confirmed = authed.post(f"/madre/plans/{waiting.json()['plan_id']}/confirm",
                            json={"confirm_token": waiting.json()["confirm_token"]})
    validator(doc, ok_schema_ref(doc, "post", "/madre/plans/{plan_id}/confirm")).validate(
        confirmed.json())

    unknown = authed.get(f"/madre/plans/{uuid.uuid4()}")
    assert str(unknown.status_code) in doc["paths"]["/madre/plans/{plan_id}"]["get"]["responses"]


@pytest.mark.parametrize("route", [r for r in ROUTES if isinstance(r, Route)],
                         ids=lambda r: r.path)
def test_the_document_of_an_app_serving_one_route_describes_that_route_alone(
    route: Route,
) -> None:
    partial = build_openapi([route])
    validate(partial)  # every reference resolves among the schemas it carries
    assert list(partial["paths"]) == [route.path]


# --------------------------------------------------------------------------- /docs


def test_docs_answers_an_html_page_without_a_token(anonymous: TestClient) -> None:
    resp = anonymous.get("/docs")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "openapi.json" in resp.text


def test_docs_loads_nothing_from_another_site(anonymous: TestClient) -> None:
    resp = anonymous.get("/docs")
    linked = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", resp.text)
    assert all(not re.match(r"^(?:[a-z]+:)?//", url) for url in linked), linked
    assert "<script src" not in resp.text
    policy = resp.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy

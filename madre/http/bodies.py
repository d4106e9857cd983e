"""Reading a JSON request body into a contract, refusing everything else clearly."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from madre.http.errors import RequestRejected

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestRejected(413, "payload_too_large", f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRejected(413, "payload_too_large",
                                  f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)]


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise RequestRejected(422, "validation_error", f"{where}: {first['msg']}",
                              errors=errors) from None


async def parse_json(request: Request, model: type[M], *, limit: int,
                     defaults: dict[str, Any] | None = None) -> M:
    """The body as `model`: 415 unless JSON, 413 past `limit`, 400 if unparsable, 422 if invalid."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    body = await read_body(request, limit)
    if not body.strip() and defaults is not None:
        return validate(model, defaults)
    if media and media != "application/json" and not media.endswith("+json"):
        raise RequestRejected(415, "unsupported_media_type",
                              f"send the body as application/json, not {media}")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestRejected(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestRejected(422, "validation_error", "the body must be a JSON object",
                              errors=[{"loc": ["body"], "msg": "expected an object",
                                       "type": "dict_type"}])
    if defaults:
        data = {**defaults, **data}
    return validate(model, data)

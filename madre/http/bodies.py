"""Reading a JSON request body into a contract, refusing everything else clearly."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from madre.http.errors import RequestRejected

M = TypeVar("M", bound=BaseModel)

MAX_DEPTH = 32
"""Deepest nesting of objects and arrays a body may have (deeper ones are refused with a 422
before they reach code that recurses: validation, deep copies between actors, JSON dumps)."""


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestRejected(413, "payload_too_large", f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestRejected(413, "payload_too_large",
                                      f"the body is larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or cut by the connection guard: nobody reads an answer
        raise RequestRejected(408, "request_timeout",
                              "the body did not arrive (the client went away)") from None
    return b"".join(chunks)


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice: which one counts is not for us to guess."""
    built = dict(pairs)
    if len(built) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return built


def _unstorable(text: str) -> str | None:
    """Why `text` cannot be stored or forwarded as it is, or None when it can."""
    if "\x00" in text:
        return "must not contain NUL (\\u0000) characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no unpaired surrogate escapes such as \\ud800)"
    return None


def check_depth(data: Any) -> None:
    """Refuse (422) nesting deeper than MAX_DEPTH before anything recurses into the body.
    Iterative, so a hostile body cannot exhaust the stack here either."""
    stack: list[tuple[Any, list[Any]]] = [(data, [])]
    while stack:
        value, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            raise RequestRejected(
                422, "validation_error", f"the body is nested more than {MAX_DEPTH} levels deep",
                errors=[{"loc": loc[:MAX_DEPTH + 1], "msg": f"nested more than {MAX_DEPTH} levels",
                         "type": "too_deep"}])
        if isinstance(value, dict):
            stack.extend((item, [*loc, key]) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, [*loc, i]) for i, item in enumerate(value))


def check_values(data: Any) -> None:
    """Refuse, with a 422 naming the place, what JSON allows but Madre cannot keep: numbers
    too large to be finite (1e999), and strings (values or keys) holding NUL or unpaired
    surrogates (the document's string pattern, and its I-JSON rule, say so)."""
    stack: list[tuple[Any, list[Any]]] = [(data, [])]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            # 1e999 is valid JSON that Python reads as infinity, which no JSON can carry on.
            where = ".".join(str(p) for p in loc) or "body"
            raise RequestRejected(422, "validation_error",
                                  f"{where}: the number is too large (not a finite number)",
                                  errors=[{"loc": loc, "msg": "must be a finite number",
                                           "type": "finite_number"}])
        if isinstance(value, str):
            problem = _unstorable(value)
            if problem:
                where = ".".join(str(p) for p in loc) or "body"
                raise RequestRejected(422, "validation_error", f"{where}: text {problem}",
                                      errors=[{"loc": loc, "msg": f"text {problem}",
                                               "type": "string_unstorable"}])
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = _unstorable(key)
                if problem:
                    where = ".".join(str(p) for p in [*loc, "[key]"])
                    raise RequestRejected(422, "validation_error", f"{where}: a key {problem}",
                                          errors=[{"loc": [*loc, "[key]"], "msg": f"key {problem}",
                                                   "type": "string_unstorable"}])
                stack.append((item, [*loc, key]))
        elif isinstance(value, list):
            stack.extend((item, [*loc, i]) for i, item in enumerate(value))


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
                     defaults: dict[str, Any] | None = None,
                     empty: Exception | None = None) -> M:
    """The body as `model`: 415 unless JSON, 413 past `limit`, 400 if unparsable, 422 if invalid.
    An empty body is `defaults` when given, else `empty` is raised when given, else 400."""
    body = await read_body(request, limit)
    return decode_json(body, request.headers.get("content-type", ""), model, defaults=defaults,
                       empty=empty)


def decode_json(body: bytes, content_type: str, model: type[M], *,
                defaults: dict[str, Any] | None = None, empty: Exception | None = None) -> M:
    """A body already read, as `model` (every check of `parse_json` but the size)."""
    media = content_type.split(";")[0].strip().lower()
    if not body.strip() and defaults is not None:
        check_depth(defaults)
        return _checked(validate(model, defaults))
    if media and media != "application/json" and not media.endswith("+json"):
        raise RequestRejected(415, "unsupported_media_type",
                              f"send the body as application/json, not {media}")
    if not body.strip():
        if empty is not None:
            raise empty
        raise RequestRejected(400, "invalid_json", "the body is empty; send a JSON object")
    try:
        data = json.loads(body, parse_constant=_reject_constant, object_pairs_hook=_object)
    except RecursionError:
        raise RequestRejected(
            422, "validation_error", f"the body is nested more than {MAX_DEPTH} levels deep",
            errors=[{"loc": ["body"], "msg": f"nested more than {MAX_DEPTH} levels",
                     "type": "too_deep"}]) from None
    except DuplicateKey as exc:
        raise RequestRejected(400, "invalid_json", f"the body is ambiguous: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestRejected(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestRejected(422, "validation_error", "the body must be a JSON object",
                              errors=[{"loc": ["body"], "msg": "expected an object",
                                       "type": "dict_type"}])
    if defaults:
        data = {**defaults, **data}
    check_depth(data)
    return _checked(validate(model, data))


def _checked(body: M) -> M:
    """The values the body's fields keep (keys it ignores are not Madre's business)."""
    check_values(body.model_dump(exclude_defaults=True))
    return body

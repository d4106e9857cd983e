"""What wraps every exchange, whatever the endpoint: the header a caller's token travels in
and the error envelope every refusal answers with."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

TOKEN_HEADER = "X-VX11-Token"
"""The header every caller sends its token in."""


class ErrorBody(BaseModel):
    error: str
    detail: str
    errors: list[dict[str, Any]] | None = None

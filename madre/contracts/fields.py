"""How a request body's values are read: the limits, what counts as blank, the field types.

Every request contract builds its fields from these, so each endpoint refuses alike (a 422
naming the field) and the OpenAPI document declares the very limits the routes enforce.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

MAX_MESSAGE_CHARS = 8_000
"""Longest chat message or intent text accepted; longer ones are refused with a 422."""

MAX_ID_CHARS = 128
"""Longest id (session, plan, correlation) accepted anywhere."""

MAX_PAGE = 200
"""Most plans one page of GET /madre/plans lists (`limit`)."""


# Strict: `dry_run: 0` is not false and "5" is not 5, as the document says. Unknown keys
# are ignored (old clients send more); what is kept is what the fields below declare.
REQUEST_CONFIG = ConfigDict(extra="ignore", strict=True)

SPACES = " \t\n\r\f\v"
"""What counts as blank around a value: exactly these (the document's patterns say the same,
so every regex engine agrees with the server about what is blank)."""
NOT_BLANK = r"[^ \t\n\r\f\v]"  # the pattern of a value that must not be blank


def _integral(value: Any) -> Any:
    """3.0 is a whole number in JSON (and in the document's "integer"): take it as 3."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole = Annotated[int, BeforeValidator(_integral)]


def _stripped(value: str) -> str:
    value = value.strip(SPACES)
    if not value:
        raise ValueError("must not be blank")
    return value


def _blank_to_none(value: str | None) -> str | None:
    """An optional value sent blank is as if not sent (its length was checked as sent)."""
    return None if value is None or not value.strip(SPACES) else value


def Words(max_length: int, **field: Any) -> Any:  # noqa: N802 - a type, read as one
    """Required text, not blank, trimmed of spaces around it."""
    return Annotated[str, Field(min_length=1, max_length=max_length,
                                json_schema_extra={"pattern": NOT_BLANK}, **field),
                     AfterValidator(_stripped)]


def Optional(max_length: int, **field: Any) -> Any:  # noqa: N802 - a type, read as one
    """Optional text: absent, null or blank mean none."""
    return Annotated[str | None, Field(default=None, max_length=max_length, **field),
                     AfterValidator(_blank_to_none)]

"""Query-string values shared by several routes, refused in the one envelope when wrong."""

from __future__ import annotations

from madre.contracts import Status
from madre.http.errors import RequestRejected


def query_status(raw: str | None) -> Status | None:
    """A plan status filter (`?status=`), any letter case; None when absent."""
    if raw is None or raw == "":
        return None
    try:
        return Status(raw.upper())
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise RequestRejected(422, "validation_error", f"status must be one of {allowed}",
                              errors=[{"loc": ["query", "status"], "msg": f"one of {allowed}",
                                       "type": "enum"}]) from None

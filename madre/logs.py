"""Operator logs on stdout: JSON lines for machines, plain text for a person at a terminal.

Fields: time, level, logger, message, and whatever context the record carries
(`request_id`, `plan_id`, `intent_id`, `session_id`, `step`, `duration_ms`, ...) passed
with `extra=`. `tail -f | jq` reads the JSON. `MADRE_LOG_FORMAT=auto` (the default) writes
text when stdout is a terminal and JSON otherwise; `json` or `text` force one.

The request id of the HTTP request being served (the `X-Request-ID` the client sent, or
the one minted for it) is added to every line logged while serving it, from any thread the
request runs on. Plan actors run on threads of their own: they carry the id of the request
that created their plan in their log context explicitly (see `madre.actors.plan`).

Only the serving entry points configure logging; an embedding program keeps its own.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from typing import TextIO

from asgi_correlation_id import correlation_id

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message", "asctime", "taskName",
    "color_message",  # uvicorn's copy of the message with ANSI colours: never written out
}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _context(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _message(record: logging.LogRecord) -> str:
    """The message without terminal colour codes (a library may put them in the text)."""
    return _ANSI.sub("", record.getMessage())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        entry.update(_context(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = _message(record)
        text = super().formatMessage(record)
        context = [f"{k}={v}" for k, v in _context(record).items()]
        return f"{text} [{' '.join(context)}]" if context else text


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records logged while an HTTP request is served (the middleware
    sets it in a context variable, which the request's thread-pool calls inherit)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = correlation_id.get()
            if request_id:
                record.request_id = request_id
        return True


def resolve_format(fmt: str, stream: TextIO) -> str:
    """`auto` → `text` on a terminal, `json` otherwise; `json` and `text` stay as they are."""
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure_logging(fmt: str = "auto", level: str = "INFO",
                      stream: TextIO | None = None) -> str:
    """Send Madre's, uvicorn's and pykka's logs to `stream` (stdout) in one format; returns
    the format chosen."""
    out = stream or sys.stdout
    chosen = resolve_format(fmt, out)
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    return chosen

"""Times, durations and ids as a person reads them: "expires in 12 min", "3 s", "0b7c41d2".

Pure functions of their arguments (the page passes `now`), used by the templates as
filters; the console's script writes relative times the same way as they age.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

UNITS = ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s"))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def span(seconds: float) -> str:
    """A length of time in its largest unit: "45 s", "12 min", "3 h", "2 d"."""
    seconds = abs(seconds)
    for size, unit in UNITS:
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return "0 s"


def relative(value: dt.datetime | None, now: dt.datetime) -> str:
    """`value` from `now`: "in 12 min", "3 min ago", "just now" (within 5 s); "-" for none."""
    if value is None:
        return "-"
    delta = (_aware(value) - _aware(now)).total_seconds()
    if abs(delta) < 5:
        return "just now"
    return f"in {span(delta)}" if delta > 0 else f"{span(delta)} ago"


def absolute(value: dt.datetime | None) -> str:
    """The moment itself, in UTC to the second (the title of a relative time)."""
    if value is None:
        return "-"
    return _aware(value).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: dt.datetime | None) -> str:
    """For a <time datetime=…> the script reads."""
    return "" if value is None else _aware(value).astimezone(dt.UTC).isoformat()


def duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """How long a step took: "340 ms", "2.1 s", "3 min 5 s"; "-" when it has not ended."""
    if start is None or end is None:
        return "-"
    seconds = max(0.0, (_aware(end) - _aware(start)).total_seconds())
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else span(seconds)


def short(value: str | None, size: int = 8) -> str:
    """The first characters of an id or a digest: enough to tell them apart on a page."""
    return (value or "")[:size]


def pretty(value: Any) -> str:
    """A result or payload as indented JSON (the template escapes it)."""
    if value is None:
        return ""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)

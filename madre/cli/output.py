"""What the `madre` client commands print for a person: aligned plain-text tables, status
words coloured only on a terminal (never when NO_COLOR is set), times in UTC.

Each `render_*` takes the server's answer (as JSON) and returns the lines to print, so the
layout can be read and tested without a server or a terminal. `width` is the terminal's:
long values (a step's result, an error) are cut to fit it; None (a pipe, a file) leaves
every value whole.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import click

STATUS_COLOURS = {
    # plans and steps
    "DONE": "green", "ERROR": "red", "WAITING": "yellow", "RUNNING": "cyan",
    "PENDING": "blue",
    # control
    "accepted": "green", "pending_confirmation": "yellow", "denied": "red",
    "confirmed": "green", "approved": "green", "rejected": "red",
    # health
    "ok": "green", "up": "green", "degraded": "yellow", "down": "red", "unknown": "bright_black",
    # risk
    "LOW": "green", "MED": "yellow", "HIGH": "red",
}

Styler = Callable[[str], str]


def colour_enabled(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set to anything (no-color.org)
    or the terminal is dumb; FORCE_COLOR (set to anything) colours a pipe too."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    if env.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def styler(enabled: bool) -> Styler:
    """A function colouring a status word (as STATUS_COLOURS says), or leaving it as is."""
    def style(text: str) -> str:
        colour = STATUS_COLOURS.get(text)
        return click.style(text, fg=colour) if enabled and colour else text

    return style


def plain(text: str) -> str:
    return text


# --------------------------------------------------------------------------- pieces


def when(value: Any) -> str:
    """An ISO time from the server as `YYYY-MM-DD HH:MM:SSZ` (UTC); '-' when absent."""
    if not value:
        return "-"
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC)
    return parsed.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if parsed.tzinfo else "")


def shorten(text: Any, width: int | None) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis (None: whole)."""
    flat = " ".join(str(text).split()) if text is not None else ""
    return flat if width is None or len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def room(width: int | None, used: Sequence[int], least: int = 20) -> int | None:
    """What is left of a `width`-wide line for the last column, after columns `used` wide
    (two spaces between columns); at least `least`. None when the width is unlimited."""
    if width is None:
        return None
    return max(least, width - sum(used) - 2 * len(used))


def summary(value: Any, width: int | None = 60) -> str:
    """A JSON value (a step's result or payload) in one short line; '-' when empty."""
    if value in (None, {}, []):
        return "-"
    return shorten(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str),
                   width)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
          styles: dict[int, Styler] | None = None) -> list[str]:
    """Rows aligned under `headers`, two spaces apart; `styles[i]` colours column i after
    the padding is computed, so colour codes never break the alignment."""
    styles = styles or {}
    cells = [[str(c) if c is not None else "-" for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    last = len(headers) - 1

    def line(values: Sequence[str], styled: bool) -> str:
        parts = []
        for i, value in enumerate(values):
            padding = "" if i == last else " " * (widths[i] - len(value))
            text = styles[i](value) if styled and i in styles else value
            parts.append(text + padding)
        return "  ".join(parts).rstrip()

    return [line(list(headers), False), *(line(row, True) for row in cells)]


def fields(pairs: Sequence[tuple[str, Any]], style: Styler = plain,
           styled: frozenset[str] = frozenset()) -> str:
    """`key value  key value …` for the values that are present."""
    parts = []
    for key, value in pairs:
        if value is None or value == "":
            continue
        text = style(str(value)) if key in styled else str(value)
        parts.append(f"{key} {text}" if key else text)
    return "  ".join(parts)


# --------------------------------------------------------------------------- commands


def confirm_hint(plan_id: str, token: str) -> str:
    return f"madre confirm {plan_id} {token}"


def _token_line(token: str, expires_at: Any) -> str:
    return f"confirm token: {token}  (shown once; expires {when(expires_at)})"


def _outcome(action: dict[str, Any], width: int | None) -> str:
    """A step's error, or else a summary of its result."""
    if action.get("error"):
        return shorten(action["error"], width)
    return summary(action.get("result"), width)


def render_chat(answer: dict[str, Any], style: Styler = plain,
                width: int | None = None) -> list[str]:
    status = answer.get("status", "?")
    lines = [
        fields([("", status), ("plan", answer.get("plan_id") or "-"),
                ("risk", answer.get("risk")), ("mode", answer.get("mode")),
                ("provider", answer.get("provider")), ("session", answer.get("session_id"))],
               style, frozenset({"", "risk"})),
        str(answer.get("response", "")),
    ]
    if answer.get("warnings"):
        lines.append("warnings: " + ", ".join(answer["warnings"]))
    actions = answer.get("actions") or []
    if actions:
        steps = [str(a.get("step")) for a in actions]
        statuses = [str(a.get("status")) for a in actions]
        result_width = room(width, [max(map(len, ["STEP", *steps])),
                                    max(map(len, ["STATUS", *statuses]))])
        lines.append("")
        lines += table(["STEP", "STATUS", "RESULT"],
                       [[s, st, _outcome(a, result_width)]
                        for s, st, a in zip(steps, statuses, actions, strict=True)],
                       {1: style})
    token, plan_id = answer.get("confirm_token"), answer.get("plan_id")
    if token and plan_id:
        lines += ["", _token_line(token, answer.get("expires_at")),
                  "to run it, confirm with:", f"  {confirm_hint(plan_id, token)}"]
    elif plan_id and status in ("RUNNING", "WAITING", "PENDING"):
        lines += ["", f"follow it: madre show {plan_id}"]
    return lines


def _what_next(answer: dict[str, Any]) -> list[str]:
    """The command to run next: confirm with the token (shown once), or follow the plan."""
    token, plan_id = answer.get("confirm_token"), answer.get("plan_id")
    if token and plan_id:
        return [_token_line(token, answer.get("expires_at")), "to confirm, run:",
                f"  {confirm_hint(plan_id, token)}"]
    return [f"follow it: madre show {plan_id}"] if plan_id else []


def render_control(answer: dict[str, Any], style: Styler = plain) -> list[str]:
    status = answer.get("status", "?")
    plan_id = answer.get("plan_id")
    lines = [fields([("", status), ("plan", plan_id), ("risk", answer.get("risk")),
                     ("plan status", answer.get("plan_status"))],
                    style, frozenset({"", "risk", "plan status"}))]
    if answer.get("reason"):
        lines.append(str(answer["reason"]))
    return lines + _what_next(answer)


def render_intent(answer: dict[str, Any], style: Styler = plain) -> list[str]:
    """A structured intent's answer: its status, plan and risk; the token when it waits."""
    plan_id = answer.get("plan_id")
    lines = [fields([("", answer.get("status", "?")), ("plan", plan_id or "-"),
                     ("risk", answer.get("risk")), ("intent", answer.get("intent_id")),
                     ("duplicate", "yes" if answer.get("duplicate") else None)],
                    style, frozenset({"", "risk"}))]
    return lines + _what_next(answer)


PLAN_HEADERS = ["PLAN", "STATUS", "RISK", "MODE", "STEPS", "SOURCE", "CREATED", "EXPIRES",
                "REASON"]


def render_plans(plans: Sequence[dict[str, Any]], style: Styler = plain,
                 width: int | None = None) -> list[str]:
    """One row per plan; EXPIRES is when a plan waiting for a confirmation stops waiting."""
    if not plans:
        return ["no plans"]
    rows = [[p.get("plan_id"), p.get("status"), p.get("risk") or "-", p.get("mode") or "-",
             p.get("steps"), p.get("source") or "-", when(p.get("created_at")),
             when(p.get("expires_at")), p.get("reason")] for p in plans]
    used = [max(len(str(h)), *(len(str(r[i] or "-")) for r in rows))
            for i, h in enumerate(PLAN_HEADERS[:-1])]
    reason_width = room(width, used)
    for row in rows:
        row[-1] = shorten(row[-1], reason_width) or "-"
    return table(PLAN_HEADERS, rows, {1: style, 2: style})


def _confirmation(state: dict[str, Any]) -> str:
    if not state.get("required"):
        return "not required"
    if state.get("confirmed_at"):
        return f"confirmed {when(state['confirmed_at'])}"
    if state.get("expired"):
        return f"expired {when(state.get('expires_at'))}"
    return f"required, waiting; expires {when(state.get('expires_at'))}"


def render_plan(plan: dict[str, Any], style: Styler = plain,
                width: int | None = None) -> list[str]:
    intent = plan.get("intent") or {}
    dsl = intent.get("dsl") or {}
    status = plan.get("status", "?")
    reason = plan.get("reason")
    waiting = f" (for {plan['wait_reason']})" if plan.get("wait_reason") else ""
    rows: list[tuple[str, str]] = [
        ("plan", str(plan.get("plan_id"))),
        ("status", style(status) + waiting + (f": {reason}" if reason else "")),
        ("session", plan.get("session_id") or "-"),
        ("created", when(plan.get("created_at"))),
        ("updated", when(plan.get("updated_at"))),
        ("intent", fields([("", intent.get("intent_id")), ("source", intent.get("source")),
                           ("provider", intent.get("provider")), ("mode", intent.get("mode")),
                           ("risk", intent.get("risk"))], style, frozenset({"risk"}))),
    ]
    if dsl:
        rows.append(("asks", fields([("domain", dsl.get("domain")), ("action", dsl.get("action")),
                                     ("target", dsl.get("target")),
                                     ("confidence", dsl.get("confidence"))])))
        if dsl.get("parameters"):
            rows.append(("params", summary(dsl["parameters"], 100)))
        if dsl.get("original_text"):
            rows.append(("text", shorten(dsl["original_text"], 100)))
    if intent.get("targets"):
        rows.append(("targets", ", ".join(intent["targets"])))
    if intent.get("warnings"):
        rows.append(("warnings", ", ".join(intent["warnings"])))
    rows.append(("confirmation", _confirmation(plan.get("confirmation") or {})))
    if plan.get("console_url"):
        rows.append(("console", str(plan["console_url"])))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]

    steps = plan.get("steps") or []
    lines += ["", f"steps ({len(steps)})"]
    if steps:
        headers = ["#", "TYPE", "STATUS", "ATTEMPTS", "ERROR", "RESULT"]
        rows: list[list[Any]] = [[s.get("index", i), s.get("type"), s.get("status"),
                                  s.get("attempts", 0), s.get("error"), s.get("result")]
                                 for i, s in enumerate(steps)]
        fixed = [max(len(h), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers[:4])]
        # The error and the result share what the terminal has left, the result the most.
        rest = room(width, fixed, least=40)
        error_width = None if rest is None else max(12, rest // 3)
        result_width = None if rest is None else max(20, rest - error_width - 2)
        for row in rows:
            row[4] = shorten(row[4], error_width) or "-"
            row[5] = summary(row[5], result_width)
        lines += table(headers, rows, {2: style})
    history = plan.get("history") or []
    lines += ["", f"history ({len(history)})"]
    if history:
        lines += table(["TIME", "ACTION", "ACTOR", "REASON"],
                       [[when(h.get("created_at")), h.get("action"), h.get("actor") or "-",
                         shorten(h.get("reason"), 70) or "-"] for h in history])
    return lines


def render_confirm(answer: dict[str, Any], style: Styler = plain) -> list[str]:
    plan_id = answer.get("plan_id")
    plan_status = str(answer.get("plan_status", "?"))
    lines = [fields([("", answer.get("status", "confirmed")), ("plan", plan_id),
                     ("plan status", plan_status)], style, frozenset({"", "plan status"}))]
    if plan_status not in ("DONE", "ERROR"):
        lines.append(f"the plan goes on; follow it: madre show {plan_id}")
    return lines


def render_health(health: dict[str, Any], style: Styler = plain) -> list[str]:
    lines = [fields([("", health.get("module", "madre")), ("version", health.get("version")),
                     ("status", health.get("status")), ("db", health.get("db")),
                     ("time", when(health.get("time")))],
                    style, frozenset({"status", "db"}))]
    checks = health.get("checks") or {}
    deps = health.get("deps") or {}
    names = list(deps) + [n for n in checks if n not in deps]
    if names:
        lines.append("")
        rows = []
        for name in names:
            check = checks.get(name) or {}
            rows.append([name, deps.get(name) or check.get("state") or "-",
                         when(check.get("checked_at")), shorten(check.get("error"), 60) or "-"])
        lines += table(["DEPENDENCY", "STATE", "CHECKED", "ERROR"], rows, {1: style})
    return lines


def render_instances(answer: dict[str, Any], style: Styler = plain) -> list[str]:
    """The instances alive on the database; the one that answered is marked `*`."""
    me = answer.get("instance_id")
    rows = [["*" if i.get("instance_id") == me else "", i.get("instance_id"), i.get("host"),
             i.get("pid"), when(i.get("started_at")), when(i.get("heartbeat_at"))]
            for i in answer.get("instances") or []]
    return table(["", "INSTANCE", "HOST", "PID", "STARTED", "LAST BEAT"], rows)


def render_cancel(answer: dict[str, Any], style: Styler = plain) -> list[str]:
    plan_id = answer.get("plan_id")
    lines = [fields([("", answer.get("status", "cancelled")), ("plan", plan_id),
                     ("plan status", answer.get("plan_status"))],
                    style, frozenset({"plan status"}))]
    if answer.get("reason"):
        lines.append(f"reason: {answer['reason']}")
    return lines


def _approvals(count: dict[str, Any] | None) -> str:
    count = count or {}
    return f"{count.get('have', 0)} of {count.get('need', 1)}"


def render_pending(plans: Sequence[dict[str, Any]], style: Styler = plain) -> list[str]:
    """What waits for a human, the soonest to expire first."""
    if not plans:
        return ["nothing waits for a human"]
    rows = [[p.get("plan_id"), p.get("risk"), _approvals(p.get("approvals")),
             p.get("submitted_by") or "-", when(p.get("expires_at")),
             shorten(p.get("summary"), 60)] for p in plans]
    return table(["PLAN", "RISK", "APPROVALS", "ASKED BY", "EXPIRES", "WILL RUN"], rows,
                 {1: style})


def render_preview(plan: dict[str, Any], style: Styler = plain) -> list[str]:
    """What approving a plan lets run, and the digest the approval names."""
    approved_by = ", ".join(plan.get("approved_by") or []) or "nobody yet"
    lines = [
        fields([("plan", plan.get("plan_id")), ("risk", plan.get("risk")),
                ("asked by", plan.get("submitted_by")),
                ("expires", when(plan.get("expires_at")))], style, frozenset({"risk"})),
        f"approvals: {_approvals(plan.get('approvals'))} (approved by {approved_by})",
        "", "will run:",
    ]
    lines += table(["#", "TYPE", "MODULE", "ROUTE", "PAYLOAD"],
                   [[i, s.get("type"), s.get("module"), s.get("route") or "-",
                     summary(s.get("payload"), 70)]
                    for i, s in enumerate(plan.get("steps") or [])])
    lines += ["", f"digest: {plan.get('plan_digest')}"]
    return lines


def render_approve(answer: dict[str, Any], style: Styler = plain) -> list[str]:
    plan_id = answer.get("plan_id")
    status = str(answer.get("plan_status", "?"))
    lines = [fields([("", answer.get("status", "approved")), ("plan", plan_id),
                     ("plan status", status),
                     ("approvals", _approvals(answer.get("approvals")))],
                    style, frozenset({"", "plan status"}))]
    if status == "WAITING":
        lines.append("the plan waits for more approvals")
    elif status not in ("DONE", "ERROR"):
        lines.append(f"the plan goes on; follow it: madre show {plan_id}")
    return lines


def render_reject(answer: dict[str, Any], style: Styler = plain) -> list[str]:
    return [fields([("", answer.get("status", "rejected")), ("plan", answer.get("plan_id")),
                    ("plan status", answer.get("plan_status"))],
                   style, frozenset({"", "plan status"})),
            f"reason: {answer.get('reason')}"]


EVENT_WIDTHS = (20, 36, 28, 7)  # time, plan id, action, status; the reason takes the rest


def render_event(event: dict[str, Any], style: Styler = plain) -> str:
    """One event of `madre tail` on one line: time, plan id, action, status, reason."""
    cells = [when(event.get("created_at")), event.get("plan_id") or "-",
             event.get("action") or "-", event.get("plan_status") or "-"]
    parts = []
    for i, (cell, width) in enumerate(zip(cells, EVENT_WIDTHS, strict=True)):
        text = style(cell) if i == 3 else cell
        parts.append(text + " " * max(width - len(cell), 0))
    parts.append(shorten(event.get("reason"), 100) or "-")
    return "  ".join(parts).rstrip()


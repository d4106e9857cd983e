"""The console's pages: the inbox, plans, one plan, health, and the live event stream.

Each parses what the URL says, asks the running Madre once (in the thread pool: reads go to
the database), and renders a template. Which buttons a page shows follows the principal's
roles; the form handlers (`actions`) check them again, since a page is only a hint.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from madre.contracts.plans import PlanDetail
from madre.http.console.session import Session
from madre.http.console.web import PREFIX, console_of, render
from madre.http.query import (
    encode_cursor,
    path_plan_id,
    query_cursor,
    query_id,
    query_limit,
    query_status,
)
from madre.http.stream import events
from madre.model import FINAL_STATUSES, Status, WaitReason
from madre.modules import module_of

PAGE_SIZES = (25, 50, 100, 200)


async def root(request: Request) -> Response:
    """`/`: people who open Madre's address in a browser land on the console."""
    return RedirectResponse(PREFIX, status_code=303)


async def _since(request: Request) -> int:
    """The last event before the page reads what it shows: its script follows the stream
    from there, so nothing that happens while the page loads goes unseen."""
    return int(await run_in_threadpool(console_of(request).madre.queries.last_event_id))


async def inbox(request: Request, session: Session) -> Response:
    madre = console_of(request).madre
    since = await _since(request)
    plans = await run_in_threadpool(madre.pending)
    me = session.principal.name
    return await render(request, "inbox.html", session, active="inbox", plans=plans,
                        since=since, count=len(plans),
                        own={p.plan_id for p in plans if p.submitted_by == me
                             and madre.rules.four_eyes_apply(p.risk)},
                        approved={p.plan_id for p in plans if me in p.approved_by})


async def plans(request: Request, session: Session) -> Response:
    query = request.query_params
    status = query_status(query.get("status"))
    session_id = query_id(query.get("session_id"), "session_id")
    limit = query_limit(query.get("limit"), default=PAGE_SIZES[0])
    cursor = query.get("cursor") or None
    since = await _since(request)
    listing = functools.partial(console_of(request).madre.list_plans, status=status,
                                session_id=session_id, limit=limit,
                                before=query_cursor(cursor))
    found = await run_in_threadpool(listing)
    filters = {k: v for k, v in (("status", status.value if status else ""),
                                 ("session_id", session_id or ""),
                                 ("limit", str(limit))) if v}
    return await render(
        request, "plans.html", session, active="plans", plans=found.plans, filters=filters,
        since=since,
        statuses=[s.value for s in Status], page_sizes=PAGE_SIZES, paged=cursor is not None,
        next_cursor=encode_cursor(found.next_before) if found.next_before else None)


def waits_for_human(plan: PlanDetail) -> bool:
    return (plan.status is Status.WAITING and plan.wait_reason is WaitReason.CONFIRMATION
            and plan.plan_digest is not None)


async def plan(request: Request, session: Session) -> Response:
    plan_id = path_plan_id(str(request.path_params["plan_id"]))
    madre = console_of(request).madre
    since = await _since(request)
    detail = await run_in_threadpool(madre.get_plan, plan_id)
    me = session.principal.name
    return await render(
        request, "plan.html", session, active="plans", plan=detail, since=since,
        waiting=waits_for_human(detail), final=detail.status in FINAL_STATUSES,
        modules=[module_of(s.type) for s in detail.steps],
        own=detail.submitted_by == me and madre.rules.four_eyes_apply(detail.intent.risk),
        approved=any(a.by == me for a in detail.approvals))


async def health(request: Request, session: Session) -> Response:
    madre = console_of(request).madre
    return await render(request, "health.html", session, active="health",
                        health=madre.health(), breaker=madre.switch_breaker.state.value)


async def live(request: Request, session: Session) -> Response:
    """`/madre/events` for the console's script, which signs in by cookie, not by header:
    the same stream (filters, Last-Event-ID), each event sent as `change` so one listener
    hears every kind."""
    stream = await events(request)
    inner = stream.body_iterator

    async def renamed() -> AsyncIterator[object]:
        try:
            async for item in inner:
                if isinstance(item, ServerSentEvent) and item.event != "dropped":
                    item = ServerSentEvent(data=item.data, id=item.id, event="change")
                yield item
        finally:
            close = getattr(inner, "aclose", None)
            if close is not None:
                await close()  # the stream's own clean-up (it unsubscribes)

    stream.body_iterator = renamed()
    return stream

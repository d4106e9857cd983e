"""`GET /madre/events`: plan events as Server-Sent Events.

Filters: `plan_id`, `session_id`, `status` (the plan's status after the event). Each event's
`id` is its audit row id; a client that reconnects with `Last-Event-ID` (or `?since=ID`)
gets everything after it, read from the database, so nothing is missed across reconnects
or restarts. Without either, the stream starts with what happens next.

Live events come from the process's one reader (`madre.event_hub.EventHub`), filtered in
memory: a stream costs no query per commit. Slow clients do not slow Madre down: a client
more than MADRE_EVENTS_MAX_LAG events behind is sent a `dropped` event saying how to resume
and is disconnected, and one that stops reading is cut off after a send timeout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.background import BackgroundTask
from starlette.requests import Request

from madre.event_hub import Published, Subscription
from madre.http.errors import RequestRejected
from madre.http.query import query_id, query_status
from madre.runtime import Madre

BATCH = 200
KEEPALIVE_SECONDS = 15.0


def _event_id(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise RequestRejected(400, "bad_request",
                              "Last-Event-ID (or since) must be an event id this stream sent")
    return int(raw)


def _start_id(request: Request) -> int | None:
    """Where the stream resumes: `Last-Event-ID`, else `since` (both checked when both are
    given: a wrong value is refused wherever it is)."""
    header = _event_id(request.headers.get("last-event-id"))
    since = _event_id(request.query_params.get("since"))
    return header if header is not None else since


def _dropped(last: int, max_lag: int) -> ServerSentEvent:
    return ServerSentEvent(event="dropped", id=str(last), data=json.dumps(
        {"reason": f"more than {max_lag} events behind", "resume_with_last_event_id": last}))


def _sse(event: Published) -> ServerSentEvent:
    return ServerSentEvent(data=event.data, event=event.action, id=str(event.id))


async def events(request: Request) -> EventSourceResponse:
    madre: Madre = request.app.state.madre
    query = request.query_params
    plan_id = query_id(query.get("plan_id"), "plan_id")
    session_id = query_id(query.get("session_id"), "session_id")
    status = query_status(query.get("status"))
    since = _start_id(request)
    hub = madre.events
    max_lag = madre.settings.events_max_lag
    subscription = Subscription(asyncio.get_running_loop(), plan_id=plan_id,
                                session_id=session_id, status=status.value if status else None,
                                max_pending=max_lag)
    live_after = await run_in_threadpool(hub.subscribe, subscription)
    # Without Last-Event-ID, what happens next: after the newest event committed by now.
    start = since if since is not None else max(
        live_after, await run_in_threadpool(hub.newest))

    async def stream() -> AsyncIterator[ServerSentEvent]:
        last = start
        try:
            # The past, from the database: the events after `start` the hub will not hand over.
            while last < live_after and madre.running:
                rows = await run_in_threadpool(
                    madre.queries.events_after, last, plan_id=plan_id, session_id=session_id,
                    status=status, limit=BATCH, upto=live_after)
                for event in rows:
                    last = event.id
                    yield _sse(Published.of(event))
                if len(rows) < BATCH:
                    last = max(last, live_after)
                elif hub.head - last > max_lag:
                    yield _dropped(last, max_lag)
                    return
            # Then live: what the hub hands this stream.
            while madre.running:
                subscription.wake.clear()
                for event in subscription.take():
                    if event.id > last:
                        last = event.id
                        yield _sse(event)
                if subscription.overflowed:
                    yield _dropped(last, max_lag)
                    return
                try:
                    await asyncio.wait_for(subscription.wake.wait(), timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    pass
        finally:
            hub.unsubscribe(subscription)

    # Also after a response that never started its stream (the client left at once).
    return EventSourceResponse(stream(), ping=KEEPALIVE_SECONDS, send_timeout=10,
                               background=BackgroundTask(hub.unsubscribe, subscription))

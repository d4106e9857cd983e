"""`GET /madre/events`: plan events as Server-Sent Events.

Filters: `plan_id`, `session_id`, `status` (the plan's status after the event). Each event's
`id` is its audit row id; a client that reconnects with `Last-Event-ID` (or `?since=ID`)
gets everything after it, read from the database, so nothing is missed across reconnects
or restarts. Without either, the stream starts with what happens next.

Slow clients do not slow Madre down: nothing is buffered per client (each stream reads the
database at its own pace), a client more than MADRE_EVENTS_MAX_LAG events behind is sent a
`dropped` event saying how to resume and is disconnected, and one that stops reading is
cut off after a send timeout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from madre.http.errors import RequestRejected
from madre.http.query import query_id, query_status
from madre.runtime import Madre

BATCH = 200
KEEPALIVE_SECONDS = 15.0


def _start_id(request: Request, madre: Madre) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("since")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise RequestRejected(400, "bad_request",
                              "Last-Event-ID (or since) must be an event id this stream sent")
    return int(raw)


async def events(request: Request) -> EventSourceResponse:
    madre: Madre = request.app.state.madre
    query = request.query_params
    plan_id = query_id(query.get("plan_id"), "plan_id")
    session_id = query_id(query.get("session_id"), "session_id")
    status = query_status(request.query_params.get("status"))
    start = _start_id(request, madre)
    if start is None:
        start = await run_in_threadpool(madre.queries.last_event_id)
    max_lag = madre.settings.events_max_lag

    async def stream() -> AsyncIterator[ServerSentEvent]:
        waiter = madre.events.subscribe()
        last = start
        try:
            while madre.running:
                waiter[1].clear()  # before reading: a commit after the read wakes the wait
                rows = await run_in_threadpool(
                    madre.queries.events_after, last, plan_id=plan_id, session_id=session_id,
                    status=status, limit=BATCH)
                for event in rows:
                    last = event.id
                    yield ServerSentEvent(data=event.model_dump_json(), event=event.action,
                                          id=str(event.id))
                if len(rows) == BATCH:
                    head = await run_in_threadpool(madre.queries.last_event_id)
                    if head - last > max_lag:
                        yield ServerSentEvent(
                            event="dropped", id=str(last),
                            data=json.dumps({"reason": f"more than {max_lag} events behind",
                                             "resume_with_last_event_id": last}))
                        return
                    continue
                try:
                    await asyncio.wait_for(waiter[1].wait(), timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    pass
        finally:
            madre.events.unsubscribe(waiter)

    return EventSourceResponse(stream(), ping=KEEPALIVE_SECONDS, send_timeout=10)

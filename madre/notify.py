"""Notifications out: a plan that starts waiting for a human is announced at
MADRE_NOTIFY_URL by a Standard Webhooks message, signed with MADRE_NOTIFY_SECRET.

Fed from what the Store actor committed (the `confirmation_required` audit row carries
what the message says), so nothing is announced that the database does not hold, and the
Store actor's thread only queues. Deliveries run on two threads of their own: a receiver
that is slow or down never holds up a plan or a request. A failed delivery (no answer,
or not a 2xx) is tried again after a backoff that doubles (MADRE_NOTIFY_BACKOFF_SECONDS,
up to MADRE_NOTIFY_ATTEMPTS tries), with the same `webhook-id`, so the receiver can tell a
retry from a new message. Every try is audited (`notification_delivered`,
`notification_failed`, `notification_gave_up`). Retries are volatile: a restart forgets
them (the plan still waits, and GET /madre/pending still lists it).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import requests

from madre.links import console_url
from madre.records import AuditRow
from madre.scheduler import Scheduler
from madre.settings import Settings
from madre.webhooks import signed_headers

log = logging.getLogger("madre.notify")

EVENT = "plan.waiting_for_approval"
MAX_BACKOFF = 300.0


@dataclasses.dataclass(frozen=True)
class Message:
    """One announcement: its id (the same on every try) and its JSON body."""

    message_id: str
    plan_id: str
    body: str


def message_for(record: dict[str, Any], *, public_url: str | None,
                now: dt.datetime) -> Message:
    """The announcement of the plan a committed `confirmation_required` record is about."""
    detail = record.get("detail") or {}
    plan_id = str(record.get("plan_id"))
    data = {
        "plan_id": plan_id,
        "summary": detail.get("summary"),
        "risk": detail.get("risk"),
        "plan_digest": detail.get("plan_digest"),
        "expires_at": detail.get("expires_at"),
        "submitted_by": detail.get("submitted_by"),
        "approvals_needed": detail.get("approvals_needed"),
    }
    link = console_url(public_url, plan_id)
    if link:
        data["console_url"] = link
    body = json.dumps({"type": EVENT, "timestamp": now.isoformat(), "data": data},
                      separators=(",", ":"))
    return Message(f"plan-waiting-{plan_id}", plan_id, body)


class Notifier:
    """Delivers announcements to one URL, retrying with backoff, auditing each try."""

    def __init__(self, *, url: str, secret: str, scheduler: Scheduler,
                 audit: Callable[[Sequence[AuditRow]], None], clock: Callable[[], dt.datetime],
                 attempts: int, backoff: float, timeout: float,
                 public_url: str | None = None) -> None:
        self._url = url
        self._secret = secret
        self._scheduler = scheduler
        self._audit = audit
        self._now = clock
        self._attempts = attempts
        self._backoff = backoff
        self._timeout = timeout
        self._public_url = public_url
        self._session = requests.Session()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="madre-notify")
        self._idle = threading.Condition()
        self._pending = 0  # announcements not yet delivered or given up
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, *, scheduler: Scheduler,
                      audit: Callable[[Sequence[AuditRow]], None],
                      clock: Callable[[], dt.datetime]) -> Notifier | None:
        """The notifier MADRE_NOTIFY_URL asks for, or None without one."""
        if not settings.notify_url or settings.notify_secret is None:
            return None
        return cls(url=settings.notify_url, secret=settings.notify_secret.get_secret_value(),
                   scheduler=scheduler, audit=audit, clock=clock,
                   attempts=settings.notify_attempts, backoff=settings.notify_backoff_seconds,
                   timeout=settings.notify_timeout_seconds, public_url=settings.public_url)

    def offer(self, records: Sequence[dict[str, Any]]) -> None:
        """Queue an announcement for each plan these committed records set waiting for a
        human. Called on the Store actor's thread after a commit: it only queues."""
        for record in records:
            if str(record.get("event", "")).startswith("confirmation_required:"):
                with self._idle:
                    self._pending += 1
                self._submit(message_for(record, public_url=self._public_url,
                                         now=self._now()), 1)

    def wait_idle(self, timeout: float) -> bool:
        """Whether every announcement was delivered or given up within `timeout` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        """Stop delivering: a try in flight finishes, waiting retries are dropped."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._session.close()

    def _submit(self, message: Message, attempt: int) -> None:
        if self._closed:
            return
        try:
            self._pool.submit(self._deliver, message, attempt)
        except RuntimeError:  # the pool shut down meanwhile: Madre is stopping
            return

    def _deliver(self, message: Message, attempt: int) -> None:
        try:
            failure = self._post(message)
            if failure is None:
                self._record(message, "notification_delivered", attempt, "delivered")
                self._done()
            elif attempt < self._attempts and not self._closed:
                delay = min(self._backoff * 2 ** (attempt - 1), MAX_BACKOFF)
                self._record(message, "notification_failed", attempt,
                             f"{failure}; again in {delay:g} s")
                self._scheduler.call_later(delay, lambda: self._submit(message, attempt + 1))
            else:
                self._record(message, "notification_failed", attempt, failure)
                self._record(message, "notification_gave_up", attempt,
                             f"not delivered after {attempt} tries")
                self._done()
        except Exception:  # a delivery thread must never die silently
            log.exception("notification failed", extra={"plan_id": message.plan_id})
            self._done()

    def _post(self, message: Message) -> str | None:
        """Send one try; None when the receiver took it (2xx), else why not."""
        headers = signed_headers(self._secret, message.message_id, message.body,
                                 now=self._now())
        try:
            resp = self._session.post(self._url, data=message.body.encode("utf-8"),
                                      headers=headers, timeout=self._timeout)
        except requests.RequestException as exc:
            return f"no answer from the receiver ({type(exc).__name__})"
        with resp:
            return None if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"

    def _record(self, message: Message, action: str, attempt: int, reason: str) -> None:
        self._audit([AuditRow(action=action, reason=reason[:255], module="madre",
                              plan_id=message.plan_id, actor="notifier",
                              detail={"attempt": attempt, "webhook_id": message.message_id})])

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

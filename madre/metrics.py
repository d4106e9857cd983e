"""Prometheus metrics, counted from what Madre commits.

Counters are fed from the committed audit records (the same stream the forensic trail and
the event stream read), so a metric never counts something the database does not hold, and
no hot path carries instrumentation of its own. Gauges are read when scraped.

HTTP requests are the exception: `http_request` is called once per request by the HTTP
layer (`madre.http.observe`), labelled by route template, never by raw path.

Every label takes values from a known, small set: a client cannot mint series. The
`source` of an intent is kept when it is one of SOURCES, else counted as `other`.
`_created` series (one per labelled child) are left out of the exposition: they double
the series count and say nothing a scraper uses.

Each Madre has its own registry: two runtimes in one process (tests) never share counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from madre.modules import MODULE_NAMES

SOURCES = frozenset({
    "operator", "control", "api", "cli", "webhook", "tentaculo_link", "madre", *MODULE_NAMES,
})
"""The intake sources counted under their own name (chat is `operator`, control `control`,
structured intents carry theirs); any other is `other`."""
OTHER = "other"

FINAL_EVENTS = {
    "plan_done": "DONE",
    "plan_error": "ERROR",
    "plan_cancelled": "ERROR",
    "confirmation_expired": "ERROR",
    "supervisor_gave_up": "ERROR",
    "job_failed": "ERROR",
}
CONFIRMATION_EVENTS = {
    "plan_confirmed": "used",
    "confirmation_expired": "expired",
    "confirmation_rejected": "rejected",
}
APPROVAL_EVENTS = {
    "plan_approved": "approved",
    "plan_rejected": "rejected",
    "confirmation_expired": "expired",
}
REFUSALS = frozenset({"plan_changed", "self_approval", "already_approved", "not_waiting",
                      "not_allowed", "invalid_token"})
WEBHOOK_EVENTS = {
    "webhook_received": ("in", "accepted"),
    "webhook_duplicate": ("in", "duplicate"),
    "notification_delivered": ("out", "delivered"),
    "notification_failed": ("out", "failed"),
    "notification_gave_up": ("out", "gave_up"),
}
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
HTTP_BUCKETS = STEP_BUCKETS  # chat waits for its plan: seconds are ordinary
BREAKER_STATES = ("closed", "open", "half_open")


def source_label(source: object) -> str:
    """An intake source as a label value: itself when known, else `other`."""
    return source if isinstance(source, str) and source in SOURCES else OTHER


class _Live(Collector):
    """Gauges read at scrape time from the running Madre."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = self._read()
        yield GaugeMetricFamily("madre_plan_actors_active", "Plan actors alive now",
                                value=now["active"])
        yield GaugeMetricFamily("madre_plan_activations_queued",
                                "Plans waiting for a free Plan actor place", value=now["queued"])
        yield GaugeMetricFamily("madre_plans_waiting", "Plans WAITING (confirmation or job)",
                                value=now["waiting"])
        yield GaugeMetricFamily(
            "madre_trail_behind_rows",
            "Committed rows the forensic trail does not hold yet (-1: not known)",
            value=now.get("trail_behind", -1))
        yield GaugeMetricFamily("madre_trail_write_failures",
                                "Times the forensic trail could not be written since start",
                                value=now.get("trail_failures", 0))
        # A state set: one series per state, 1 for the state the breaker is in.
        breaker = GaugeMetricFamily("madre_circuit_breaker_state",
                                    "Circuit breaker state (1 for the current one)",
                                    labels=["service", "state"])
        for service, state in now["breakers"].items():
            for candidate in BREAKER_STATES:
                breaker.add_metric([service, candidate], 1.0 if candidate == state else 0.0)
        yield breaker


class _WithoutCreated(Collector):
    """What `registry` collects, less the `_created` samples of counters and histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Any]:
        for family in self._registry.collect():  # fresh objects on every collect
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class Metrics:
    def __init__(self, read_live: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.intents = Counter("madre_intents", "Intents decided, by source and risk",
                               ["source", "risk"], registry=r)
        self.denied = Counter("madre_intents_denied", "Intents denied, by source", ["source"],
                              registry=r)
        self.plans = Counter("madre_plans_finished", "Plans that ended, by final status",
                             ["status"], registry=r)
        self.steps = Histogram("madre_step_duration_seconds", "Step call latency by module",
                               ["module", "outcome"], buckets=STEP_BUCKETS, registry=r)
        self.step_failures = Counter("madre_step_failures", "Failed steps, by module",
                                     ["module"], registry=r)
        self.confirmations = Counter("madre_confirmations",
                                     "Confirmations issued, used, expired, rejected",
                                     ["outcome"], registry=r)
        self.restarts = Counter("madre_supervisor_restarts", "Plan actors restarted",
                                registry=r)
        self.gave_up = Counter("madre_supervisor_gave_up", "Plans given up after crashes",
                               registry=r)
        self.jobs = Counter("madre_spawner_jobs", "Spawner jobs requested and reported",
                            ["outcome"], registry=r)
        self.approvals = Counter("madre_approvals", "Approvals and rejections, by outcome",
                                 ["outcome"], registry=r)
        self.webhooks = Counter("madre_webhook_deliveries",
                                "Webhooks in (signed intake) and out (notifications), by outcome",
                                ["direction", "outcome"], registry=r)
        self.fallback_parses = Counter(
            "madre_fallback_parses", "Intents parsed by the local fallback parser (Switch "
            "down, slow, open breaker or no DSL)", registry=r)
        self.http_requests = Counter("madre_http_requests", "HTTP requests answered",
                                     ["method", "route", "status"], registry=r)
        self.http_seconds = Histogram("madre_http_request_duration_seconds",
                                      "HTTP request latency, by route template",
                                      ["method", "route"], buckets=HTTP_BUCKETS, registry=r)
        r.register(_Live(read_live))
        ProcessCollector(registry=r)
        self._exposed = _WithoutCreated(r)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request (labels: a known method, a route template)."""
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(method, route).observe(seconds)

    def observe(self, records: list[dict[str, Any]]) -> None:
        """Count what was just committed (called by the Store actor after each commit)."""
        for record in records:
            event = str(record.get("event", ""))
            name, _, suffix = event.partition(":")
            source = source_label((record.get("detail") or {}).get("source")
                                  or record.get("actor"))
            if name in ("decision", "denied") and (
                    (record.get("detail") or {}).get("provider") == "fallback_local"):
                self.fallback_parses.inc()
            if name == "decision":
                self.intents.labels(source, suffix).inc()
            elif event == "denied":
                self.denied.labels(source).inc()
                self.intents.labels(source, "HIGH").inc()
            elif name == "confirmation_required":
                self.confirmations.labels("issued").inc()
            elif name in ("step_done", "step_failed"):
                seconds = (record.get("detail") or {}).get("duration_ms", 0) / 1000
                outcome = "ok" if name == "step_done" else "error"
                self.steps.labels(record.get("module", "madre"), outcome).observe(seconds)
                if outcome == "error":
                    self.step_failures.labels(record.get("module", "madre")).inc()
            elif event == "daughter_task_requested":
                self.jobs.labels("requested").inc()
            elif event in ("job_completed", "job_failed"):
                self.jobs.labels("ok" if event == "job_completed" else "failed").inc()
            elif event == "plan_actor_restarted":
                self.restarts.inc()
            if event in FINAL_EVENTS:
                self.plans.labels(FINAL_EVENTS[event]).inc()
            if event in CONFIRMATION_EVENTS:
                self.confirmations.labels(CONFIRMATION_EVENTS[event]).inc()
            if event == "supervisor_gave_up":
                self.gave_up.inc()
            self._approvals_and_webhooks(event, record)

    def _approvals_and_webhooks(self, event: str, record: dict[str, Any]) -> None:
        if event in APPROVAL_EVENTS:
            self.approvals.labels(APPROVAL_EVENTS[event]).inc()
        elif event in ("approval_refused", "confirmation_rejected") and (
                record.get("reason") in REFUSALS):
            self.approvals.labels(record["reason"]).inc()
        elif event in WEBHOOK_EVENTS:
            self.webhooks.labels(*WEBHOOK_EVENTS[event]).inc()

    def webhook_refused(self, outcome: str) -> None:
        """A webhook refused before anything was written (an unknown source, a bad
        signature): counted here, since an unauthenticated request writes no record."""
        self.webhooks.labels("in", outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self._exposed)  # type: ignore[arg-type]

"""GET /metrics keeps a bounded set of series, whatever clients send, and passes promtool.

- an intent's `source` is a label only when it is a known source, else `other`;
- no `_created` series;
- HTTP requests are counted, and timed, by route template (never the raw path), method and
  status; a path no route serves is `unmatched`, an unknown method `other`;
- intents parsed by the local fallback parser are counted;
- `promtool check metrics` (Debian's `prometheus` package) finds nothing to say, when the
  tool is installed.
Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from helpers import TOKEN, chat, intent
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient
from test_metrics import scrape, total, value

from madre import Madre, create_app
from madre.http.operations import OPERATIONS
from madre.metrics import SOURCES


def label_values(client: TestClient, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (n, labels) in scrape(client) if n == name}


def test_sources_no_one_knows_are_counted_as_other_so_clients_cannot_mint_series(
        client) -> None:
    for _ in range(4):
        intent(client, source=f"random-{uuid.uuid4()}", target="hermes", action="status")
    intent(client, source="hormiguero", target="hermes", action="status")

    samples = scrape(client)
    assert label_values(client, "madre_intents_total", "source") == {"other", "hormiguero"}
    assert value(samples, "madre_intents_total", source="other", risk="LOW") == 4
    assert {"operator", "control", "cli", "hormiguero"} <= SOURCES


def test_a_denied_intent_from_an_unknown_source_is_counted_as_other(client) -> None:
    intent(client, source="x" * 60, target="madre", action="stop")

    assert label_values(client, "madre_intents_denied_total", "source") == {"other"}


def test_there_are_no_created_series(client) -> None:
    chat(client, "mix these 3 stems")
    text = client.get("/metrics").text

    assert "_created" not in text
    assert "madre_intents_total" in text


def test_requests_are_counted_and_timed_by_route_template_method_and_status(client) -> None:
    for _ in range(3):
        client.get(f"/madre/plans/{uuid.uuid4()}")  # three ids, one series
    client.get("/madre/plans")
    client.get(f"/madre/{uuid.uuid4()}/nothing")  # no such route

    samples = scrape(client)
    template = "/madre/plans/{plan_id}"
    assert value(samples, "madre_http_requests_total", method="GET", route=template,
                 status="404") == 3
    assert value(samples, "madre_http_requests_total", method="GET", route="/madre/plans",
                 status="200") == 1
    assert value(samples, "madre_http_requests_total", method="GET", route="unmatched",
                 status="404") == 1
    assert value(samples, "madre_http_request_duration_seconds_count", method="GET",
                 route=template) == 3
    templates = {op.path for op in OPERATIONS} | {"unmatched"}
    assert label_values(client, "madre_http_requests_total", "route") <= templates


def test_a_request_refused_for_its_token_is_counted_under_its_route(madre: Madre) -> None:
    with TestClient(create_app(madre)) as anonymous:
        anonymous.get(f"/madre/plans/{uuid.uuid4()}")
        anonymous.request("BREW", "/madre/plans")
    with TestClient(create_app(madre), headers={"X-VX11-Token": TOKEN}) as http:
        samples = scrape(http)
    assert value(samples, "madre_http_requests_total", method="GET",
                 route="/madre/plans/{plan_id}", status="401") == 1
    assert value(samples, "madre_http_requests_total", method="other", route="/madre/plans",
                 status="401") == 1


def test_intents_parsed_by_the_fallback_parser_are_counted(client, standins) -> None:
    chat(client, "hello there")  # Switch parses it
    assert value(scrape(client), "madre_fallback_parses_total") == 0

    standins.behaviours["switch"].set("fail")
    answer = chat(client, "hello there")
    assert "fallback_parser_used" in answer["warnings"]
    chat(client, "delete everything on madre")  # denied, after a fallback parse too

    samples = scrape(client)
    assert value(samples, "madre_fallback_parses_total") == 2
    assert total(samples, "madre_intents_total") == 3


def test_the_exposition_passes_promtool_check_metrics(client) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    chat(client, "mix these 3 stems")
    intent(client, source="hormiguero", target="hermes", action="status")
    text = client.get("/metrics").text
    assert list(text_string_to_metric_families(text))

    checked = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                             capture_output=True, timeout=60, check=False)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""

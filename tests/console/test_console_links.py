"""Links to a plan's console page from outside it: the plan detail (`console_url`) and
`madre show` carry it when Madre knows its public address (MADRE_PUBLIC_URL); so does the
notification (tests/test_notify.py). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from click.testing import CliRunner
from console_client import ask
from helpers import as_principal, ok_json, token_of
from starlette.testclient import TestClient

from madre import create_app
from madre.cli import main
from madre.standins import LoopbackServer


def test_the_plan_detail_and_madre_show_link_to_the_plans_console_page(console_madre) -> None:
    madre = console_madre(public_url="https://madre.example/")
    app = create_app(madre)
    with TestClient(app) as api:
        plan_id = ask(api, "alice")["plan_id"]
        body = ok_json(api.get(f"/madre/plans/{plan_id}", headers=as_principal("vic")))
    link = f"https://madre.example/console/plans/{plan_id}"
    assert body["console_url"] == link
    with LoopbackServer(app, name="madre") as server:
        result = CliRunner().invoke(main, ["--url", server.url, "--token", token_of("vic"),
                                           "show", plan_id])
    assert result.exit_code == 0, result.output
    assert re.search(rf"^console\s+{re.escape(link)}$", result.output, re.MULTILINE)


def test_without_a_public_address_there_is_no_link(served) -> None:
    madre, _, api = served
    plan_id = ask(api, "alice")["plan_id"]
    assert madre.get_plan(plan_id).console_url is None

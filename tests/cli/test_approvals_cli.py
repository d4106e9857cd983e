"""`madre pending`, `madre approve`, `madre reject` and `madre principals add`, run as a
person runs them (`python -m madre ...` in a subprocess) against a real uvicorn serving a
Madre with a principals file: two approvers approve a HIGH plan, one says no first."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from helpers import PEOPLE, as_principal, final, token_of, write_principals

from madre import Madre, create_app
from madre.model import Status
from madre.principals import Role, load_principals_file
from madre.standins import LoopbackServer

TIMEOUT = 60


def run_madre(*args: str, env: dict[str, str] | None = None, stdin: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MADRE_URL", "VX11_TOKEN", "NO_COLOR")}
    return subprocess.run([sys.executable, "-m", "madre", *args], env={**clean, **(env or {})},
                          input=stdin, capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)


@pytest.fixture
def served(start_madre, tmp_path) -> Iterator[tuple[Madre, str]]:
    madre = start_madre(principals_file=write_principals(tmp_path / "principals.toml"),
                        high_approvals=2)
    with LoopbackServer(create_app(madre), lifespan="on", name="madre") as server:
        yield madre, server.url


@pytest.fixture
def as_(served) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The CLI run by principal `who` against the live server."""
    _, url = served

    def run(who: str, *args: str, stdin: str | None = None) -> Any:
        return run_madre(*args, env={"MADRE_URL": url, "VX11_TOKEN": token_of(who)},
                         stdin=stdin)

    return run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def high_plan(url: str) -> dict[str, Any]:
    resp = requests.post(url + "/madre/control", json={"target": "shub", "action": "delete"},
                         headers=as_principal("alice"), timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_pending_lists_what_waits_with_its_approvals_and_who_asked(served, as_) -> None:
    _, url = served
    plan_id = high_plan(url)["plan_id"]

    out = ok(as_("vic", "pending"))

    header, row = out.splitlines()[:2]
    assert header.split() == ["PLAN", "RISK", "APPROVALS", "ASKED", "BY", "EXPIRES", "WILL",
                              "RUN"]
    assert row.startswith(plan_id) and "HIGH" in row and "0 of 2" in row and "alice" in row


def test_two_approvers_approve_with_the_cli_and_the_plan_runs(served, as_, standins) -> None:
    madre, url = served
    pending = high_plan(url)
    plan_id = pending["plan_id"]

    said_no = as_("bob", "approve", plan_id, stdin="n\n")
    assert said_no.returncode == 1 and "nothing was sent" in said_no.stderr
    assert madre.get_plan(plan_id).approvals == []

    out = ok(as_("bob", "approve", plan_id, "--comment", "checked", stdin="y\n"))
    assert f"digest: {pending['plan_digest']}" in out
    assert re.search(r"^1\s+CALL_SHUB\s+shub\s+/shub/process\s", out, re.MULTILINE), out
    assert "Approve plan" in out and "approvals 1 of 2" in out
    assert "the plan waits for more approvals" in out
    assert standins.recorder.calls("shub") == []

    again = as_("bob", "approve", plan_id, "--yes")
    assert again.returncode == 1 and "already_approved" in again.stderr

    out = ok(as_("carol", "approve", plan_id, "--yes"))
    assert "approvals 2 of 2" in out
    assert final(madre, plan_id).status is Status.DONE
    assert [a.by for a in madre.get_plan(plan_id).approvals] == ["bob", "carol"]


def test_approving_a_plan_that_does_not_wait_says_so_and_exits_1(served, as_) -> None:
    madre, url = served
    plan_id = high_plan(url)["plan_id"]
    ok(as_("bob", "reject", plan_id, "--reason", "no"))
    result = as_("carol", "approve", plan_id, "--yes")
    assert result.returncode == 1 and "does not wait for approval" in result.stderr
    assert as_("carol", "approve", "no-such-plan", "--yes").returncode == 1


def test_reject_ends_the_plan_with_the_reason_and_nothing_runs(served, as_, standins) -> None:
    madre, url = served
    plan_id = high_plan(url)["plan_id"]

    out = ok(as_("bob", "reject", plan_id, "--reason", "wrong stems"))

    assert out.splitlines()[0].split() == ["rejected", "plan", plan_id, "plan", "status",
                                           "ERROR"]
    assert out.splitlines()[1] == "reason: rejected: wrong stems"
    assert madre.get_plan(plan_id).reason == "rejected: wrong stems"
    assert standins.recorder.calls("shub") == []


def test_a_submitter_may_not_approve_and_is_told_why(served, as_) -> None:
    _, url = served
    plan_id = high_plan(url)["plan_id"]
    result = as_("alice", "approve", plan_id, "--yes")
    assert result.returncode == 1 and "not_allowed" in result.stderr


def test_principals_add_prints_a_token_once_and_an_entry_that_lets_it_in(
        tmp_path, start_madre) -> None:
    out = ok(run_madre("principals", "add", "ops-zed", "--role", "approver",
                       "--role", "viewer"))

    token = out.splitlines()[1]
    entry = out[out.index("[[principal]]"):]
    assert token not in entry and 'name = "ops-zed"' in entry
    path = tmp_path / "principals.toml"
    write_principals(path, {"alice": PEOPLE["alice"]})
    path.write_text(path.read_text() + "\n" + entry)
    zed = load_principals_file(path).find(token)
    assert zed is not None and zed.roles == {Role.APPROVER, Role.VIEWER}

    madre = start_madre(principals_file=str(path))
    with LoopbackServer(create_app(madre), lifespan="on", name="madre") as server:
        listed = run_madre("pending", env={"MADRE_URL": server.url, "VX11_TOKEN": token})
    assert ok(listed).strip() == "nothing waits for a human"


def test_principals_add_webhook_prints_an_entry_a_madre_accepts(tmp_path) -> None:
    out = ok(run_madre("principals", "add-webhook", "ci"))
    path = tmp_path / "principals.toml"
    write_principals(path, {"alice": PEOPLE["alice"]}, webhooks={})
    path.write_text(path.read_text() + "\n" + out[out.index("[[webhook]]"):])
    assert set(load_principals_file(path).webhooks) == {"ci"}


def test_principals_add_refuses_an_unknown_role_and_a_bad_name() -> None:
    assert run_madre("principals", "add", "zed", "--role", "root").returncode == 2
    assert run_madre("principals", "add", "has space", "--role", "viewer").returncode == 2

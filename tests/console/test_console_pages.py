"""The console's pages over a running Madre, as a browser without script sees them: the
inbox, plans with filters and pages, a plan page, health; each form (approve, reject,
cancel) with its CSRF token and the roles it needs; refusals and bad input as HTML pages.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re

import pytest
from console_client import ask, button_texts, form_for, parse
from helpers import as_principal, final, ok_json

from madre.http.console.pages import PAGES
from madre.http.console.web import CSP
from madre.http.openapi import build_openapi
from madre.http.operations import ROUTES
from madre.model import Status

DIGEST_RE = re.compile(r"[0-9a-f]{64}")


def plan_path(plan_id: str) -> str:
    return f"/console/plans/{plan_id}"


# --------------------------------------------------------------------------- the inbox


def test_the_inbox_shows_each_waiting_plan_with_what_a_person_needs_to_decide(served, visitor):
    madre, _, api = served
    asked = ask(api, "alice")
    bob = visitor("bob")
    html = bob.page("/console")
    pending = madre.pending(asked["plan_id"])[0]
    assert asked["plan_id"][:8] in html and f'data-copy="{asked["plan_id"]}"' in html
    assert "badge risk-high" in html and ">HIGH<" in html
    for step in pending.steps:
        assert step.type in html  # what will run
    assert "<dd>alice</dd>" in html  # who asked
    assert re.search(r"expires <time[^>]*>in 1[45] min</time>", html)
    assert "0 of 1" in html  # approvals so far
    assert 'data-live="count">1<' in html  # the count in the navigation
    assert button_texts(html).count("Approve") == 1 and button_texts(html).count("Reject") == 1
    approve = form_for(html, f"/console/plans/{asked['plan_id']}/approve")
    assert approve.fields["plan_digest"] == asked["plan_digest"]
    assert asked["plan_digest"][:12] in html  # the digest approved is shown by the button


def test_an_empty_inbox_says_so(served, visitor):
    vic = visitor("vic")
    html = vic.page("/console")
    assert "Nothing waits for a human" in html and 'data-live="count">0<' in html


def test_approving_from_the_inbox_goes_back_to_the_inbox(served, visitor):
    madre, _, api = served
    plan_id = ask(api, "alice")["plan_id"]
    bob = visitor("bob")
    resp = bob.submit("/console", f"/console/plans/{plan_id}/approve")
    assert resp.status_code == 303 and resp.headers["location"] == "/console?notice=approved"
    assert final(madre, plan_id).status is Status.DONE
    assert "Approved." in bob.page(resp.headers["location"])


# --------------------------------------------------------------------------- roles


def test_a_viewer_sees_plans_but_not_one_button_to_act_on_them(served, visitor):
    _, _, api = served
    plan_id = ask(api, "alice")["plan_id"]
    vic = visitor("vic")
    for path in ("/console", plan_path(plan_id)):
        html = vic.page(path)
        assert plan_id[:8] in html
        assert set(button_texts(html)) <= {"Copy", "Sign out"}, path
    resp = vic.http.post(f"/console/plans/{plan_id}/approve", data={
        "csrf": form_for(vic.page("/console"), "/console/sign-out").fields["csrf"],
        "plan_digest": "0" * 64})
    assert resp.status_code == 403 and "vic may not do this" in resp.text


def test_an_operator_may_cancel_but_not_approve(served, visitor):
    madre, _, api = served
    plan_id = ask(api, "alice")["plan_id"]
    olga = visitor("olga")
    html = olga.page(plan_path(plan_id))
    assert "Cancel plan" in button_texts(html) and "Approve" not in button_texts(html)
    resp = olga.submit(plan_path(plan_id), f"/console/plans/{plan_id}/cancel",
                       reason="not today")
    assert resp.status_code == 303
    assert resp.headers["location"] == plan_path(plan_id) + "?notice=cancelled"
    plan = madre.get_plan(plan_id)
    assert plan.status is Status.ERROR and plan.reason == "cancelled: not today"
    page = olga.page(resp.headers["location"])
    assert "Cancelled." in page and "Cancel plan" not in button_texts(page)
    assert any(h.actor == "olga" for h in plan.history)


def test_who_asked_for_a_high_plan_is_told_another_approver_must_approve_it(served, visitor):
    madre, _, api = served
    asked = ask(api, "dave")  # dave submits and approves; four eyes apply to HIGH plans
    dave = visitor("dave")
    html = dave.page(plan_path(asked["plan_id"]))
    assert "another approver must approve it" in html and "Approve" not in button_texts(html)
    csrf = form_for(html, "/console/sign-out").fields["csrf"]
    resp = dave.http.post(f"/console/plans/{asked['plan_id']}/approve",
                          data={"csrf": csrf, "plan_digest": asked["plan_digest"]})
    assert resp.status_code == 403 and "Back to the plan" in resp.text
    assert madre.get_plan(asked["plan_id"]).status is Status.WAITING


# --------------------------------------------------------------------------- the plan page


def test_approving_on_the_plan_page_shows_the_digest_and_then_the_plan_done(served, visitor):
    madre, _, api = served
    asked = ask(api, "alice")
    bob = visitor("bob")
    html = bob.page(plan_path(asked["plan_id"]))
    assert f'<code class="digest" id="approve-digest">{asked["plan_digest"]}</code>' in html
    assert {"Approve", "Reject"} <= set(button_texts(html))
    resp = bob.submit(plan_path(asked["plan_id"]), f"/console/plans/{asked['plan_id']}/approve",
                      comment="looks right")
    assert resp.status_code == 303
    assert final(madre, asked["plan_id"]).status is Status.DONE
    page = bob.page(resp.headers["location"])
    assert "badge status-done" in page and "Approved." in page
    assert "<strong>bob</strong> approved" in page and "looks right" in page
    steps = parse(page)
    assert "Took" in "".join(steps.text) and "Attempts" in "".join(steps.text)
    assert re.search(r'data-label="Took">\d+(\.\d)? m?s<', page)  # each step's duration
    assert "plan_done" in page  # the audit history


def test_rejecting_asks_for_a_reason_and_ends_the_plan_with_it(served, visitor):
    madre, _, api = served
    plan_id = ask(api, "alice")["plan_id"]
    bob = visitor("bob")
    action = f"/console/plans/{plan_id}/reject"
    assert 'required' in re.search(r'<textarea id="reason"[^>]*>', bob.page(plan_path(plan_id)))[0]
    blank = bob.submit(plan_path(plan_id), action, reason="   ")
    assert blank.status_code == 422 and "reason" in blank.text.lower()
    assert madre.get_plan(plan_id).status is Status.WAITING
    resp = bob.submit(plan_path(plan_id), action, reason="wrong stems")
    assert resp.status_code == 303
    plan = madre.get_plan(plan_id)
    assert plan.status is Status.ERROR and plan.reason == "rejected: wrong stems"
    assert "rejected: wrong stems" in bob.page(plan_path(plan_id))


def test_a_form_post_without_its_csrf_token_is_refused_and_changes_nothing(served, visitor):
    madre, _, api = served
    asked = ask(api, "alice")
    root = visitor("root")
    plan_id = asked["plan_id"]
    for action, fields in ((f"/console/plans/{plan_id}/approve",
                            {"plan_digest": asked["plan_digest"]}),
                           (f"/console/plans/{plan_id}/reject", {"reason": "no"}),
                           (f"/console/plans/{plan_id}/cancel", {}),
                           ("/console/sign-out", {})):
        for csrf in (None, "forged-token"):
            data = fields if csrf is None else {**fields, "csrf": csrf}
            resp = root.http.post(action, data=data)
            assert resp.status_code == 403, action
            assert "no valid CSRF token" in resp.text
    assert madre.get_plan(plan_id).status is Status.WAITING
    assert root.get("/console").status_code == 200  # still signed in


def test_a_plan_that_changed_since_it_was_shown_is_refused_with_a_page_saying_so(served, visitor):
    madre, _, api = served
    plan_id = ask(api, "alice")["plan_id"]
    bob = visitor("bob")
    resp = bob.submit(plan_path(plan_id), f"/console/plans/{plan_id}/approve",
                      plan_digest="0" * 64)
    assert resp.status_code == 409 and "text/html" in resp.headers["content-type"]
    assert f'href="/console/plans/{plan_id}"' in resp.text
    assert madre.get_plan(plan_id).status is Status.WAITING


def test_a_plan_that_needs_no_human_has_no_approval_section(served, visitor):
    madre, _, api = served
    done = ok_json(api.post("/madre/control", json={"target": "shub", "action": "status"},
                            headers=as_principal("alice")))
    final(madre, done["plan_id"])
    vic = visitor("vic")
    html = vic.page(plan_path(done["plan_id"]))
    assert "badge status-done" in html and "Approval</h2>" not in html


# --------------------------------------------------------------------------- plans


def test_the_plans_page_filters_by_status_and_pages_with_a_cursor(served, visitor):
    madre, _, api = served
    waiting = [ask(api, "alice")["plan_id"] for _ in range(3)]
    vic = visitor("vic")
    first = vic.page("/console/plans?status=waiting&limit=2")
    shown = [p for p in waiting if p[:8] in first]
    assert len(shown) == 2
    older = re.search(r'href="(/console/plans\?[^"]*cursor=[^"]*)">Older', first)
    assert older, first
    second = vic.page(older[1].replace("&amp;", "&"))
    assert [p for p in waiting if p[:8] in second] == [p for p in waiting if p not in shown]
    assert "Newest" in second and "Older</a>" not in second
    assert "No plans match these filters" in vic.page("/console/plans?status=DONE")


@pytest.mark.parametrize("path, status", [
    ("/console/plans?status=LATE", 422),
    ("/console/plans?limit=0", 422),
    ("/console/plans?limit=99999", 422),
    ("/console/plans?cursor=not-a-cursor", 400),
    ("/console/plans?session_id=" + "x" * 200, 422),
    ("/console/plans/" + "x" * 300, 404),
    ("/console/plans/no-such-plan", 404),
    ("/console/no-such-page", 404),
])
def test_bad_input_gets_an_html_error_page_never_a_500(served, visitor, path, status):
    vic = visitor("vic")
    resp = vic.get(path)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert 'class="problem"' in resp.text


def test_a_form_that_is_not_a_browsers_form_is_refused_clearly(served, visitor):
    _, _, api = served
    plan_id = ask(api, "alice")["plan_id"]
    bob = visitor("bob")
    action = f"/console/plans/{plan_id}/reject"
    assert bob.http.post(action, json={"reason": "x"}).status_code == 415
    assert bob.http.post(action, content=b"\xff\xfe=\xff", headers={
        "content-type": "application/x-www-form-urlencoded"}).status_code == 400
    assert bob.http.post(action, content=b"a=" + b"x" * 20_000, headers={
        "content-type": "application/x-www-form-urlencoded"}).status_code == 413
    assert bob.http.post(action, data={"reason": "x"}, headers={
        "sec-fetch-site": "cross-site"}).status_code == 403
    assert bob.get(action).status_code == 405


# --------------------------------------------------------------------------- health


def test_the_health_page_shows_modules_the_breaker_and_this_instance(served, visitor):
    madre, _, _ = served
    vic = visitor("vic")
    html = vic.page("/console/health")
    for module in ("switch", "hermes", "hormiguero", "manifestator", "shub", "spawner"):
        assert f'data-label="Module">{module}<' in html
    assert "breaker-closed" in html and madre.instance_id in html
    assert "the only one on its database" in html


def test_the_health_page_lists_every_instance_alive_on_its_database(
        database_url, served, console_madre, visitor):
    if database_url.startswith("sqlite"):
        pytest.skip("several instances share PostgreSQL only (one per SQLite file)")
    madre, _, _ = served
    other = console_madre()
    madre.membership.round()  # this instance reads who is alive now, as its rounds do

    html = visitor("vic").page("/console/health")

    assert '<span class="code">(2)</span>' in html
    assert f"<code>{madre.instance_id}</code> (this one)" in html
    assert f"<code>{other.instance_id}</code><" in html
    assert "the only one on its database" not in html


# --------------------------------------------------------------------------- the pages as a whole


def test_every_console_answer_has_a_strict_policy_and_no_page_has_inline_script(served, visitor):
    _, _, api = served
    plan_id = ask(api, "alice")["plan_id"]
    root = visitor("root")
    for path in ("/console", "/console/plans", plan_path(plan_id), "/console/health",
                 "/console/nope", "/console/sign-in", "/console/static/console.css"):
        resp = root.get(path)
        assert resp.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
        assert resp.headers["x-frame-options"] == "DENY"
        if "text/html" in resp.headers.get("content-type", ""):
            assert resp.headers["cache-control"] == "no-store"
            tags = parse(resp.text).tags
            assert all(a.get("src") for t, a in tags if t == "script"), path
            assert not [a for _, a in tags if "style" in a or any(k.startswith("on") for k in a)]


def test_console_pages_are_in_their_own_table_and_not_in_the_openapi_document() -> None:
    paths = build_openapi(ROUTES)["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/console")]
    assert {("GET", "/console"), ("GET", "/console/plans/{plan_id}"),
            ("POST", "/console/plans/{plan_id}/approve")} <= {(p.method, p.path) for p in PAGES}

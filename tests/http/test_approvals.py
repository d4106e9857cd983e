"""Approvals with approvers, over HTTP with a principals file: who may do what (403
`not_allowed`), the audit's actor, approve / reject / confirm and each of their refusals
(403, 409, 410, 404), two approvers, four eyes, and two approvers at the same moment.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import (
    at_once,
    as_principal,
    assert_envelope,
    execute,
    final,
    ok_json,
    table_rows,
    write_principals,
)
from starlette.testclient import TestClient

from madre import Madre, create_app
from madre.errors import AlreadyApproved, NotWaiting
from madre.model import Status
from madre.principals import Principal, Role

Start = Callable[..., tuple[Madre, TestClient]]


@pytest.fixture
def serve(start_madre, tmp_path) -> Iterator[Start]:
    """Start a Madre with the test principals (and `settings`); its client sends no token
    unless a request gives one."""
    clients: list[TestClient] = []

    def start(**settings: Any) -> tuple[Madre, TestClient]:
        runtime = start_madre(principals_file=write_principals(tmp_path / "principals.toml"),
                              **settings)
        http = TestClient(create_app(runtime)).__enter__()
        clients.append(http)
        return runtime, http

    yield start
    for http in clients:
        http.__exit__(None, None, None)


def post(http: TestClient, who: str, path: str, **body: Any) -> Any:
    return http.post(path, json=body, headers=as_principal(who))


def ask(http: TestClient, who: str = "alice", target: str = "shub", action: str = "delete"
        ) -> dict[str, Any]:
    """A plan asked for by `who` with /madre/control, waiting for approval."""
    answer = ok_json(post(http, who, "/madre/control", target=target, action=action))
    assert answer["status"] == "pending_confirmation", answer
    return answer


def approve(http: TestClient, who: str, plan_id: str, digest: str, **more: Any) -> Any:
    return post(http, who, f"/madre/plans/{plan_id}/approve", plan_digest=digest, **more)


# --------------------------------------------------------------------------- roles


NOT_COVERED = [
    ("vic", "POST", "/madre/chat", {"message": "hello"}),
    ("bob", "POST", "/madre/control", {"target": "shub", "action": "mix"}),
    ("olga", "POST", "/madre/intent", {"text": "hello"}),
    ("alice", "POST", "/madre/plans/{plan}/approve", {"plan_digest": "0" * 64}),
    ("olga", "POST", "/madre/plans/{plan}/confirm", {"confirm_token": "x"}),
    ("bob", "POST", "/madre/plans/{plan}/cancel", {}),
    ("sam", "GET", "/madre/plans/{plan}", None),
    ("sam", "GET", "/madre/pending", None),
    ("vic", "GET", "/madre/events", None),
    ("alice", "GET", "/metrics", None),
    ("bob", "POST", "/madre/callback/spawn", {"daughter_task_id": 1, "status": "ok"}),
]


def test_a_principal_whose_roles_do_not_cover_a_route_gets_403_not_allowed(serve) -> None:
    madre, http = serve()
    plan_id = ask(http)["plan_id"]
    for who, method, path, body in NOT_COVERED:
        resp = http.request(method, path.format(plan=plan_id), json=body,
                            headers=as_principal(who))
        envelope = assert_envelope(resp, 403, "not_allowed")
        assert who in envelope["detail"], (who, path)
    assert madre.get_plan(plan_id).status is Status.WAITING


def test_a_submitter_confirming_through_control_needs_the_approver_role(serve) -> None:
    _, http = serve(four_eyes="off")
    pending = ask(http)
    resp = post(http, "alice", "/madre/control", target="shub", action="delete",
                confirm_token=pending["confirm_token"])
    assert_envelope(resp, 403, "not_allowed")


def test_the_server_token_is_no_principal_once_there_is_a_principals_file(serve) -> None:
    _, http = serve()
    resp = http.post("/madre/chat", json={"message": "hi"},
                     headers={"X-VX11-Token": "test-token-0123456789"})
    assert_envelope(resp, 403, "forbidden")
    assert_envelope(http.post("/madre/chat", json={"message": "hi"}), 401, "auth_required")


def test_the_audit_actor_is_the_principal_and_a_claimed_name_only_a_note(serve) -> None:
    madre, http = serve(four_eyes="off")
    pending = ask(http)
    http.post(f"/madre/plans/{pending['plan_id']}/cancel", json={"by": "mallory"},
              headers={**as_principal("olga"), "X-VX11-Actor": "eve"})
    rows = {r["action"]: r for r in table_rows(madre, "madre_actions")
            if r["plan_id"] == pending["plan_id"]}
    assert rows["decision:HIGH"]["actor"] == "alice"
    assert rows["plan_cancelled"]["actor"] == "olga"
    assert "mallory" in rows["plan_cancelled"]["detail_json"]
    assert madre.get_plan(pending["plan_id"]).submitted_by == "alice"


# --------------------------------------------------------------------------- approve


def test_two_approvers_approve_a_high_plan_that_needs_two_and_it_runs_once(
        serve, standins) -> None:
    madre, http = serve(high_approvals=2)
    pending = ask(http)
    plan_id, digest = pending["plan_id"], pending["plan_digest"]
    shown = ok_json(http.get(f"/madre/plans/{plan_id}", headers=as_principal("bob")))
    assert shown["plan_digest"] == digest and shown["submitted_by"] == "alice"
    assert shown["approvals"] == [] and shown["approvals_needed"] == 2

    first = ok_json(approve(http, "bob", plan_id, digest, comment="looks right"))
    assert first == {"status": "approved", "plan_id": plan_id, "plan_status": "WAITING",
                     "approvals": {"have": 1, "need": 2}}
    assert standins.recorder.calls("shub") == []
    assert_envelope(approve(http, "bob", plan_id, digest), 409, "already_approved")

    second = ok_json(approve(http, "carol", plan_id, digest))
    assert second["approvals"] == {"have": 2, "need": 2}
    assert final(madre, plan_id).status is Status.DONE
    assert len(standins.recorder.calls("shub")) == 1
    done = ok_json(http.get(f"/madre/plans/{plan_id}", headers=as_principal("vic")))
    assert [(a["by"], a["comment"]) for a in done["approvals"]] == [
        ("bob", "looks right"), ("carol", None)]


def test_a_digest_that_is_not_the_plans_is_409_plan_changed(serve, standins) -> None:
    madre, http = serve()
    pending = ask(http)
    assert_envelope(approve(http, "bob", pending["plan_id"], "0" * 64), 409, "plan_changed")
    resp = post(http, "bob", f"/madre/plans/{pending['plan_id']}/confirm",
                confirm_token=pending["confirm_token"], plan_digest="0" * 64)
    assert_envelope(resp, 409, "plan_changed")
    assert madre.get_plan(pending["plan_id"]).status is Status.WAITING


def test_a_plan_rewritten_after_it_was_shown_refuses_the_old_digest(serve, standins) -> None:
    madre, http = serve()
    pending = ask(http)
    plan = madre.repo.load_plan(pending["plan_id"])
    plan.steps[1].payload["task"] = "delete everything"
    execute(madre, "UPDATE tasks SET plan_json = ? WHERE uuid = ?",
            (plan.model_dump_json(), plan.plan_id))

    assert_envelope(approve(http, "bob", plan.plan_id, pending["plan_digest"]), 409,
                    "plan_changed")
    resp = post(http, "bob", f"/madre/plans/{plan.plan_id}/confirm",
                confirm_token=pending["confirm_token"])
    assert_envelope(resp, 409, "plan_changed")
    assert standins.recorder.calls("shub") == []


def test_four_eyes_refuse_who_asked_with_403_self_approval(serve) -> None:
    _, http = serve()  # a principals file: four eyes default to high
    pending = ask(http, "dave")
    assert_envelope(approve(http, "dave", pending["plan_id"], pending["plan_digest"]), 403,
                    "self_approval")
    resp = post(http, "dave", f"/madre/plans/{pending['plan_id']}/confirm",
                confirm_token=pending["confirm_token"])
    assert_envelope(resp, 403, "self_approval")
    ok_json(approve(http, "bob", pending["plan_id"], pending["plan_digest"]))


def test_with_four_eyes_off_who_asked_may_approve(serve) -> None:
    madre, http = serve(four_eyes="off")
    pending = ask(http, "dave")
    ok_json(approve(http, "dave", pending["plan_id"], pending["plan_digest"]))
    assert final(madre, pending["plan_id"]).status is Status.DONE


def test_four_eyes_high_let_who_asked_approve_a_med_plan(serve) -> None:
    _, http = serve()
    med = ask(http, "dave", "hermes", "restart")
    ok_json(approve(http, "dave", med["plan_id"], med["plan_digest"]))


def test_four_eyes_all_refuse_who_asked_a_med_plan_too(serve) -> None:
    _, http = serve(four_eyes="all")
    med = ask(http, "dave", "hermes", "restart")
    assert_envelope(approve(http, "dave", med["plan_id"], med["plan_digest"]), 403,
                    "self_approval")


def test_approving_a_plan_that_is_not_waiting_is_409_and_an_unknown_one_404(serve) -> None:
    madre, http = serve()
    pending = ask(http)
    ok_json(approve(http, "bob", pending["plan_id"], pending["plan_digest"]))
    final(madre, pending["plan_id"])
    assert_envelope(approve(http, "carol", pending["plan_id"], pending["plan_digest"]), 409,
                    "not_waiting")
    assert_envelope(approve(http, "bob", "no-such-plan", "0" * 64), 404, "not_found")
    assert_envelope(post(http, "bob", "/madre/plans/no-such-plan/reject", reason="x"), 404,
                    "not_found")


def test_an_approval_too_late_is_410_approval_expired_also_after_the_timer(serve) -> None:
    madre, http = serve(confirm_ttl_seconds=0.000001, tick_seconds=3600)
    late = ask(http)
    assert_envelope(approve(http, "bob", late["plan_id"], late["plan_digest"]), 410,
                    "approval_expired")
    assert madre.get_plan(late["plan_id"]).reason == "confirmation_expired"

    timed_out = ask(http)
    assert [p.plan_id for p in madre.tick()] == [timed_out["plan_id"]]
    assert_envelope(approve(http, "bob", timed_out["plan_id"], timed_out["plan_digest"]), 410,
                    "approval_expired")
    resp = post(http, "bob", f"/madre/plans/{timed_out['plan_id']}/confirm",
                confirm_token=timed_out["confirm_token"])
    assert_envelope(resp, 410, "token_expired")
    assert_envelope(post(http, "bob", f"/madre/plans/{timed_out['plan_id']}/reject",
                         reason="too late"), 410, "approval_expired")


# --------------------------------------------------------------------------- reject


def test_an_approver_rejects_and_nothing_of_the_plan_runs(serve, standins) -> None:
    madre, http = serve()
    pending = ask(http)
    answer = ok_json(post(http, "bob", f"/madre/plans/{pending['plan_id']}/reject",
                          reason="not on a Friday"))
    assert answer == {"status": "rejected", "plan_id": pending["plan_id"],
                      "plan_status": "ERROR", "reason": "rejected: not on a Friday"}
    assert standins.recorder.calls("shub") == []
    assert_envelope(post(http, "bob", f"/madre/plans/{pending['plan_id']}/confirm",
                         confirm_token=pending["confirm_token"]), 409, "not_waiting")
    assert_envelope(post(http, "bob", f"/madre/plans/{pending['plan_id']}/reject",
                         reason="again"), 409, "not_waiting")
    [row] = [r for r in table_rows(madre, "madre_actions") if r["action"] == "plan_rejected"]
    assert row["actor"] == "bob" and row["plan_status"] == "ERROR"


def test_whoever_holds_the_token_may_reject_and_nobody_else_who_is_no_approver(serve) -> None:
    madre, http = serve()
    pending = ask(http)
    path = f"/madre/plans/{pending['plan_id']}/reject"
    assert_envelope(post(http, "alice", path, reason="mine"), 403, "not_allowed")
    assert_envelope(post(http, "alice", path, reason="mine", confirm_token="wrong"), 403,
                    "invalid_token")
    ok_json(post(http, "alice", path, reason="asked by mistake",
                 confirm_token=pending["confirm_token"]))
    assert madre.get_plan(pending["plan_id"]).reason == "rejected: asked by mistake"


# --------------------------------------------------------------------------- at the same moment


def race(madre: Madre, plan_id: str, digest: str, names: list[str]) -> list[Any]:
    """`names` approve at the same moment; what each got (an answer or the error)."""
    return at_once(*[functools.partial(madre.approve, plan_id, digest, wait=0,
                                       principal=Principal(n, frozenset({Role.APPROVER})))
                     for n in names])


def test_two_approvers_at_the_same_moment_start_the_plan_exactly_once(serve, standins) -> None:
    madre, http = serve()
    pending = ask(http)

    results = race(madre, pending["plan_id"], pending["plan_digest"], ["bob", "carol"])

    assert sorted(type(r).__name__ for r in results) == ["ApproveResponse", "NotWaiting"]
    assert final(madre, pending["plan_id"]).status is Status.DONE
    assert len(standins.recorder.calls("shub")) == 1
    actions = [r["action"] for r in table_rows(madre, "madre_actions")
               if r["plan_id"] == pending["plan_id"]]
    assert actions.count("plan_confirmed") == 1 and actions.count("plan_started") <= 1


def test_the_two_approvals_a_plan_needs_given_at_once_both_count_and_it_runs_once(
        serve, standins) -> None:
    madre, http = serve(high_approvals=2)
    pending = ask(http)

    results = race(madre, pending["plan_id"], pending["plan_digest"], ["bob", "carol"])

    assert not [r for r in results if isinstance(r, Exception)]
    assert sorted(r.approvals.have for r in results) == [1, 2]
    assert final(madre, pending["plan_id"]).status is Status.DONE
    assert len(standins.recorder.calls("shub")) == 1
    with pytest.raises((NotWaiting, AlreadyApproved)):
        madre.approve(pending["plan_id"], pending["plan_digest"],
                      principal=Principal("bob", frozenset({Role.APPROVER})))


# --------------------------------------------------------------------------- what waits


def test_pending_lists_what_waits_for_a_human_with_what_will_run(serve) -> None:
    _, http = serve(high_approvals=2)
    pending = ask(http)
    ok_json(approve(http, "bob", pending["plan_id"], pending["plan_digest"]))

    [listed] = ok_json(http.get("/madre/pending", headers=as_principal("carol")))["plans"]

    assert listed["plan_id"] == pending["plan_id"] and listed["risk"] == "HIGH"
    assert listed["plan_digest"] == pending["plan_digest"]
    assert listed["submitted_by"] == "alice" and listed["approved_by"] == ["bob"]
    assert listed["approvals"] == {"have": 1, "need": 2}
    assert [s["type"] for s in listed["steps"]] == ["NOOP", "CALL_SHUB", "NOOP"]
    assert listed["steps"][1]["route"] == "/shub/process"
    assert listed["expires_at"] and "delete shub (HIGH)" in listed["summary"]

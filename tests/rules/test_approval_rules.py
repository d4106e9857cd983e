"""Approve what you saw, as plain functions: the digest of what a plan will run, and the
decisions on an approval, a confirm bound to the digest and a rejection (no actor, no
database, no clock)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from madre.model import Plan, Risk, Status, Step, StepType, new_id
from madre.records import Confirmation
from madre.rules import lifecycle, outcomes
from madre.rules.approvals import ApprovalRules, plan_digest
from madre.rules.outcomes import Verdict
from madre.rules.tokens import issue_token

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
ROUTES = {"shub": "/shub/process", "hermes": "/hermes/execute"}
TWO = ApprovalRules(four_eyes="high", high_approvals=2, routes=ROUTES)


def waiting(risk: Risk = Risk.HIGH, *, need: int = 2, by: str = "alice",
            rules: ApprovalRules = TWO) -> tuple[Plan, str, Confirmation]:
    """A plan behind its gate as intake saves it: (plan, token, confirmation)."""
    plan = Plan(intent_id=new_id(), session_id=new_id(), risk=risk, submitted_by=by,
                targets=["shub"], approvals_needed=need, steps=[
                    Step(index=0, type=StepType.NOOP, blocking=True,
                         payload={"gate": "confirmation", "reason": "awaiting_confirmation"}),
                    Step(index=1, type=StepType.CALL_SHUB, payload={"task": "delete"})])
    plan.plan_digest = rules.digest(plan)
    issued = issue_token(now=T0, ttl_seconds=900)
    lifecycle.gate(plan, expires_at=issued.expires_at, now=T0)
    return plan, issued.token, Confirmation(issued.token_hash, issued.expires_at,
                                            plan.plan_digest)


def approve(plan: Plan, confirmation: Confirmation, by: str, *, digest: str | None = None,
            now: dt.datetime = T0, rules: ApprovalRules = TWO) -> outcomes.Outcome:
    return outcomes.decide_approval(plan, confirmation, by=by, comment=None, rules=rules,
                                    plan_digest=digest or rules.digest(plan), now=now)


# --------------------------------------------------------------------------- the digest


def test_the_digest_is_the_sha256_of_what_will_run_and_the_same_for_the_same_content():
    plan, _, _ = waiting()
    twin = plan.model_copy(deep=True, update={"plan_id": new_id(), "submitted_by": "zed"})

    assert len(plan_digest(plan, ROUTES)) == 64
    assert plan_digest(twin, ROUTES) == plan_digest(plan, ROUTES)


@pytest.mark.parametrize("change", [
    lambda p, r: p.steps[1].payload.update(task="delete everything"),
    lambda p, r: setattr(p.steps[1], "type", StepType.CALL_HERMES),
    lambda p, r: setattr(p, "risk", Risk.MED),
    lambda p, r: p.targets.append("hermes"),
    lambda p, r: r.update(shub="/shub/other-route"),
], ids=["a payload", "a step's module", "the risk", "the targets", "a route"])
def test_the_digest_changes_with_anything_that_changes_what_runs(change) -> None:
    plan, _, _ = waiting()
    routes = dict(ROUTES)
    before = plan_digest(plan, routes)
    change(plan, routes)
    assert plan_digest(plan, routes) != before


def test_the_digest_ignores_how_the_plan_went() -> None:
    plan, _, _ = waiting()
    before = plan_digest(plan, ROUTES)
    plan.steps[1].status, plan.steps[1].attempts = Status.DONE, 3
    plan.steps[1].result = {"ok": True}
    assert plan_digest(plan, ROUTES) == before


@pytest.mark.parametrize("mode, risk, applies", [
    ("off", Risk.HIGH, False), ("high", Risk.HIGH, True), ("high", Risk.MED, False),
    ("all", Risk.MED, True),
])
def test_four_eyes_apply_by_mode_and_risk(mode, risk, applies) -> None:
    assert ApprovalRules(four_eyes=mode).four_eyes_apply(risk) is applies


def test_high_plans_need_the_configured_approvals_and_others_one() -> None:
    assert (TWO.needed(Risk.HIGH), TWO.needed(Risk.MED)) == (2, 1)


# --------------------------------------------------------------------------- approvals


def test_two_approvals_by_distinct_principals_confirm_a_plan_that_needs_two() -> None:
    plan, _, confirmation = waiting()

    first = approve(plan, confirmation, "bob")
    assert first.verdict is Verdict.APPROVED and plan.status is Status.WAITING
    assert [a.action for a in first.change.audit] == ["plan_approved"]
    assert first.change.audit[0].detail["have"] == 1

    second = approve(plan, confirmation, "carol")
    assert second.verdict is Verdict.CONFIRMED and plan.status is Status.RUNNING
    assert [a.by for a in plan.approvals] == ["bob", "carol"]
    assert [a.action for a in second.change.audit] == ["plan_approved", "plan_confirmed"]


def test_a_second_approval_by_the_same_principal_is_already_approved() -> None:
    plan, _, confirmation = waiting()
    approve(plan, confirmation, "bob")

    again = approve(plan, confirmation, "bob")

    assert again.verdict is Verdict.ALREADY_APPROVED and again.change is None
    assert again.audit[0].action == "approval_refused"
    assert again.audit[0].reason == "already_approved"


def test_an_approval_of_another_digest_is_plan_changed_and_records_nothing() -> None:
    plan, _, confirmation = waiting()

    outcome = approve(plan, confirmation, "bob", digest="0" * 64)

    assert outcome.verdict is Verdict.PLAN_CHANGED and plan.approvals == []


def test_four_eyes_refuse_the_submitter_approving_its_own_high_plan() -> None:
    plan, _, confirmation = waiting(by="dave")

    assert approve(plan, confirmation, "dave").verdict is Verdict.SELF_APPROVAL
    off = dataclasses.replace(TWO, four_eyes="off")
    assert approve(plan, confirmation, "dave", rules=off).verdict is Verdict.APPROVED


def test_an_approval_after_the_deadline_expires_the_plan() -> None:
    plan, _, confirmation = waiting()

    late = approve(plan, confirmation, "bob", now=confirmation.expires_at)

    assert late.verdict is Verdict.EXPIRED and plan.reason == "confirmation_expired"
    assert approve(plan, confirmation, "bob").verdict is Verdict.EXPIRED  # and stays so


def test_approving_a_plan_that_is_not_waiting_is_not_waiting() -> None:
    plan, _, confirmation = waiting(need=1)
    approve(plan, confirmation, "bob")
    assert approve(plan, confirmation, "carol").verdict is Verdict.NOT_WAITING


def test_approvals_of_content_that_changed_since_no_longer_count() -> None:
    plan, _, confirmation = waiting()
    approve(plan, confirmation, "bob")
    plan.steps[1].payload["task"] = "delete more"

    outcome = approve(plan, confirmation, "carol")

    assert outcome.verdict is Verdict.APPROVED  # 1 of 2: bob approved something else
    assert outcome.change.audit[0].detail["have"] == 1


# --------------------------------------------------------------------------- confirm


def test_a_confirm_is_an_approval_through_the_token_and_the_token_counts_once() -> None:
    plan, token, confirmation = waiting()

    first = outcomes.decide_confirmation(plan, confirmation, token, actor="bob", now=T0,
                                         rules=TWO)
    again = outcomes.decide_confirmation(plan, confirmation, token, actor="carol", now=T0,
                                         rules=TWO)

    assert first.verdict is Verdict.APPROVED and plan.approvals[0].via == "token"
    assert again.verdict is Verdict.ALREADY_APPROVED


def test_a_confirm_of_a_plan_changed_since_its_token_was_issued_is_plan_changed() -> None:
    plan, token, confirmation = waiting(need=1)
    plan.steps[1].payload["task"] = "something else"

    outcome = outcomes.decide_confirmation(plan, confirmation, token, actor="bob", now=T0,
                                           rules=TWO)

    assert outcome.verdict is Verdict.PLAN_CHANGED and plan.status is Status.WAITING


def test_a_confirm_naming_another_digest_is_plan_changed() -> None:
    plan, token, confirmation = waiting(need=1)
    outcome = outcomes.decide_confirmation(plan, confirmation, token, actor="bob", now=T0,
                                           rules=TWO, plan_digest="f" * 64)
    assert outcome.verdict is Verdict.PLAN_CHANGED


def test_a_confirm_after_the_timer_ended_the_plan_is_still_expired() -> None:
    plan, token, confirmation = waiting(need=1)
    outcomes.decide_expiry(plan, now=confirmation.expires_at, deadline=confirmation.expires_at)

    late = outcomes.decide_confirmation(plan, confirmation, token, actor="bob", now=T0)

    assert late.verdict is Verdict.EXPIRED and late.change is None


# --------------------------------------------------------------------------- reject


def test_an_approver_rejects_and_the_plan_ends_in_error_with_the_reason() -> None:
    plan, _, confirmation = waiting()

    outcome = outcomes.decide_reject(plan, confirmation, by="bob", may_approve=True,
                                     token=None, reason="not on a Friday", now=T0)

    assert outcome.verdict is Verdict.REJECTED
    assert plan.status is Status.ERROR and plan.reason == "rejected: not on a Friday"
    assert all(s.status is not Status.DONE for s in plan.steps)
    assert outcome.change.close.result_status == "error"


@pytest.mark.parametrize("may_approve, give, verdict", [
    (False, "token", Verdict.REJECTED),
    (False, None, Verdict.NOT_ALLOWED),
    (True, "wrong", Verdict.INVALID_TOKEN),
], ids=["the token's holder", "neither approver nor holder", "a wrong token"])
def test_who_may_reject(may_approve, give, verdict) -> None:
    plan, token, confirmation = waiting()
    given = token if give == "token" else give
    outcome = outcomes.decide_reject(plan, confirmation, by="alice", may_approve=may_approve,
                                     token=given, reason="no", now=T0)
    assert outcome.verdict is verdict

"""Risk rules and confirmation tokens."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madre.model import DSL, Decision, Risk
from madre.rules.policy import (
    HIGH_RISK,
    MED_RISK,
    READ_ONLY,
    SELF_DESTRUCTIVE,
    classify,
    classify_dsl,
)
from madre.rules.tokens import hash_token, is_expired, issue_token, token_matches

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)

# --------------------------------------------------------------------------- legacy expectations

# The original's unit expectations, with our answers: the two self-destruction cases are denied,
# and "suspend" is a stopping verb (HIGH; denied for Madre like "pause"), not a MED one.
LEGACY = [
    ("audio", "mix", Risk.LOW, False),
    ("system", "healthcheck", Risk.LOW, False),
    ("shub", "suspend", Risk.HIGH, False),
    ("storage", "delete", Risk.HIGH, False),
    ("madre", "delete", Risk.HIGH, True),
    ("tentaculo_link", "stop", Risk.HIGH, True),
    ("madre", "restart", Risk.MED, False),
    ("health", "delete", Risk.HIGH, False),
    ("shub", "status", Risk.LOW, False),
]


@pytest.mark.parametrize(("target", "action", "risk", "denied"), LEGACY)
def test_the_legacy_unit_expectations_hold_with_self_destruction_denied(
    target: str, action: str, risk: Risk, denied: bool
) -> None:
    decision = classify(target, action)
    assert (decision.risk, decision.denied) == (risk, denied)


# --------------------------------------------------------------------------- self-destruction


@pytest.mark.parametrize("target", ["madre", "tentaculo_link", " MADRE ", "Tentaculo_Link", "gateway"])
@pytest.mark.parametrize("action", sorted(SELF_DESTRUCTIVE))
def test_madre_never_stops_or_destroys_itself_or_the_gateway(target: str, action: str) -> None:
    decision = classify(target, action)
    assert (decision.risk, decision.denied, decision.requires_confirmation) == (Risk.HIGH, True, False)


def test_a_denial_names_the_target_and_the_action() -> None:
    assert classify("madre", "kill").reason == (
        "Madre never stops or destroys itself or the gateway (madre/kill)")


def test_a_compound_self_destructive_action_is_denied() -> None:
    assert classify("madre", "force_stop").denied


def test_self_destruction_is_not_matched_inside_a_word() -> None:
    assert not classify("madre", "unstoppable").denied


@pytest.mark.parametrize("target", ["hermes", "spawner", "storage", None])
def test_stopping_another_module_asks_for_confirmation_instead(target: str | None) -> None:
    decision = classify(target, "stop")
    assert (decision.denied, decision.requires_confirmation) == (False, True)


# --------------------------------------------------------------------------- risk levels


@pytest.mark.parametrize("action", sorted(READ_ONLY))
def test_read_only_actions_are_low(action: str) -> None:
    assert classify("hermes", action) == Decision(
        risk=Risk.LOW, requires_confirmation=False, reason="read-only action")


@pytest.mark.parametrize("action", sorted(HIGH_RISK))
def test_high_risk_verbs_are_high_and_need_confirmation(action: str) -> None:
    decision = classify("hermes", action)
    assert (decision.risk, decision.requires_confirmation) == (Risk.HIGH, True)
    assert decision.reason == f"'{action}' is a HIGH-risk verb"


@pytest.mark.parametrize("action", sorted(MED_RISK))
def test_med_risk_verbs_are_med_and_need_confirmation(action: str) -> None:
    decision = classify("hermes", action)
    assert (decision.risk, decision.requires_confirmation) == (Risk.MED, True)
    assert decision.reason == f"'{action}' is a MED-risk verb"


@pytest.mark.parametrize(
    ("action", "risk"),
    [
        ("update_all", Risk.MED),
        ("Stop", Risk.HIGH),
        ("  DELETE  ", Risk.HIGH),
        ("unstoppable", Risk.MED),  # no verb Madre knows: it waits, it does not run at once
        ("updater", Risk.MED),  # stems to "update"
        ("status-then-delete", Risk.HIGH),
        ("restart_then_drop", Risk.HIGH),
        ("list status", Risk.LOW),
        ("list_and_restart", Risk.MED),
        ("mix", Risk.LOW),
        ("", Risk.MED),  # no action named is no action Madre knows
    ],
)
def test_actions_are_split_into_word_tokens_never_substrings(action: str, risk: Risk) -> None:
    assert classify("hermes", action).risk == risk


@pytest.mark.parametrize("target", ["health", "read", "list", "analyze"])
def test_no_target_is_a_wildcard_for_the_allowlist(target: str) -> None:
    assert classify(target, "delete").risk == Risk.HIGH


def test_classify_dsl_uses_the_target_when_one_was_named() -> None:
    assert classify_dsl(DSL(domain="system", action="delete", target="madre")).denied


def test_classify_dsl_falls_back_to_the_domain() -> None:
    assert classify_dsl(DSL(domain="audio", action="mix")).risk == Risk.LOW


@given(target=st.none() | st.text(max_size=80), action=st.text(max_size=200))
def test_classify_never_raises_and_confirmation_follows_risk(target: str | None, action: str) -> None:
    decision = classify(target, action)
    assert decision.requires_confirmation == (
        decision.risk in (Risk.MED, Risk.HIGH) and not decision.denied)


# --------------------------------------------------------------------------- tokens


def test_an_issued_token_expires_ttl_seconds_after_now() -> None:
    assert issue_token(now=NOW, ttl_seconds=900).expires_at == NOW + dt.timedelta(minutes=15)


def test_an_issued_token_carries_the_hash_of_its_token() -> None:
    issued = issue_token(now=NOW, ttl_seconds=60)
    assert issued.token_hash == hash_token(issued.token)


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_the_repr_of_an_issued_token_masks_the_token() -> None:
    issued = issue_token(now=NOW, ttl_seconds=60)
    assert issued.token not in repr(issued) and issued.token not in str(issued)


def test_an_issued_token_is_immutable() -> None:
    issued = issue_token(now=NOW, ttl_seconds=60)
    with pytest.raises(AttributeError):
        issued.token = "x"  # type: ignore[misc]


def test_tokens_are_long_unique_and_never_their_own_hash() -> None:
    issued = [issue_token(now=NOW, ttl_seconds=60) for _ in range(500)]
    assert all(len(t.token) >= 32 for t in issued)
    assert len({t.token for t in issued}) == len(issued)
    assert all(t.token != t.token_hash for t in issued)


@given(other=st.text(max_size=64))
def test_token_matches_only_the_right_token(other: str) -> None:
    issued = issue_token(now=NOW, ttl_seconds=60)
    assert token_matches(issued.token, issued.token_hash)
    assert token_matches(other, issued.token_hash) == (other == issued.token)


def test_token_matches_refuses_a_token_presented_as_its_own_hash() -> None:
    issued = issue_token(now=NOW, ttl_seconds=60)
    assert not token_matches(issued.token_hash, issued.token_hash)


def test_token_matches_survives_a_non_ascii_stored_hash() -> None:
    assert not token_matches("token", "ñ" * 64)


@pytest.mark.parametrize(
    ("expires_at", "expired"),
    [
        (NOW + dt.timedelta(seconds=1), False),
        (NOW, True),
        (NOW - dt.timedelta(seconds=1), True),
        ((NOW + dt.timedelta(seconds=1)).replace(tzinfo=None), False),
        ((NOW - dt.timedelta(seconds=1)).replace(tzinfo=None), True),
    ],
)
def test_a_token_is_expired_from_its_expiry_instant_on(expires_at: dt.datetime, expired: bool) -> None:
    assert is_expired(expires_at, NOW) is expired


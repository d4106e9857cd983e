"""Console sign-in and sessions: no plan data without a session, the token only ever in
the sign-in form, a signed HttpOnly SameSite=Strict cookie that expires and ends on sign-out,
a CSRF token on the sign-in form too.

The tests over a Madre run on SQLite and on PostgreSQL; the Sessions unit tests need none.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from console_client import SECRET, Visitor, ask, form_for
from helpers import PEOPLE, TOKEN, token_of
from itsdangerous import URLSafeTimedSerializer

from madre import create_app
from madre.errors import ConfigError
from madre.http.console.session import Sessions
from madre.http.console.web import signed_in_path
from madre.model import Status
from madre.principals import Principal, Principals, Role, hash_token
from madre.settings import load_settings


def set_cookies(resp) -> dict[str, SimpleCookie]:
    jar = {}
    for header in resp.headers.get_list("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            jar[name] = cookie
    return jar


# --------------------------------------------------------------------------- no session


def test_without_a_session_no_page_shows_plan_data_and_each_leads_to_sign_in(served, visitor):
    madre, _, api = served
    plan_id = ask(api)["plan_id"]
    anonymous = visitor()
    for path in ("/console", "/console/plans", f"/console/plans/{plan_id}", "/console/health",
                 "/console/plans?status=WAITING"):
        resp = anonymous.get(path)
        assert resp.status_code == 303, path
        assert resp.headers["location"].startswith("/console/sign-in?next=%2Fconsole")
        assert plan_id not in resp.text
    assert anonymous.get("/console/events").status_code == 401
    resp = anonymous.http.post(f"/console/plans/{plan_id}/approve",
                               data={"plan_digest": "0" * 64})
    assert resp.status_code == 303 and resp.headers["location"] == "/console/sign-in"
    assert madre.get_plan(plan_id).status is Status.WAITING


def test_a_link_from_another_site_is_asked_again_from_here_and_shows_nothing(served, visitor):
    _, _, api = served
    plan_id = ask(api)["plan_id"]
    resp = visitor().get(f"/console/plans/{plan_id}?x=<b>", headers={
        "sec-fetch-site": "cross-site"})
    assert resp.status_code == 200 and "plan_digest" not in resp.text
    assert (f'content="0;url=/console/plans/{plan_id}?x=%3Cb%3E"' in resp.text
            and "<b>" not in resp.text)


def test_the_console_is_open_to_the_token_middleware_but_the_api_is_not(served, visitor):
    anonymous = visitor()
    assert anonymous.get("/console/sign-in").status_code == 200
    assert anonymous.get("/").headers["location"] == "/console"
    assert anonymous.get("/madre/plans").status_code == 401
    assert anonymous.get("/consoleX").status_code == 401  # only /console and below are open


# --------------------------------------------------------------------------- signing in


def test_signing_in_with_a_token_returns_to_the_page_asked_for(served, visitor):
    someone = visitor()
    first = someone.get("/console/plans?status=DONE")
    page = someone.get(first.headers["location"])
    form = form_for(page.text, "/console/sign-in")
    assert form.fields["next"] == "/console/plans?status=DONE"
    assert 'type="password"' in page.text
    resp = someone.http.post("/console/sign-in", data={**form.fields, "token": token_of("vic")})
    assert resp.status_code == 303 and resp.headers["location"] == "/console/plans?status=DONE"
    assert "vic" in someone.page("/console/plans")


def test_a_wrong_token_is_refused_with_401_and_no_session(served, visitor):
    someone = visitor()
    resp = someone.sign_in(token="not-a-token-of-anyone")
    assert resp.status_code == 401
    assert "not a token this server knows" in resp.text
    assert "madre_console" not in set_cookies(resp)
    assert someone.get("/console").status_code == 303


def test_the_sign_in_form_needs_its_own_csrf_token(served, visitor):
    someone = visitor()
    someone.get("/console/sign-in")
    resp = someone.http.post("/console/sign-in", data={"token": token_of("bob"), "csrf": "x"})
    assert resp.status_code == 403 and "out of date" in resp.text
    assert "madre_console" not in set_cookies(resp)


def test_a_principal_without_a_reading_role_may_not_sign_in(served, visitor):
    resp = visitor().sign_in("sam")  # spawner only
    assert resp.status_code == 403 and "sam may not use the console" in resp.text


def test_the_session_cookie_is_httponly_strict_dated_and_never_holds_the_token(served, visitor):
    resp = visitor().sign_in("bob")
    assert resp.status_code == 303
    cookie = set_cookies(resp)["madre_console"]["madre_console"]
    assert cookie["httponly"] and cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/console" and int(cookie["max-age"]) == 8 * 3600
    assert not cookie["secure"]  # plain http here; see the https test
    value = cookie.value
    token = token_of("bob")
    assert token not in value and hash_token(token) not in value
    payload = URLSafeTimedSerializer(SECRET, salt="madre.console.session").loads(value)
    assert payload["name"] == "bob" and payload["roles"] == ["approver"]
    assert token not in str(payload) and hash_token(token) not in str(payload)


def test_behind_https_the_cookie_is_secure_and_bound_to_the_host(served, visitor):
    someone = visitor(base_url="https://madre.example")
    resp = someone.sign_in("bob")
    cookie = set_cookies(resp)["__Host-madre_console"]["__Host-madre_console"]
    assert cookie["secure"] and cookie["path"] == "/" and cookie["httponly"]
    assert "bob" in someone.page("/console")


def test_signing_out_ends_the_session_even_for_a_copy_of_the_cookie(served, visitor):
    someone = visitor("vic")
    thief = visitor()
    thief.http.cookies.set("madre_console", someone.http.cookies["madre_console"])
    assert thief.get("/console").status_code == 200  # a copy works while the session lives
    resp = someone.submit("/console", "/console/sign-out")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/console/sign-in?notice=signed_out"
    assert 'madre_console=""' in resp.headers["set-cookie"]  # deleted in the browser
    assert "You signed out" in someone.page(resp.headers["location"])
    assert someone.get("/console").status_code == 303
    assert thief.get("/console").status_code == 303  # and the copy is refused


@pytest.mark.parametrize("raw, where", [
    ("/console/plans?status=DONE", "/console/plans?status=DONE"),
    ("https://elsewhere.example/console", "/console"),
    ("//elsewhere.example/console", "/console"),
    ("/madre/plans", "/console"),
    ("/console\\..\\x", "/console"),
    (None, "/console"),
])
def test_after_signing_in_a_person_only_ever_lands_on_the_console(raw, where) -> None:
    assert signed_in_path(raw) == where


# --------------------------------------------------------------------------- Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def principals(**tokens: str) -> Principals:
    return Principals(tuple((hash_token(t), Principal(n, frozenset(Role(r) for r in PEOPLE[n])))
                            for n, t in tokens.items()), {}, from_file=True)


def test_a_session_lasts_its_lifetime_and_not_a_second_more() -> None:
    clock = Clock()
    sessions = Sessions(principals(bob="t-bob"), b"k" * 32, lifetime=600, clock=clock)
    value, issued = sessions.issue(Principal("bob", frozenset({Role.APPROVER})))
    clock.now += 599
    read = sessions.read(value)
    assert read is not None and read.principal.name == "bob" and read.csrf == issued.csrf
    clock.now += 2
    assert sessions.read(value) is None


def test_a_forged_or_tampered_cookie_is_no_session() -> None:
    sessions = Sessions(principals(bob="t-bob"), b"k" * 32, lifetime=600)
    value, _ = sessions.issue(Principal("bob", frozenset({Role.APPROVER})))
    other = Sessions(principals(bob="t-bob"), b"x" * 32, lifetime=600)
    assert other.read(value) is None  # another key
    assert sessions.read(value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]) is None
    assert sessions.read("") is None and sessions.read("garbage.cookie") is None


def test_a_session_ends_when_its_principal_is_gone_or_its_token_changed() -> None:
    key = b"k" * 32
    value, _ = Sessions(principals(bob="t-bob"), key, lifetime=600).issue(
        Principal("bob", frozenset({Role.APPROVER})))
    assert Sessions(principals(bob="t-bob"), key, lifetime=600).read(value) is not None
    assert Sessions(principals(bob="a-new-token"), key, lifetime=600).read(value) is None
    assert Sessions(principals(vic="t-vic"), key, lifetime=600).read(value) is None


def test_the_roles_used_are_the_principals_current_ones() -> None:
    key = b"k" * 32
    value, _ = Sessions(principals(bob="t-bob"), key, lifetime=600).issue(
        Principal("bob", frozenset({Role.APPROVER})))
    now = Principals(((hash_token("t-bob"), Principal("bob", frozenset({Role.VIEWER}))),), {},
                     from_file=True)
    read = Sessions(now, key, lifetime=600).read(value)
    assert read is not None and read.principal.roles == {Role.VIEWER}


def test_the_sign_in_form_token_is_one_use_of_a_signed_nonce() -> None:
    sessions = Sessions(principals(bob="t-bob"), b"k" * 32, lifetime=600)
    nonce, cookie = sessions.sign_in_form()
    assert sessions.sign_in_ok(cookie, nonce)
    assert not sessions.sign_in_ok(cookie, nonce + "x")
    assert not sessions.sign_in_ok(None, nonce) and not sessions.sign_in_ok(cookie, None)


# --------------------------------------------------------------------------- the key


def test_a_console_secret_too_short_to_be_one_stops_start_up_naming_it() -> None:
    with pytest.raises(ConfigError, match="MADRE_CONSOLE_SECRET: .*at least 32 characters"):
        load_settings(console_secret="short")
    assert load_settings(console_secret="  ").console_secret is None  # blank: unset


def test_without_a_console_secret_each_process_makes_a_key_and_says_so(
        start_madre, caplog) -> None:
    madre = start_madre(console_secret=None)
    with caplog.at_level("WARNING", logger="madre.console"):
        first, second = create_app(madre), create_app(madre)
    assert "MADRE_CONSOLE_SECRET is not set" in caplog.text
    with Visitor(first) as one, Visitor(second) as other:
        assert one.sign_in(token=TOKEN).status_code == 303
        other.http.cookies.set("madre_console", one.http.cookies["madre_console"])
        assert one.get("/console").status_code == 200
        assert other.get("/console").status_code == 303  # another key: not its session

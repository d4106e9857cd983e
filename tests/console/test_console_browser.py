"""The console in a real headless Chromium, against a real Madre on loopback: sign in, see a
plan asked for through the API appear in the inbox without a reload, approve it on its page
and see it DONE, reject one with a reason by keyboard, a viewer sees no buttons (and the
plan move to DONE, live, when someone else approves it), a form without its CSRF token is
refused, the cookie never holds the token, signing out ends the session, and axe-core finds
nothing on any page, wide or narrow.

One browser for the module; each test its own Madre (SQLite and PostgreSQL). Without
Chromium and chromedriver the tests skip, saying what to install.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from browser import axe_violations, missing, screenshot, start_chromium
from console_client import SECRET
from helpers import WAIT, as_principal, final, token_of
from itsdangerous import URLSafeTimedSerializer

from madre import Madre, create_app
from madre.model import Status
from madre.principals import hash_token
from madre.standins import LoopbackServer

pytestmark = pytest.mark.skipif(missing() is not None, reason=f"no browser: {missing()}")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


class Site:
    """A Madre served on loopback, and the browser pointed at it, signed out."""

    def __init__(self, madre: Madre, url: str, driver: Any) -> None:
        self.madre, self.url, self.driver = madre, url, driver

    def ask(self, who: str = "alice", action: str = "delete") -> dict[str, Any]:
        resp = requests.post(f"{self.url}/madre/control", timeout=WAIT, headers=as_principal(who),
                             json={"target": "shub", "action": action})
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def sign_in(self, who: str) -> None:
        self.open("/console")
        self.wait_for_css("#token").send_keys(token_of(who))
        self.driver.find_element("css selector", "form button[type=submit]").click()
        self.wait_until(lambda d: "/console/sign-in" not in d.current_url)

    def wait_until(self, condition: Any) -> Any:
        """`condition(driver)` once it is true; a page that changes under it is asked again."""
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, WAIT, ignored_exceptions=(
            NoSuchElementException, StaleElementReferenceException)).until(condition)

    def wait_for_text(self, text: str) -> None:
        self.wait_until(lambda d: text in d.find_element("tag name", "body").text)

    def wait_for_css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait_until(ec.presence_of_element_located((By.CSS_SELECTOR, selector)))

    def live(self) -> None:
        """Wait until the page follows the event stream."""
        self.wait_until(lambda d: d.find_element("tag name", "body")
                        .get_attribute("data-live-open") == "true")

    def text(self) -> str:
        return str(self.driver.find_element("tag name", "body").text)

    def buttons(self) -> list[str]:
        return [b.text for b in self.driver.find_elements("tag name", "button")
                if b.is_displayed()]


@pytest.fixture
def site(console_madre: Any, chromium: Any) -> Iterator[Site]:
    madre = console_madre()
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.set_window_size(1000, 720)
    with LoopbackServer(create_app(madre), lifespan="on", name="madre") as server:
        yield Site(madre, server.url, chromium)
        chromium.get("about:blank")  # close the page's event stream before the server stops


def test_a_plan_asked_through_the_api_appears_in_the_inbox_and_is_approved_on_its_page(
        site: Site, tmp_path: pathlib.Path) -> None:
    site.sign_in("bob")
    assert "Nothing waits for a human" in site.text()
    site.live()
    site.driver.execute_script("window.stillTheSamePage = true;")
    asked = site.ask("alice")
    card = site.wait_for_css(f'[data-plan="{asked["plan_id"]}"]')
    assert site.driver.execute_script("return window.stillTheSamePage === true;")  # no reload
    assert site.wait_for_css('[data-live="count"]').text.startswith("1")
    assert "alice" in card.text and "HIGH" in card.text and "expires in 1" in card.text
    assert {"Approve", "Reject"} <= set(site.buttons())
    shot = screenshot(site.driver, "console-inbox", tmp_path)
    card.find_element("css selector", "button.copy").click()  # the id, in one click
    site.wait_for_text(f"Copied {asked['plan_id']}")

    card.find_element("css selector", "a.plan-link").click()
    digest = site.wait_for_css("#approve-digest")
    assert digest.text == asked["plan_digest"]  # what Approve approves is shown
    site.driver.set_window_size(940, 860)  # the steps too, in under 100 KB
    plan_shot = screenshot(site.driver, "console-plan", tmp_path)
    site.driver.find_element("css selector", "button.approve").click()
    site.wait_for_css('[data-live="plan-head"] .status-done')
    assert final(site.madre, asked["plan_id"]).status is Status.DONE
    assert "bob approved" in site.text()
    for png in (shot, plan_shot):  # small enough to commit for the README
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 100_000


def test_an_approver_rejects_a_plan_with_a_reason_using_the_keyboard_only(site: Site) -> None:
    from selenium.webdriver.common.keys import Keys

    asked = site.ask("alice")
    site.sign_in("carol")
    body = site.driver.find_element("tag name", "body")
    for _ in range(60):  # Tab through the page to the reason field
        active = site.driver.switch_to.active_element
        if active.get_attribute("name") == "reason":
            break
        body.send_keys(Keys.TAB) if active.tag_name == "body" else active.send_keys(Keys.TAB)
    else:
        pytest.fail("Tab never reached the reason field")
    active.send_keys("the stems are the wrong ones", Keys.ENTER)
    site.wait_for_text("Rejected: the plan ended")
    plan = site.madre.get_plan(asked["plan_id"])
    assert plan.status is Status.ERROR and plan.reason == "rejected: the stems are the wrong ones"


def test_a_viewer_sees_no_buttons_and_watches_the_plan_run_when_someone_approves_it(
        site: Site) -> None:
    asked = site.ask("alice")
    site.sign_in("vic")
    site.wait_for_css(f'[data-plan="{asked["plan_id"]}"]')
    assert set(site.buttons()) <= {"Copy", "Sign out"}
    site.open(f"/console/plans/{asked['plan_id']}")
    site.wait_for_css('[data-live="plan-head"] .status-waiting')
    assert asked["plan_digest"][:12] in site.text()
    assert set(site.buttons()) <= {"Copy", "Sign out"}
    site.live()
    site.driver.execute_script("window.stillTheSamePage = true;")
    resp = requests.post(f"{site.url}/madre/plans/{asked['plan_id']}/approve", timeout=WAIT,
                         headers=as_principal("bob"), json={"plan_digest": asked["plan_digest"]})
    assert resp.status_code == 200, resp.text
    site.wait_for_css('[data-live="plan-head"] .status-done')  # the page follows the plan
    site.wait_for_text("bob approved")
    assert site.driver.execute_script("return window.stillTheSamePage === true;")


def test_a_form_sent_without_its_csrf_token_is_refused_and_nothing_changes(site: Site) -> None:
    asked = site.ask("alice")
    site.sign_in("bob")
    site.open(f"/console/plans/{asked['plan_id']}")
    site.wait_for_css("button.approve")
    site.driver.execute_script(
        "document.querySelectorAll('input[name=csrf]').forEach(i => i.remove());")
    site.driver.find_element("css selector", "button.approve").click()
    site.wait_for_text("no valid CSRF token")
    assert site.madre.get_plan(asked["plan_id"]).status is Status.WAITING


def test_the_cookie_never_holds_the_token_and_signing_out_ends_the_session(site: Site) -> None:
    site.sign_in("bob")
    [cookie] = [c for c in site.driver.get_cookies() if c["name"] == "madre_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expiry"]
    token = token_of("bob")
    payload = URLSafeTimedSerializer(SECRET, salt="madre.console.session").loads(cookie["value"])
    assert payload["name"] == "bob"
    for text in (cookie["value"], str(payload)):
        assert token not in text and hash_token(token) not in text
    assert "madre_console" not in site.driver.execute_script("return document.cookie;")

    site.driver.find_element("xpath", "//button[normalize-space()='Sign out']").click()
    site.wait_for_text("You signed out")
    site.open("/console")
    site.wait_for_css("#token")  # back to the sign-in form
    site.driver.execute_cdp_cmd("Network.setCookie", {
        "name": "madre_console", "value": cookie["value"], "url": site.url + "/console",
        "httpOnly": True, "sameSite": "Strict"})
    site.open("/console/plans")
    site.wait_for_css("#token")  # the old cookie opens nothing


def test_a_link_from_another_site_opens_the_plan_for_someone_signed_in(site: Site) -> None:
    asked = site.ask("alice")
    site.sign_in("bob")
    link = f"{site.url}/console/plans/{asked['plan_id']}"
    site.driver.get(f"data:text/html,<a id=go href='{link}'>the notification's link</a>")
    site.driver.find_element("id", "go").click()  # a cross-site navigation: no Strict cookie
    site.wait_for_css("#approve-digest")  # and yet the plan, not the sign-in form
    assert site.driver.current_url == link


def test_axe_finds_nothing_on_any_page_and_nothing_overflows_a_narrow_screen(site: Site) -> None:
    asked = site.ask("alice")
    site.open("/console/sign-in")
    site.wait_for_css("#token")
    pages = ["/console", "/console/plans", f"/console/plans/{asked['plan_id']}",
             "/console/health", "/console/no-such-page"]
    found = {"/console/sign-in": axe_violations(site.driver)}
    site.sign_in("root")
    for width in (1000, 360):
        site.driver.set_window_size(width, 720)
        for path in pages:
            site.open(path)
            site.wait_for_css("main h1")
            if width == 1000:
                found[path] = axe_violations(site.driver)
            wide = site.driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth;")
            assert wide <= 0, f"{path} is {wide}px wider than a {width}px window"
    assert {path: v for path, v in found.items() if v} == {}

"""Plain helpers of the console tests: read a page's forms and buttons, and a visitor that
signs in and posts forms as a browser would (urlencoded, with the page's CSRF token).

A visitor is a Starlette TestClient that follows no redirect, so each test sees the 303s.
"""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser
from typing import Any

from helpers import as_principal, ok_json, token_of
from starlette.testclient import TestClient

SECRET = "a console secret of at least thirty-two characters"


@dataclasses.dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]
    buttons: list[str]


class PageParser(HTMLParser):
    """The forms of a page (action, fields, button texts), every button's text or label,
    every form control and the labels that name them."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.buttons: list[dict[str, str]] = []  # attrs + "text"
        self.controls: list[dict[str, str]] = []  # input/select/textarea attrs
        self.labels_for: set[str] = set()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self._button: dict[str, str] | None = None
        self.h1 = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower(), {}, []))
        elif tag in ("input", "select", "textarea"):
            self.controls.append({"tag": tag, **a})
            if self.forms and a.get("name"):
                self.forms[-1].fields.setdefault(a["name"], a.get("value", ""))
        elif tag == "button":
            self._button = {**a, "text": ""}
        elif tag == "label" and a.get("for"):
            self.labels_for.add(a["for"])
        elif tag == "h1":
            self.h1 += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self._button["text"] = self._button["text"].strip()
            self.buttons.append(self._button)
            if self.forms:
                self.forms[-1].buttons.append(self._button["text"])
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data
        self.text.append(data)


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


def button_texts(html: str) -> list[str]:
    return [b["text"] for b in parse(html).buttons]


def form_for(html: str, action: str) -> Form:
    matching = [f for f in parse(html).forms if f.action == action]
    assert matching, f"no form posting to {action}"
    return matching[0]


class Visitor:
    """Someone with a browser: signs in with a token, opens pages, posts their forms."""

    def __init__(self, app: Any, base_url: str = "http://testserver") -> None:
        self.http = TestClient(app, base_url=base_url, follow_redirects=False)

    def __enter__(self) -> Visitor:
        self.http.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.__exit__(*exc)

    def sign_in(self, who: str | None = None, *, token: str | None = None) -> Any:
        """Post the sign-in form with `who`'s token (or `token`); the answer."""
        page = self.http.get("/console/sign-in")
        form = form_for(page.text, "/console/sign-in")
        return self.http.post("/console/sign-in", data={
            **form.fields, "token": token if token is not None else token_of(who or "")})

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.http.get(path, **kwargs)

    def page(self, path: str) -> str:
        resp = self.http.get(path)
        assert resp.status_code == 200, (resp.status_code, resp.headers.get("location"))
        return str(resp.text)

    def submit(self, page_path: str, action: str, **fields: str) -> Any:
        """Post the form of `page_path` that goes to `action`, with `fields` filled in."""
        form = form_for(self.page(page_path), action)
        return self.http.post(action, data={**form.fields, **fields})


def ask(http: Any, who: str = "alice", target: str = "shub", action: str = "delete"
        ) -> dict[str, Any]:
    """A plan asked for by `who` through the API, waiting for a human."""
    answer = ok_json(http.post("/madre/control", json={"target": target, "action": action},
                               headers=as_principal(who)))
    assert answer["status"] == "pending_confirmation", answer
    return answer

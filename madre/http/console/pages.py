"""The console as one table: each page's method, path, handler and who may reach it.

Console pages are HTML for people, not API: they are not in the OpenAPI document, and the
token middleware lets them through (they sign in by session cookie, checked here). Every
page but the sign-in form and `/` needs a session; a form needs its CSRF token too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from madre.http.console import actions, views
from madre.http.console.web import PREFIX, form_action, page
from madre.principals import Role

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class Page:
    method: str
    path: str  # the full path, as a browser asks for it
    summary: str
    endpoint: Endpoint


PAGES: tuple[Page, ...] = (
    Page("GET", "/", "Madre's address in a browser: on to the console", views.root),
    Page("GET", PREFIX, "The inbox: every plan waiting for a human", page(views.inbox)),
    Page("GET", f"{PREFIX}/plans", "Plans, newest first, with filters and pages",
         page(views.plans)),
    Page("GET", f"{PREFIX}/plans/{{plan_id}}", "One plan: steps, digest, approvals, history",
         page(views.plan)),
    Page("GET", f"{PREFIX}/health", "Modules, the Switch breaker, the instances",
         page(views.health)),
    Page("GET", f"{PREFIX}/events", "The event stream, for the pages' live updates",
         page(views.live, stream=True)),
    Page("GET", f"{PREFIX}/sign-in", "The sign-in form (a token in a password field)",
         actions.sign_in_form),
    Page("POST", f"{PREFIX}/sign-in", "Sign in: a token in, a session cookie out",
         actions.sign_in),
    Page("POST", f"{PREFIX}/sign-out", "Sign out: the session ends", form_action(actions.sign_out)),
    Page("POST", f"{PREFIX}/plans/{{plan_id}}/approve", "Approve the digest shown",
         form_action(actions.approve, Role.APPROVER)),
    Page("POST", f"{PREFIX}/plans/{{plan_id}}/reject", "Reject, with a reason",
         form_action(actions.reject, Role.APPROVER)),
    Page("POST", f"{PREFIX}/plans/{{plan_id}}/cancel", "Cancel a plan that has not ended",
         form_action(actions.cancel, Role.OPERATOR)),
)

OPEN_PATHS = frozenset({"/", PREFIX})
OPEN_PREFIX = PREFIX + "/"
"""What the token middleware lets through: these pages check the session themselves."""

"""What every console page shares: its dependencies, the session check, forms and their
CSRF token, the security headers, rendering, and errors as HTML pages.

A page handler gets the signed-in session (`page`); a form handler also gets the form,
after its CSRF token was checked (`form_action`). Without a session, a page redirects to
the sign-in form and shows nothing else; the event stream answers a bare 401.
"""

from __future__ import annotations

import dataclasses
import html
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from madre.errors import MadreError, NotFound
from madre.http.bodies import check_values, read_body
from madre.http.console import humane
from madre.http.console.session import Session, Sessions
from madre.http.errors import RequestRejected, status_of
from madre.principals import Role
from madre.runtime import Madre

log = logging.getLogger("madre.console")

PREFIX = "/console"
SIGN_IN = f"{PREFIX}/sign-in"
MAX_FORM_BYTES = 16 * 1024
READ = (Role.VIEWER, Role.SUBMITTER, Role.APPROVER, Role.OPERATOR)  # who may look

# No inline script or style anywhere: everything the pages run or wear is a file of the
# package, served from this origin.
CSP = "; ".join([
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'",
    "connect-src 'self'", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'",
])
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]

NOTICES = {  # ?notice=… after a form: fixed sentences, never text from the URL
    "approved": "Approved.",
    "rejected": "Rejected: the plan ended and nothing of it ran.",
    "cancelled": "Cancelled.",
    "signed_out": "You signed out.",
}


class ConsoleError(Exception):
    """Ends a console request with an HTML error page."""

    def __init__(self, status: int, detail: str, *, back: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.back = back


@dataclasses.dataclass(frozen=True)
class Console:
    """The console's dependencies: the running Madre, its sessions, its templates."""

    madre: Madre
    sessions: Sessions
    templates: Jinja2Templates
    https: bool  # MADRE_PUBLIC_URL is https: cookies are Secure whatever the hop says

    def secure(self, request: Request) -> bool:
        return self.https or request.url.scheme == "https"

    def cookie_name(self, request: Request) -> str:
        # __Host-: a Secure cookie the browser binds to this host and path "/".
        return "__Host-madre_console" if self.secure(request) else "madre_console"

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.read(request.cookies.get(self.cookie_name(request)))

    def set_session(self, response: Response, request: Request, value: str) -> None:
        response.set_cookie(self.cookie_name(request), value, max_age=int(self.sessions.lifetime),
                            path="/" if self.secure(request) else PREFIX,
                            secure=self.secure(request), httponly=True, samesite="strict")

    def clear_session(self, response: Response, request: Request) -> None:
        response.delete_cookie(self.cookie_name(request),
                               path="/" if self.secure(request) else PREFIX,
                               secure=self.secure(request), httponly=True, samesite="strict")


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.PackageLoader("madre.http.console", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(short=humane.short, absolute=humane.absolute, iso=humane.iso,
                       pretty=humane.pretty)
    env.globals.update(relative=humane.relative, duration=humane.duration, notices=NOTICES)
    return Jinja2Templates(env=env)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


class SecurityHeaders:
    """Adds the Content-Security-Policy and its companions to every console response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


# --------------------------------------------------------------------------- rendering


async def render(request: Request, name: str, session: Session | None, *, status: int = 200,
                 active: str = "", count: int | None = None, **values: Any) -> Response:
    """The template `name` with what every page shows (who is signed in, what they may do,
    the inbox `count`, read here unless given, the notice a form left); never cached,
    since it holds plan data."""
    console = console_of(request)
    madre = console.madre
    if session is not None and count is None:
        count = len(await run_in_threadpool(madre.pending))
    principal = session.principal if session else None
    context = {
        "session": session, "me": principal, "csrf": session.csrf if session else "",
        "may_approve": bool(principal and principal.may(Role.APPROVER)),
        "may_cancel": bool(principal and principal.may(Role.OPERATOR)),
        "pending_count": count, "now": madre.clock.now(), "active": active,
        "notice": NOTICES.get(request.query_params.get("notice", "")), **values,
    }
    return console.templates.TemplateResponse(
        request, name, context, status_code=status, headers={"Cache-Control": "no-store"})


def signed_in_path(raw: str | None) -> str:
    """Where to go after signing in: a console path of this server, else the inbox."""
    if raw:
        parts = urlsplit(raw)
        if (not parts.scheme and not parts.netloc and parts.path.startswith(PREFIX)
                and "\\" not in raw and raw.isprintable()):
            return raw
    return PREFIX


def to_sign_in(request: Request) -> Response:
    """303 to the sign-in form, coming back here (a page) or to the inbox (a form post)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = SIGN_IN if request.method != "GET" else f"{SIGN_IN}?next={quote(here, safe='')}"
    return RedirectResponse(target, status_code=303)


def come_again(request: Request) -> Response:
    """A link followed from another site (a notification, a chat) carries no SameSite=Strict
    cookie; this empty page asks for the same URL again from here, which does. Still
    without a session, that second request goes to the sign-in form."""
    here = html.escape(quote(request.url.path + (f"?{request.url.query}" if request.url.query
                                                   else ""), safe="/?=&%"))
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="0;url={here}"><title>Madre console</title>'
            f'</head><body><p><a href="{here}">Continue to the Madre console</a></p></body>'
            "</html>")
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


def see(path: str, notice: str | None = None) -> Response:
    """303 to `path` after a form (so reloading the page does not post it again)."""
    return RedirectResponse(path + (f"?notice={notice}" if notice else ""), status_code=303)


# --------------------------------------------------------------------------- pages and forms

PageHandler = Callable[[Request, Session], Awaitable[Response]]
FormHandler = Callable[[Request, Session, dict[str, str]], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def page(handler: PageHandler, *, stream: bool = False) -> Endpoint:
    """A page for signed-in principals who may read plans (a `stream` answers 401 without
    a session: a script reads it, not a person)."""

    async def endpoint(request: Request) -> Response:
        session = console_of(request).session_of(request)
        if session is None:
            if stream:
                return Response("sign in to the console first", status_code=401,
                                media_type="text/plain")
            if request.headers.get("sec-fetch-site") == "cross-site":
                return come_again(request)
            return to_sign_in(request)
        if not session.principal.may(*READ):
            raise ConsoleError(403, f"{session.principal.name} may not read plans: that "
                               "needs the role viewer, submitter, approver or operator")
        return await handler(request, session)

    return endpoint


async def read_form(request: Request) -> dict[str, str]:
    """A browser's form (urlencoded, at most MAX_FORM_BYTES): each field's first value."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, MAX_FORM_BYTES)
    if not body and not media:
        return {}  # an empty post: no fields (and so no CSRF token)
    if media != "application/x-www-form-urlencoded":
        raise ConsoleError(415, "Send the form from the console page (as "
                           "application/x-www-form-urlencoded).")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        raise ConsoleError(400, "The form could not be read; send it again from the "
                           "console page.") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    check_values(form)
    return form


def check_cross_site(request: Request) -> None:
    """A form sent from another site is refused, whatever it carries (the browser says)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise ConsoleError(403, "This form was sent from another site; use the console.")


def form_action(handler: FormHandler, *roles: Role) -> Endpoint:
    """A form post of a signed-in principal with one of `roles` (any, when none), carrying
    the session's CSRF token."""

    async def endpoint(request: Request) -> Response:
        console = console_of(request)
        session = console.session_of(request)
        if session is None:
            return to_sign_in(request)
        check_cross_site(request)
        form = await read_form(request)
        if not session.csrf_ok(form.get("csrf")):
            raise ConsoleError(403, "This form has no valid CSRF token (it is older than "
                               "your session, or did not come from the console). Reload "
                               "the page and try again.")
        if roles and not session.principal.may(*roles):
            wanted = " or ".join(r.value for r in roles)
            raise ConsoleError(403, f"{session.principal.name} may not do this: that needs "
                               f"the role {wanted}")
        return await handler(request, session, form)

    return endpoint


# --------------------------------------------------------------------------- errors


async def error_page(request: Request, status: int, detail: str,
                     back: str | None = None) -> Response:
    console = console_of(request)
    session = console.session_of(request)
    console_templates = console.templates
    context = {"status": status, "detail": detail, "back": back, "session": session,
               "me": session.principal if session else None,
               "csrf": session.csrf if session else "", "pending_count": None,
               "active": "", "notice": None}
    return console_templates.TemplateResponse(request, "error.html", context,
                                              status_code=status,
                                              headers={"Cache-Control": "no-store"})


async def on_console_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleError)
    return await error_page(request, exc.status, exc.detail, exc.back)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _back(request: Request, exc: Exception) -> str | None:
    """The plan page to go back to from a refused form on it."""
    plan_id = getattr(exc, "plan_id", None) or request.path_params.get("plan_id")
    if isinstance(exc, NotFound):
        return None
    return f"{PREFIX}/plans/{quote(plan_id, safe='')}" if isinstance(plan_id, str) else None


async def on_rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRejected)
    return await error_page(request, exc.status, _sentence(exc.detail), _back(request, exc))


async def on_madre_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MadreError)
    return await error_page(request, status_of(exc), _sentence(str(exc)), _back(request, exc))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = {404: f"There is no console page {request.url.path}.",
              405: f"{request.method} is not allowed on {request.url.path}."}.get(
        exc.status_code, str(exc.detail))
    return await error_page(request, exc.status_code, detail)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("console failed on %s %s", request.method, request.url.path)
    return await error_page(request, 500, "Madre failed while showing this page; the "
                            "operator log has details.")


EXCEPTION_HANDLERS = {
    ConsoleError: on_console_error,
    RequestRejected: on_rejected,
    MadreError: on_madre_error,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}

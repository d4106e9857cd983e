"""The console's forms: sign in, sign out, approve, reject, cancel.

Each is a plain HTML form posted to one of these, answered with a 303 to the page to see
next (so a reload never posts it twice), or an HTML error page saying what went wrong.
Approve, reject and cancel make the same call on the running Madre as the API routes, as
the signed-in principal, with the same refusals (`plan_changed`, `self_approval`, …).
"""

from __future__ import annotations

import functools
import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from madre.contracts.commands import ApproveRequest, CancelRequest, RejectRequest
from madre.http.bodies import validate
from madre.http.console.session import Session
from madre.http.console.web import (
    PREFIX,
    READ,
    check_cross_site,
    console_of,
    read_form,
    render,
    see,
    signed_in_path,
)
from madre.http.query import path_plan_id

log = logging.getLogger("madre.console")

SIGN_IN_COOKIE = "madre_console_sign_in"
BACK = {"inbox": PREFIX}  # where a form may say to go back to, besides its plan's page


async def _sign_in_page(request: Request, *, status: int = 200, error: str | None = None,
                        next_path: str = PREFIX) -> Response:
    console = console_of(request)
    nonce, cookie = console.sessions.sign_in_form()
    response = await render(request, "sign_in.html", None, status=status, form_csrf=nonce,
                            error=error, next_path=next_path)
    response.set_cookie(SIGN_IN_COOKIE, cookie, max_age=3600, path=f"{PREFIX}/sign-in",
                        secure=console.secure(request), httponly=True, samesite="strict")
    return response


async def sign_in_form(request: Request) -> Response:
    next_path = signed_in_path(request.query_params.get("next"))
    if console_of(request).session_of(request) is not None:
        return see(next_path)
    return await _sign_in_page(request, next_path=next_path)


async def sign_in(request: Request) -> Response:
    """A token in, a session cookie out; the token itself is kept nowhere."""
    console = console_of(request)
    check_cross_site(request)
    form = await read_form(request)
    next_path = signed_in_path(form.get("next"))
    if not console.sessions.sign_in_ok(request.cookies.get(SIGN_IN_COOKIE), form.get("csrf")):
        return await _sign_in_page(request, status=403, next_path=next_path,
                                   error="This sign-in form is out of date; try again.")
    principal = console.madre.principals.find(form.get("token", "")) if form.get(
        "token") else None
    if principal is None:
        log.info("console sign-in refused: unknown token")
        return await _sign_in_page(request, status=401, next_path=next_path,
                                   error="That is not a token this server knows.")
    if not principal.may(*READ):
        return await _sign_in_page(
            request, status=403, next_path=next_path,
            error=f"{principal.name} may not use the console: it needs the role viewer, "
                  "submitter, approver or operator.")
    value, _ = console.sessions.issue(principal)
    log.info("console sign-in", extra={"actor": principal.name})
    response = see(next_path)
    console.set_session(response, request, value)
    response.delete_cookie(SIGN_IN_COOKIE, path=f"{PREFIX}/sign-in",
                           secure=console.secure(request), httponly=True, samesite="strict")
    return response


async def sign_out(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    console.sessions.end(session)
    log.info("console sign-out", extra={"actor": session.principal.name})
    response = see(f"{PREFIX}/sign-in", "signed_out")
    console.clear_session(response, request)
    return response


def _after(form: dict[str, str], plan_id: str) -> str:
    return BACK.get(form.get("back", ""), f"{PREFIX}/plans/{plan_id}")


async def approve(request: Request, session: Session, form: dict[str, str]) -> Response:
    plan_id = path_plan_id(str(request.path_params["plan_id"]))
    body = validate(ApproveRequest, {"plan_digest": form.get("plan_digest", ""),
                                     "comment": form.get("comment") or None})
    await run_in_threadpool(functools.partial(
        console_of(request).madre.approve, plan_id, body.plan_digest,
        principal=session.principal, comment=body.comment))
    return see(_after(form, plan_id), "approved")


async def reject(request: Request, session: Session, form: dict[str, str]) -> Response:
    plan_id = path_plan_id(str(request.path_params["plan_id"]))
    body = validate(RejectRequest, {"reason": form.get("reason", "")})
    await run_in_threadpool(functools.partial(
        console_of(request).madre.reject, plan_id, body.reason, principal=session.principal))
    return see(_after(form, plan_id), "rejected")


async def cancel(request: Request, session: Session, form: dict[str, str]) -> Response:
    plan_id = path_plan_id(str(request.path_params["plan_id"]))
    body = validate(CancelRequest, {"reason": form.get("reason") or None})
    await run_in_threadpool(functools.partial(
        console_of(request).madre.cancel, plan_id, principal=session.principal,
        reason=body.reason))
    return see(_after(form, plan_id), "cancelled")

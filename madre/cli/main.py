"""The `madre` command: a client of a running Madre over HTTP (`madre.cli.client`), printing
tables for people and, with --json, the server's JSON for scripts; and the commands that run
things here (`serve`, `modules`, `audit verify`: `madre.cli.local`).

Exit codes of the client commands: 0 done; 1 the server refused (its error and detail on
stderr; a denied control too); 2 usage; 3 the server could not be reached. `audit verify`:
0 the trail is intact, 1 it is broken, 2 there is no trail at that path.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from madre.cli import output as out
from madre.cli.client import DEFAULT_TIMEOUT, DEFAULT_URL, REFUSED
from madre.cli.options import (
    Connection,
    client_command,
    conn,
    key_values,
    print_json,
    print_lines,
    style,
)
from madre.cli.tail import TAIL_SILENCE, Filters, Follower
from madre.contracts import MAX_PAGE
from madre.model import Status
from madre.settings import DEFAULT_TOKEN
from madre.version import __version__

STATUSES = tuple(s.value for s in Status)


@click.group()
@click.version_option(__version__, prog_name="madre")
@click.option("--url", envvar="MADRE_URL", default=DEFAULT_URL, show_default=True,
              show_envvar=True, help="the Madre server the client commands talk to")
@click.option("--token", envvar="VX11_TOKEN", default=DEFAULT_TOKEN, show_envvar=True,
              help="the server's token, sent as X-VX11-Token  [default: vx11-local-token]")
@click.option("--json", "as_json", is_flag=True,
              help="print the server's JSON answer instead of text, for scripts")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=DEFAULT_TIMEOUT,
              show_default=True, help="seconds to wait for an answer")
@click.pass_context
def main(ctx: click.Context, url: str, token: str, as_json: bool, timeout: float) -> None:
    """Madre, the orchestrator of the VX11 services.

    `serve` runs Madre; `chat`, `control`, `plans`, `show`, `pending`, `approve`, `reject`,
    `confirm`, `cancel`, `tail` and `health` talk to a running one at --url (MADRE_URL) with
    --token (VX11_TOKEN); `audit verify` checks the forensic trail on disk; `principals`
    makes the entries of a principals file.
    """
    ctx.obj = Connection(url=url, token=token, as_json=as_json, timeout=timeout)


@main.command()
@click.argument("message")
@click.option("--session", "session_id", metavar="ID",
              help="continue this session (its mode is remembered); a new one is minted if not")
@click.option("--dry-run", is_flag=True, help="plan only: show the steps, run nothing")
@client_command
def chat(message: str, session_id: str | None, dry_run: bool) -> None:
    """Send MESSAGE to Madre in natural language; print the outcome and each step's result."""
    connection = conn()
    with connection.client() as client:
        answer = client.chat(message, session_id=session_id, dry_run=dry_run)
    if connection.as_json:
        print_json(answer)
    else:
        print_lines(out.render_chat(answer, style()))


@main.command()
@click.argument("target")
@click.argument("action")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", callback=key_values,
              help="a parameter for the module (repeatable); VALUE is read as JSON when it is")
@click.option("--token-confirm", "confirm_token", metavar="TOKEN",
              help="confirm the plan this token was issued for, instead of a new order")
@click.option("--plan", "plan_id", metavar="ID", help="the plan --token-confirm confirms")
@click.option("--session", "session_id", metavar="ID", help="record the order in this session")
@client_command
def control(target: str, action: str, params: dict[str, Any], confirm_token: str | None,
            plan_id: str | None, session_id: str | None) -> None:
    """Order ACTION on the module TARGET: `madre control shub delete`.

    LOW risk runs at once; MED and HIGH print a confirm token and the `madre confirm` command
    to run next. An order Madre denies exits 1.
    """
    connection = conn()
    with connection.client() as client:
        answer = client.control(target, action, params=params, confirm_token=confirm_token,
                                plan_id=plan_id, session_id=session_id)
    if connection.as_json:
        print_json(answer)
    else:
        print_lines(out.render_control(answer, style()))
    if answer.get("status") == "denied":
        if connection.as_json:
            click.echo(f"madre: denied: {answer.get('reason') or 'Madre refused this order'}",
                       err=True)
        sys.exit(REFUSED)


@main.command()
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False),
              help="only plans in this status")
@click.option("--session", "session_id", metavar="ID", help="only plans of this session")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE),
              help="plans per page (the server's default is 50)")
@click.option("--all", "every", is_flag=True, help="follow the pages to the last plan")
@client_command
def plans(status: str | None, session_id: str | None, limit: int | None, every: bool) -> None:
    """List plans, newest first."""
    connection = conn()
    status = status.upper() if status else None
    with connection.client() as client:
        if every:
            found = list(client.iter_plans(status=status, session_id=session_id,
                                           limit=limit or MAX_PAGE))
            page: dict[str, Any] = {"plans": found, "next_cursor": None}
        else:
            page = client.list_plans(status=status, session_id=session_id, limit=limit)
    if connection.as_json:
        print_json(page)
        return
    print_lines(out.render_plans(page["plans"], style()))
    if page.get("next_cursor"):
        click.echo("more plans: add --all to list them all", err=True)


@main.command()
@click.argument("plan_id", metavar="PLAN")
@client_command
def show(plan_id: str) -> None:
    """Show PLAN: its intent, every step and its result, the confirmation, the history."""
    connection = conn()
    with connection.client() as client:
        plan = client.get_plan(plan_id)
    if connection.as_json:
        print_json(plan)
    else:
        print_lines(out.render_plan(plan, style()))


# A token is URL-safe base64 and may start with "-" (1 in 64): read it as the TOKEN argument,
# never as an unknown option, so the `madre confirm PLAN TOKEN` line Madre prints always works.
@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("plan_id", metavar="PLAN")
@click.argument("token")
@client_command
def confirm(plan_id: str, token: str) -> None:
    """Confirm PLAN with the TOKEN it was issued; the plan runs, and this waits for it."""
    connection = conn()
    with connection.client() as client:
        answer = client.confirm(plan_id, token)
    if connection.as_json:
        print_json(answer)
    else:
        print_lines(out.render_confirm(answer, style()))


@main.command()
@click.argument("plan_id", metavar="PLAN")
@click.option("--reason", metavar="TEXT", help="why, recorded with the cancellation")
@click.option("--by", "by", metavar="WHO", help="who asks, recorded in the audit trail")
@client_command
def cancel(plan_id: str, reason: str | None, by: str | None) -> None:
    """Cancel PLAN: if it has not finished, it ends in ERROR with the reason `cancelled`.

    A step already running finishes at its module, but its result is ignored; a pending
    confirmation token stops working; a Spawner job's later report changes nothing.
    """
    connection = conn()
    with connection.client() as client:
        answer = client.cancel(plan_id, reason=reason, by=by)
    if connection.as_json:
        print_json(answer)
    else:
        print_lines(out.render_cancel(answer, style()))


@main.command()
@client_command
def pending() -> None:
    """What waits for a human: each plan's risk, approvals so far, who asked, expiry."""
    connection = conn()
    with connection.client() as client:
        answer = client.pending()
    if connection.as_json:
        print_json(answer)
    else:
        print_lines(out.render_pending(answer["plans"], style()))


@main.command()
@click.argument("plan_id", metavar="PLAN")
@click.option("--comment", metavar="TEXT", help="recorded with the approval")
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="approve without asking")
@client_command
def approve(plan_id: str, comment: str | None, assume_yes: bool) -> None:
    """Approve PLAN: print what will run and its digest, ask y/N, approve that digest.

    The approval names the digest shown: if the plan changed meanwhile, Madre refuses it
    (plan_changed) and nothing runs. A HIGH plan may need more than one approver.
    """
    connection = conn()
    with connection.client() as client:
        found = client.pending(plan_id=plan_id)["plans"]
        if not found:
            plan = client.get_plan(plan_id)  # a 404 for an unknown plan
            click.echo(f"madre: plan {plan_id} is {plan.get('status')}: it does not wait for "
                       "approval", err=True)
            sys.exit(REFUSED)
        shown = found[0]
        if not connection.as_json:
            print_lines(out.render_preview(shown, style()))
        if not assume_yes and not click.confirm(f"Approve plan {plan_id}?", default=False,
                                                err=connection.as_json):
            click.echo("madre: not approved; nothing was sent", err=True)
            sys.exit(REFUSED)
        answer = client.approve(plan_id, shown["plan_digest"], comment=comment)
    if connection.as_json:
        print_json(answer)
    else:
        print_lines(out.render_approve(answer, style()))


@main.command()
@click.argument("plan_id", metavar="PLAN")
@click.option("--reason", metavar="TEXT", required=True, help="why: the plan's reason")
@click.option("--token-confirm", "confirm_token", metavar="TOKEN",
              help="the plan's confirm token, when you hold it and are no approver")
@client_command
def reject(plan_id: str, reason: str, confirm_token: str | None) -> None:
    """Reject PLAN, waiting for approval: it ends in ERROR (`rejected: REASON`) and nothing
    of it runs."""
    connection = conn()
    with connection.client() as client:
        answer = client.reject(plan_id, reason, confirm_token=confirm_token)
    if connection.as_json:
        print_json(answer)
    else:
        print_lines(out.render_reject(answer, style()))


RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0  # seconds between reconnection attempts of `tail`


@main.command()
@click.option("--plan", "plan_id", metavar="ID", help="only this plan's events")
@click.option("--session", "session_id", metavar="ID", help="only this session's events")
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False),
              help="only events after which the plan is in this status")
@click.option("--since", type=click.IntRange(min=0), metavar="ID",
              help="first the events after event ID (0: everything recorded), then follow")
@click.option("--count", type=click.IntRange(min=1), metavar="N",
              help="stop after N events")
@client_command
def tail(plan_id: str | None, session_id: str | None, status: str | None, since: int | None,
         count: int | None) -> None:
    """Follow what Madre does, one line per event: time, plan, action, status, reason.

    Reads GET /madre/events. When the connection drops, or Madre restarts, it reconnects and
    goes on after the last event it printed (Last-Event-ID), so nothing is missed or
    repeated. Ctrl-C stops it. With --json, each event is one line of JSON.
    """
    connection = conn()
    filters = Filters(plan_id, session_id, status.upper() if status else None)
    try:
        with connection.client() as client:
            Follower(client, filters, connection.url, connection.as_json, style(),
                     read_timeout=max(connection.timeout, TAIL_SILENCE), last=since,
                     count=count).run()
    except KeyboardInterrupt:
        return
    except BrokenPipeError:  # `madre tail | head`: the reader is gone, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@main.command()
@client_command
def health() -> None:
    """Is Madre up, and its database and modules (no token needed)."""
    connection = conn()
    with connection.client() as client:
        answer = client.health()
    if connection.as_json:
        print_json(answer)
    else:
        print_lines(out.render_health(answer, style()))


@main.command()
@client_command
def instances() -> None:
    """The Madre instances alive on the server's database (one on SQLite)."""
    connection = conn()
    with connection.client() as client:
        answer = client.instances()
    if connection.as_json:
        print_json(answer)
    else:
        print_lines(out.render_instances(answer, style()))


def _register_local_commands() -> None:
    from madre.cli.local import audit, db, modules, serve
    from madre.cli.principals import principals

    for command in (audit, db, serve, modules, principals):
        main.add_command(command)


_register_local_commands()

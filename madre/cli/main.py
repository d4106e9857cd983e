"""The `madre` command: a client of a running Madre over HTTP (the typed `madre.client`),
printing tables for people and, with --json, the server's JSON for scripts; and the commands
that run things here (`serve`, `modules`, `audit verify`, `config show`: `madre.cli.local`).

Exit codes (EXIT_CODES, also in `madre --help`): 0 done; 1 it did not work — the server
refused (its error and detail on stderr), Madre denied the order, the plan ended ERROR
(chat, confirm), Madre is degraded (health); 2 usage; 3 the server could not be reached.
`audit verify`: 0 the trail is intact, 1 it is broken, 2 there is no trail at that path.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from pydantic import BaseModel

from madre.cli import output as out
from madre.cli.options import (
    Connection,
    PositionalsLast,
    client_command,
    conn,
    fail,
    key_values,
    print_json,
    print_lines,
    style,
    width,
)
from madre.cli.tail import TAIL_SILENCE, Filters, Follower
from madre.client import DEFAULT_TIMEOUT, DEFAULT_URL, REFUSED
from madre.contracts.fields import MAX_PAGE
from madre.contracts.intake import ControlStatus
from madre.contracts.plans import PlanList
from madre.model import Status
from madre.settings import DEFAULT_TOKEN
from madre.version import __version__

STATUSES = tuple(s.value for s in Status)
CONTEXT = {"help_option_names": ["-h", "--help"]}  # inherited by every subcommand

EXIT_CODES = """\b
Exit codes:
  0  done
  1  it did not work: the server refused (its error on stderr), Madre denied
     the order, the plan ended ERROR (chat, confirm), Madre is degraded (health)
  2  usage: a wrong option or argument
  3  the server could not be reached (cannot reach Madre at URL: ...)
\b
audit verify: 0 intact, 1 broken (BROKEN at FILE:LINE: why), 2 no trail there."""


def _data(model: BaseModel) -> dict[str, Any]:
    """An answer as the JSON the server sent (what --json prints and the tables read)."""
    return model.model_dump(mode="json")


def _show(data: dict[str, Any], lines: list[str]) -> None:
    """--json: the answer's JSON; else the lines for a person."""
    if conn().as_json:
        print_json(data)
    else:
        print_lines(lines)


@click.group(context_settings=CONTEXT, epilog=EXIT_CODES)
@click.version_option(__version__, "-V", "--version", prog_name="madre")
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

    `serve` runs Madre and `modules` stand-ins of the other services; `chat`, `control`,
    `intent`, `plans`, `show`, `pending`, `approve`, `reject`, `confirm`, `cancel`, `tail`,
    `health` and `instances` talk to a running one at --url (MADRE_URL) with --token
    (VX11_TOKEN); `audit verify` checks the forensic trail on disk; `db` shows and migrates
    the schema; `config show` prints the settings in force here; `principals` makes the
    entries of a principals file.
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
    with conn().client() as client:
        answer = client.chat(message, session_id=session_id, dry_run=dry_run)
    data = _data(answer)
    _show(data, out.render_chat(data, style(), width()))
    if answer.status is Status.ERROR:
        fail("the plan was denied: nothing runs" if answer.plan_id is None
             else f"the plan ended ERROR: {answer.response}")


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
    with conn().client() as client:
        answer = client.control(target, action, params=params, confirm_token=confirm_token,
                                plan_id=plan_id, session_id=session_id)
    data = _data(answer)
    _show(data, out.render_control(data, style()))
    if answer.status is ControlStatus.DENIED:
        fail(f"denied: {answer.reason or 'Madre refused this order'}")


@main.command()
@click.argument("text", required=False)
@click.option("--action", metavar="ACTION", help="what to do, as given (no parsing)")
@click.option("--target", metavar="MODULE", help="the module the action is for")
@click.option("--domain", metavar="DOMAIN", help="the domain, when not the target's")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", callback=key_values,
              help="a parameter (repeatable); VALUE is read as JSON when it is")
@click.option("--source", default="cli", show_default=True,
              help="who sends it (hormiguero, operator, a webhook's name, ...)")
@click.option("--session", "session_id", metavar="ID", help="record it in this session")
@click.option("--correlation-id", metavar="ID",
              help="the caller's id: sending the same one again returns the first answer")
@client_command
def intent(text: str | None, action: str | None, target: str | None, domain: str | None,
           params: dict[str, Any], source: str, session_id: str | None,
           correlation_id: str | None) -> None:
    """Submit a structured intent, as Hormiguero or a webhook does: TEXT to parse, or
    --action (with --target) as given. It does not wait for the plan: follow it with
    `madre show PLAN`. A MED or HIGH intent prints its confirm token; a denied one exits 1.
    """
    if text is None and action is None:
        raise click.UsageError("give TEXT to parse, or --action (with --target)")
    with conn().client() as client:
        answer = client.intent(source=source, text=text, action=action, target=target,
                               domain=domain, params=params or None, session_id=session_id,
                               correlation_id=correlation_id)
    data = _data(answer)
    _show(data, out.render_intent(data, style()))
    if answer.plan_id is None and answer.status is Status.ERROR:
        fail("denied: Madre refused this intent; nothing runs")


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
    status = status.upper() if status else None
    with conn().client() as client:
        if every:
            found = list(client.iter_plans(status=status, session_id=session_id,
                                           limit=limit or MAX_PAGE))
            page = PlanList(plans=found, next_cursor=None)
        else:
            page = client.list_plans(status=status, session_id=session_id, limit=limit)
    data = _data(page)
    _show(data, out.render_plans(data["plans"], style(), width()))
    if page.next_cursor and not conn().as_json:
        click.echo("more plans: add --all to list them all", err=True)


@main.command()
@click.argument("plan_id", metavar="PLAN")
@client_command
def show(plan_id: str) -> None:
    """Show PLAN: its intent, every step and its result, the confirmation, the history."""
    with conn().client() as client:
        plan = _data(client.get_plan(plan_id))
    _show(plan, out.render_plan(plan, style(), width()))


# A token is URL-safe base64 and may start with "-" (1 in 64), and may then hold an "h":
# read it as the TOKEN argument, never as options (`-h` would print the help and exit 0),
# so the `madre confirm PLAN TOKEN` line Madre prints always works.
@main.command(cls=PositionalsLast)
@click.argument("plan_id", metavar="PLAN")
@click.argument("token")
@client_command
def confirm(plan_id: str, token: str) -> None:
    """Confirm PLAN with the TOKEN it was issued; the plan runs, and this waits for it.
    Exits 1 when the plan ended ERROR."""
    with conn().client() as client:
        answer = client.confirm(plan_id, token)
    data = _data(answer)
    _show(data, out.render_confirm(data, style()))
    if answer.plan_status is Status.ERROR:
        fail(f"the plan ended ERROR; see why: madre show {plan_id}")


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
    with conn().client() as client:
        data = _data(client.cancel(plan_id, reason=reason, by=by))
    _show(data, out.render_cancel(data, style()))


@main.command()
@client_command
def pending() -> None:
    """What waits for a human: each plan's risk, approvals so far, who asked, expiry."""
    with conn().client() as client:
        data = _data(client.pending())
    _show(data, out.render_pending(data["plans"], style()))


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
        found = _data(client.pending(plan_id=plan_id))["plans"]
        if not found:
            plan = client.get_plan(plan_id)  # a 404 for an unknown plan
            click.echo(f"madre: plan {plan_id} is {plan.status}: it does not wait for "
                       "approval", err=True)
            sys.exit(REFUSED)
        shown = found[0]
        if not connection.as_json:
            print_lines(out.render_preview(shown, style()))
        if not assume_yes and not click.confirm(f"Approve plan {plan_id}?", default=False,
                                                err=connection.as_json):
            click.echo("madre: not approved; nothing was sent", err=True)
            sys.exit(REFUSED)
        data = _data(client.approve(plan_id, shown["plan_digest"], comment=comment))
    _show(data, out.render_approve(data, style()))


@main.command()
@click.argument("plan_id", metavar="PLAN")
@click.option("--reason", metavar="TEXT", required=True, help="why: the plan's reason")
@click.option("--token-confirm", "confirm_token", metavar="TOKEN",
              help="the plan's confirm token, when you hold it and are no approver")
@client_command
def reject(plan_id: str, reason: str, confirm_token: str | None) -> None:
    """Reject PLAN, waiting for approval: it ends in ERROR (`rejected: REASON`) and nothing
    of it runs."""
    with conn().client() as client:
        data = _data(client.reject(plan_id, reason, confirm_token=confirm_token))
    _show(data, out.render_reject(data, style()))




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
    """Is Madre up, and its database and modules (no token needed). Exits 1 when Madre is
    degraded (its database or a module is down)."""
    with conn().client() as client:
        answer = client.health()
    data = _data(answer)
    _show(data, out.render_health(data, style()))
    if answer.status != "ok":
        down = [name for name, state in {**answer.deps, "db": answer.db}.items()
                if state == "down"]
        fail(f"Madre is {answer.status}: down: {', '.join(down) or '-'}")


@main.command()
@client_command
def instances() -> None:
    """The Madre instances alive on the server's database (one on SQLite)."""
    with conn().client() as client:
        data = _data(client.instances())
    _show(data, out.render_instances(data, style()))


def _register_local_commands() -> None:
    from madre.cli.local import audit, config, db, modules, serve
    from madre.cli.principals import principals

    for command in (audit, config, db, serve, modules, principals):
        main.add_command(command)


_register_local_commands()

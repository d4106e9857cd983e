"""The `madre` command: `serve` and `modules` run things; `audit verify` checks the forensic
trail on disk; the other commands are a client of a running Madre over HTTP
(`madre.cli.client`), printing tables for people and, with --json, the server's JSON for scripts.

Exit codes of the client commands: 0 done; 1 the server refused (its error and detail on
stderr; a denied control too); 2 usage; 3 the server could not be reached. `audit verify`:
0 the trail is intact, 1 it is broken, 2 there is no trail at that path.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from madre.cli import output as out
from madre.cli.client import (
    DEFAULT_TIMEOUT,
    DEFAULT_TOKEN,
    DEFAULT_URL,
    REFUSED,
    UNREACHABLE,
    ClientError,
    MadreClient,
    StreamLost,
)
from madre.errors import ConfigError
from madre.settings import Settings, load_settings
from madre.version import __version__

F = TypeVar("F", bound=Callable[..., Any])
STATUSES = ("PENDING", "RUNNING", "WAITING", "DONE", "ERROR")


@dataclasses.dataclass
class Connection:
    """Where the client commands find Madre, and how they answer (from the options)."""

    url: str = DEFAULT_URL
    token: str = DEFAULT_TOKEN
    as_json: bool = False
    timeout: float = DEFAULT_TIMEOUT

    def client(self) -> MadreClient:
        return MadreClient(self.url, self.token, self.timeout)


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

    `serve` runs Madre; `chat`, `control`, `plans`, `show`, `confirm`, `cancel`, `tail` and
    `health` talk to a running one at --url (MADRE_URL) with --token (VX11_TOKEN); `audit
    verify` checks the forensic trail on disk.
    """
    ctx.obj = Connection(url=url, token=token, as_json=as_json, timeout=timeout)


# --------------------------------------------------------------------------- client plumbing


def _override(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """An option callback: a value given after the subcommand wins over the group's."""
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            setattr(ctx.ensure_object(Connection), field, value)

    return callback


def client_command(f: F) -> F:
    """Accept the connection options after the subcommand too (`madre plans --json`), and
    turn a ClientError into its message on stderr and its exit code."""
    options = [
        click.option("--url", "conn_url", default=None, expose_value=False,
                     callback=_override("url"), help="the Madre server (overrides MADRE_URL)"),
        click.option("--token", "conn_token", default=None, expose_value=False,
                     callback=_override("token"), help="the server's token (overrides VX11_TOKEN)"),
        click.option("--json", "conn_json", is_flag=True, default=False, expose_value=False,
                     callback=_override("as_json"), help="print the server's JSON answer"),
        click.option("--timeout", "conn_timeout", type=click.FloatRange(min=0.1),
                     default=None, expose_value=False, callback=_override("timeout"),
                     help="seconds to wait for an answer"),
    ]

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        conn = click.get_current_context().find_object(Connection) or Connection()
        try:
            return f(*args, **kwargs)
        except ClientError as exc:
            if conn.as_json and isinstance(exc.body, dict):
                _print_json(exc.body)
            click.echo(f"madre: {exc.message}", err=True)
            sys.exit(exc.exit_code)

    for option in reversed(options):
        run = option(run)
    return run  # type: ignore[return-value]


def _conn() -> Connection:
    return click.get_current_context().ensure_object(Connection)


def _style() -> out.Styler:
    return out.styler(out.colour_enabled(sys.stdout))


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _print(lines: list[str]) -> None:
    click.echo("\n".join(lines))


def _params(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
            ) -> dict[str, Any]:
    """`--param k=v` pairs as a dict; a value is read as JSON when it is JSON (3, true, [1,2],
    {"a":1}, null), else kept as text."""
    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: write it as KEY=VALUE", ctx=ctx, param=param)
        try:
            params[key.strip()] = json.loads(raw)
        except ValueError:
            params[key.strip()] = raw
    return params


# --------------------------------------------------------------------------- client commands


@main.command()
@click.argument("message")
@click.option("--session", "session_id", metavar="ID",
              help="continue this session (its mode is remembered); a new one is minted if not")
@click.option("--dry-run", is_flag=True, help="plan only: show the steps, run nothing")
@client_command
def chat(message: str, session_id: str | None, dry_run: bool) -> None:
    """Send MESSAGE to Madre in natural language; print the outcome and each step's result."""
    conn = _conn()
    with conn.client() as client:
        answer = client.chat(message, session_id=session_id, dry_run=dry_run)
    if conn.as_json:
        _print_json(answer)
    else:
        _print(out.render_chat(answer, _style()))


@main.command()
@click.argument("target")
@click.argument("action")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", callback=_params,
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
    conn = _conn()
    with conn.client() as client:
        answer = client.control(target, action, params=params, confirm_token=confirm_token,
                                plan_id=plan_id, session_id=session_id)
    if conn.as_json:
        _print_json(answer)
    else:
        _print(out.render_control(answer, _style()))
    if answer.get("status") == "denied":
        if conn.as_json:
            click.echo(f"madre: denied: {answer.get('reason') or 'Madre refused this order'}",
                       err=True)
        sys.exit(REFUSED)


@main.command()
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False),
              help="only plans in this status")
@click.option("--session", "session_id", metavar="ID", help="only plans of this session")
@click.option("--limit", type=click.IntRange(1, 200),
              help="plans per page (the server's default is 50)")
@click.option("--all", "every", is_flag=True, help="follow the pages to the last plan")
@client_command
def plans(status: str | None, session_id: str | None, limit: int | None, every: bool) -> None:
    """List plans, newest first."""
    conn = _conn()
    status = status.upper() if status else None
    with conn.client() as client:
        if every:
            found = list(client.iter_plans(status=status, session_id=session_id,
                                           limit=limit or 200))
            page: dict[str, Any] = {"plans": found, "next_cursor": None}
        else:
            page = client.list_plans(status=status, session_id=session_id, limit=limit)
    if conn.as_json:
        _print_json(page)
        return
    _print(out.render_plans(page["plans"], _style()))
    if page.get("next_cursor"):
        click.echo("more plans: add --all to list them all", err=True)


@main.command()
@click.argument("plan_id", metavar="PLAN")
@client_command
def show(plan_id: str) -> None:
    """Show PLAN: its intent, every step and its result, the confirmation, the history."""
    conn = _conn()
    with conn.client() as client:
        plan = client.get_plan(plan_id)
    if conn.as_json:
        _print_json(plan)
    else:
        _print(out.render_plan(plan, _style()))


# A token is URL-safe base64 and may start with "-" (1 in 64): read it as the TOKEN argument,
# never as an unknown option, so the `madre confirm PLAN TOKEN` line Madre prints always works.
@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("plan_id", metavar="PLAN")
@click.argument("token")
@client_command
def confirm(plan_id: str, token: str) -> None:
    """Confirm PLAN with the TOKEN it was issued; the plan runs, and this waits for it."""
    conn = _conn()
    with conn.client() as client:
        answer = client.confirm(plan_id, token)
    if conn.as_json:
        _print_json(answer)
    else:
        _print(out.render_confirm(answer, _style()))


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
    conn = _conn()
    with conn.client() as client:
        answer = client.cancel(plan_id, reason=reason, by=by)
    if conn.as_json:
        _print_json(answer)
    else:
        _print(out.render_cancel(answer, _style()))


RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0  # seconds between reconnection attempts of `tail`
TAIL_SILENCE = 45.0  # seconds without a byte (the server pings every 15 s) = a dead connection


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
    conn = _conn()
    style = _style()
    last: int | str | None = since
    printed = 0
    followed = False
    delay = RECONNECT_FIRST
    try:
        with conn.client() as client:
            while True:
                try:
                    stream = client.events(plan_id=plan_id, session_id=session_id,
                                           status=status.upper() if status else None,
                                           last_event_id=last,
                                           read_timeout=max(conn.timeout, TAIL_SILENCE))
                except ClientError as exc:
                    passing = exc.exit_code == UNREACHABLE or (exc.status or 0) >= 500
                    if not followed or not passing:
                        raise  # nothing to follow, or refused for good: say why and exit
                    click.echo(f"madre: {exc.message}; retrying in {delay:g} s", err=True)
                    time.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX)
                    continue
                delay = RECONNECT_FIRST
                if followed:
                    click.echo(f"madre: reconnected; going on after event {last}", err=True)
                else:
                    click.echo(f"madre: following events at {conn.url} (Ctrl-C stops)", err=True)
                    followed = True
                resume = False
                with stream:
                    try:
                        for event in stream:
                            data = event.json()
                            if event.event == "dropped":
                                last = data.get("resume_with_last_event_id", last)
                                click.echo(f"madre: the server dropped this stream "
                                           f"({data.get('reason')}); resuming after event "
                                           f"{last}", err=True)
                                resume = True
                                break
                            last = event.id if event.id is not None else last
                            if conn.as_json:
                                click.echo(json.dumps(data, ensure_ascii=False))
                            else:
                                click.echo(out.render_event(data, style))
                            printed += 1
                            if count is not None and printed >= count:
                                return
                        else:
                            click.echo("madre: the server ended the stream (stopping?); "
                                       "reconnecting", err=True)
                    except StreamLost as exc:
                        click.echo(f"madre: {exc.message}; reconnecting", err=True)
                if not resume:
                    time.sleep(delay)
    except KeyboardInterrupt:
        return
    except BrokenPipeError:  # `madre tail | head`: the reader is gone, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@main.command()
@client_command
def health() -> None:
    """Is Madre up, and its database and modules (no token needed)."""
    conn = _conn()
    with conn.client() as client:
        answer = client.health()
    if conn.as_json:
        _print_json(answer)
    else:
        _print(out.render_health(answer, _style()))


# --------------------------------------------------------------------------- the audit trail


@main.group()
def audit() -> None:
    """The forensic trail: hash-chained JSON lines of everything Madre did."""


@audit.command("verify")
@click.argument("path", required=False, type=click.Path(path_type=pathlib.Path))
@click.option("--json", "as_json", is_flag=True, help="print the verdict as JSON")
@click.pass_context
def audit_verify(ctx: click.Context, path: pathlib.Path | None, as_json: bool) -> None:
    """Check the trail at PATH (a folder of day files, or one file): every record's hash,
    every link to the record before, every sequence number. Prints where the chain breaks.

    PATH defaults to MADRE_FORENSIC_DIR (forensic/madre/logs). Exit 0 intact, 1 broken,
    2 no trail there. Reads files only: no server needed.
    """
    from madre.forensics import verify

    target = path or pathlib.Path(os.environ.get("MADRE_FORENSIC_DIR")
                                  or Settings.model_fields["forensic_dir"].default)
    verdict = verify(target)
    as_json = as_json or ctx.ensure_object(Connection).as_json
    if as_json:
        _print_json(dataclasses.asdict(verdict))
    if verdict.files == 0:
        click.echo(f"madre: no trail at {target} (no *.jsonl files)", err=True)
        sys.exit(2)
    if not as_json:
        click.echo(verdict.describe())
    sys.exit(0 if verdict.ok else REFUSED)


# --------------------------------------------------------------------------- running things


@main.command()
@click.option("--host", help="address to bind (MADRE_HOST, default 127.0.0.1)")
@click.option("--port", type=int, help="port to bind (MADRE_PORT, default 8001)")
def serve(host: str | None, port: int | None) -> None:
    """Serve Madre over HTTP (SQLite at data/runtime/vx11.db unless DATABASE_URL says otherwise)."""
    from madre.server import serve as run_server

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    try:
        settings = load_settings(**overrides)
        run_server(settings)
    except ConfigError as exc:
        click.echo(f"madre: {exc}", err=True)
        sys.exit(2)


@main.command()
@click.option("--madre-url", default="http://127.0.0.1:8001", show_default=True,
              help="where the Spawner stand-in reports finished jobs")
def modules(madre_url: str) -> None:
    """Serve loopback stand-ins of Switch, Hermes, Hormiguero, Manifestator, Shub and Spawner
    on their default ports (8002-8008), so Madre can be tried with no other VX11 service."""
    from madre.standins.spawner_worker import SpawnerWorker
    from madre.standins import DEFAULT_PORTS, StandinCluster

    settings = load_settings()
    token = settings.token.get_secret_value()
    with (
        StandinCluster(token=token, ports=dict(DEFAULT_PORTS), madre_url=madre_url) as cluster,
        SpawnerWorker(settings.database_url, madre_url=madre_url, token=token,
                      behaviour=cluster.behaviours["spawner"]),
    ):
        for name, url in cluster.urls.items():
            click.echo(f"{name:13} {url}")
        click.echo(f"spawner jobs  picked up from {settings.database_url}, reported to {madre_url}")
        click.echo("Ctrl-C stops them.")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

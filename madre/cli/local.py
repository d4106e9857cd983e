"""The commands that run things on this machine rather than ask a server: `serve` (Madre
itself), `modules` (the loopback stand-ins), `audit verify` (the forensic trail on disk) and
`config show` (the settings this environment gives)."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import peewee

import click

from madre.cli.options import Connection, fail, print_json, print_lines, warn
from madre.client import REFUSED, USAGE
from madre.errors import ConfigError
from madre.modules import MODULES
from madre.settings import Settings, database_shown, load_settings

T = TypeVar("T")


@click.group()
def audit() -> None:
    """The forensic trail: hash-chained JSON lines of everything Madre did."""


@audit.command("verify")
@click.argument("path", required=False, type=click.Path(path_type=pathlib.Path))
@click.option("--json", "as_json", is_flag=True, help="print the verdict as JSON")
@click.option("--db", "db_url", is_flag=False, flag_value="", default=None, metavar="URL",
              help="also compare with the database (DATABASE_URL, or URL): how many "
                   "committed rows the trail does not hold yet, and any it lost")
@click.pass_context
def audit_verify(ctx: click.Context, path: pathlib.Path | None, as_json: bool,
                 db_url: str | None) -> None:
    """Check the trail at PATH (a folder of day files, or one file): every record's hash,
    every link to the record before, every sequence number. Prints where the chain breaks.
    With --db, also how far the trail is behind the database, and rows it misses.

    PATH defaults to MADRE_FORENSIC_DIR (forensic/madre/logs). Exit 0 intact, 1 broken
    (or a row missing), 2 no trail there. Reads files (and the database) only: no server.
    """
    from madre.forensics import verify

    target = path or pathlib.Path(os.environ.get("MADRE_FORENSIC_DIR")
                                  or Settings.model_fields["forensic_dir"].default)
    verdict = verify(target)
    comparison = _compare(target, db_url) if db_url is not None and verdict.files else None
    as_json = as_json or ctx.ensure_object(Connection).as_json
    if as_json:
        found = dataclasses.asdict(verdict)
        if comparison is not None:
            found["database"] = dataclasses.asdict(comparison)
        print_json(found)
    if verdict.files == 0:
        fail(f"no trail at {target} (no *.jsonl files)", 2)
    if not as_json:
        click.echo(_verdict_line(verdict))
        if comparison is not None:
            click.echo(comparison.describe())
    lost = comparison is not None and comparison.missing > 0
    sys.exit(0 if verdict.ok and not lost else REFUSED)


def _compare(trail: pathlib.Path, db_url: str) -> Any:
    from madre.store.db import open_database
    from madre.trail_check import compare

    url = db_url or os.environ.get("DATABASE_URL") or Settings.model_fields[
        "database_url"].default
    if url.startswith("sqlite") and not pathlib.Path(url.split("///", 1)[-1]).is_file():
        click.echo(f"madre: no database at {url}", err=True)
        sys.exit(2)
    database = open_database(url)
    try:
        return compare(trail, database)
    except Exception as exc:  # noqa: BLE001 - said to the operator, not a traceback
        click.echo(f"madre: cannot read the database {url.split('@')[-1]}: {exc}", err=True)
        sys.exit(2)
    finally:
        database.close()


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _verdict_line(verdict: Any) -> str:
    if verdict.ok:
        return (f"OK: {_count(verdict.records, 'record')} in {_count(verdict.files, 'file')}, "
                "chain intact")
    return f"BROKEN at {verdict.file}:{verdict.line}: {verdict.problem}"


@click.command()
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
        fail(str(exc), USAGE)


def _port_options(f: Any) -> Any:
    """--switch-port, --hermes-port, ... (defaults: the modules' own ports)."""
    for module in reversed(MODULES):
        f = click.option(f"--{module.name}-port", f"{module.name}_port", type=int,
                         default=module.port, show_default=True,
                         help=f"the port of the {module.name} stand-in (0: any free one)")(f)
    return f


@click.command()
@_port_options
@click.option("--madre-url", default="http://127.0.0.1:8001", show_default=True,
              help="where the Spawner stand-in reports finished jobs")
@click.option("--database-url", envvar="DATABASE_URL", show_envvar=True,
              help="the database Madre writes Spawner jobs to  [default: Madre's default, "
                   "sqlite:///data/runtime/vx11.db relative to this directory]")
def modules(madre_url: str, database_url: str | None, **ports: int) -> None:
    """Serve loopback stand-ins of Switch, Hermes, Hormiguero, Manifestator, Shub and Spawner
    on their default ports (8002-8008), so Madre can be tried with no other VX11 service.

    The Spawner stand-in picks up the jobs Madre writes to its database and reports them
    to --madre-url: it must read the same database as Madre. A relative SQLite path is
    relative to the directory each is started in, so start both in the same directory, or
    give this one --database-url (it prints the file it reads; it never creates one).
    """
    from madre.standins import LoopbackStartError, StandinCluster
    from madre.standins.spawner_worker import SpawnerWorker

    try:
        settings = load_settings(**({"database_url": database_url} if database_url else {}))
    except ConfigError as exc:
        fail(str(exc), USAGE)
    token = settings.token.get_secret_value()
    wanted = {m.name: ports[f"{m.name}_port"] for m in MODULES}
    cluster = StandinCluster(token=token, ports=wanted, madre_url=madre_url)
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop is a Ctrl-C here
    try:
        try:
            cluster.start()
        except LoopbackStartError as exc:
            fail(f"{exc}. Another `madre modules`? Choose other ports with --switch-port, "
                 "--hermes-port, ... (0: any free port)")
        with SpawnerWorker(settings.database_url, madre_url=madre_url, token=token,
                           behaviour=cluster.behaviours["spawner"]) as worker:
            _announce(cluster, worker, database_shown(settings.database_url), madre_url)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass  # Ctrl-C, whenever it comes: stop them (a daemon thread left running at exit
        # can crash the interpreter as it finalizes)
    finally:
        cluster.stop()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _announce(cluster: Any, worker: Any, database: str, madre_url: str) -> None:
    """Where each stand-in listens, which database the Spawner reads, what Madre needs."""
    print_lines([f"{name:13} {url}" for name, url in cluster.urls.items()])
    click.echo(f"spawner jobs  read from {database}, reported to {madre_url}")
    if worker.waiting_for is not None:
        warn(f"there is no database at {worker.waiting_for.resolve()} yet: Spawner jobs "
             "are picked up once Madre creates it. If Madre runs in another directory, "
             "start this one there, or pass --database-url with Madre's DATABASE_URL.")
    moved = {m.url_variable: cluster.urls[m.name] for m in MODULES
             if cluster.urls[m.name] != m.default_url}
    if moved:
        click.echo("not on their default ports: start Madre with")
        click.echo("  " + " ".join(f"{k}={v}" for k, v in moved.items()))
    click.echo("Ctrl-C stops them.")


@click.group()
def config() -> None:
    """The settings Madre reads from the environment."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="print them as JSON")
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Every setting `madre serve` would use here: its environment variable, its value
    (secrets masked) and where it comes from (the environment, or the default)."""
    from madre.cli.settings_table import render_settings, setting_rows

    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(str(exc), USAGE)
    rows = setting_rows(settings, os.environ)
    if as_json or ctx.ensure_object(Connection).as_json:
        print_json([row._asdict() for row in rows])
    else:
        print_lines(render_settings(rows))



@click.group()
def db() -> None:
    """The database's schema: where it stands, and migrating it (DATABASE_URL)."""


def _on_database(work: Callable[[Any, Any], T]) -> tuple[T, str]:
    """Run `work(database, models)` on DATABASE_URL's database: its result, and where that
    is (without a password). A bad setting or an unreachable database exits 2."""
    from madre.store.db import open_database
    from madre.store.models import build_models

    try:
        url = load_settings().database_url
        database = open_database(url)
        result = work(database, build_models(database))
    except (ConfigError, peewee.OperationalError) as exc:
        click.echo(f"madre: {exc}", err=True)
        sys.exit(2)
    return result, url.split("@")[-1]


@db.command("status")
def db_status() -> None:
    """Print the schema version and the steps a migration would run. Exit 0 when the
    schema is the newest, 1 when steps are pending."""
    from madre.store.migrations import schema_status

    status, where = _on_database(schema_status)
    click.echo(f"{where}: {status.describe()}")
    sys.exit(0 if status.current else REFUSED)


@db.command("migrate")
def db_migrate() -> None:
    """Take the schema to the newest version (one instance at a time: on PostgreSQL the
    steps run under an advisory lock)."""
    from madre.store.migrations import ensure_schema

    ran, where = _on_database(ensure_schema)
    click.echo(f"{where}: " + ("; ".join(ran) if ran else "already at the newest version"))

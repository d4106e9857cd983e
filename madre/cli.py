"""The `madre` command."""

from __future__ import annotations

import sys
import threading

import click

from madre.errors import ConfigError
from madre.settings import load_settings
from madre.version import __version__


@click.group()
@click.version_option(__version__, prog_name="madre")
def main() -> None:
    """Madre, the orchestrator of the VX11 services."""


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
    from madre._spawner_worker import SpawnerWorker
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

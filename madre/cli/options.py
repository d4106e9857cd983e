"""The plumbing every client command shares: where Madre is (`--url`, `--token`, `--json`,
`--timeout`, accepted before or after the command), turning a client error into its message
and exit code, and printing: data on stdout, diagnostics on stderr (`madre: ...`, in red on
a terminal), tables as wide as the terminal."""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from madre.cli import output as out
from madre.client import DEFAULT_TIMEOUT, DEFAULT_URL, REFUSED, ClientError, MadreClient
from madre.settings import DEFAULT_TOKEN

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass
class Connection:
    """Where the client commands find Madre, and how they answer (from the options)."""

    url: str = DEFAULT_URL
    token: str = DEFAULT_TOKEN
    as_json: bool = False
    timeout: float = DEFAULT_TIMEOUT

    def client(self) -> MadreClient:
        return MadreClient(self.url, self.token, self.timeout)


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
                print_json(exc.body)
            fail(exc.message, exc.exit_code)

    for option in reversed(options):
        run = option(run)
    return run  # type: ignore[return-value]


def conn() -> Connection:
    return click.get_current_context().ensure_object(Connection)


def style() -> out.Styler:
    return out.styler(out.colour_enabled(sys.stdout))


def warn(message: str) -> None:
    """`madre: message` on stderr, in red when stderr is a terminal (never with NO_COLOR)."""
    text = f"madre: {message}"
    coloured = out.colour_enabled(sys.stderr)
    # color=: click strips colour codes from what is not a terminal unless told otherwise
    # (FORCE_COLOR).
    click.echo(click.style(text, fg="red") if coloured else text, err=True, color=coloured)


def fail(message: str, code: int = REFUSED) -> None:
    """Say what went wrong (see `warn`) and exit with `code`."""
    warn(message)
    sys.exit(code)


def width() -> int | None:
    """How wide lines may be: the terminal's width (COLUMNS when set), or None when stdout
    is not a terminal (a pipe or a file gets every value whole)."""
    isatty = getattr(sys.stdout, "isatty", None)
    if not (isatty and isatty()):
        return None
    return shutil.get_terminal_size().columns


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def print_lines(lines: list[str]) -> None:
    click.echo("\n".join(lines), color=out.colour_enabled(sys.stdout))


def key_values(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
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


class PositionalsLast(click.Command):
    """A command whose arguments are read as arguments even when they start with "-": the
    first word that is not an option is the first argument, and every word after it that is
    not one of the command's own options is an argument too, whatever it looks like. They are
    handed to click after `--`, so click never reads a token `-Sh1x...` as `-S -h -1 -x`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {name for param in self.params if isinstance(param, click.Option)
                       and not param.is_flag for name in param.opts}
        known = {name for param in self.params if isinstance(param, click.Option)
                 for name in param.opts} | set(self.get_help_option_names(ctx))
        options: list[str] = []
        positionals: list[str] = []
        words = iter(args)
        for word in words:
            if word == "--":
                positionals.extend(words)
                break
            name = word.split("=", 1)[0]
            if name in known:
                options.append(word)
                value = next(words, None) if name in takes_value and "=" not in word else None
                if value is not None:
                    options.append(value)
            elif positionals or not word.startswith("-"):
                positionals.append(word)
            else:
                options.append(word)
        return super().parse_args(ctx, options + ["--", *positionals])

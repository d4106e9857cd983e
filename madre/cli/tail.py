"""`madre tail`: follow the event stream, reconnecting without missing or repeating events.

Each connection resumes after the last event printed (Last-Event-ID). A stream the server
ends (Madre restarting), a connection lost mid-stream, a server that cannot be reached once
the stream was followed: all are retried with a growing delay. A first connection that
fails, or a refusal (a wrong token), ends the command with its error.
"""

from __future__ import annotations

import dataclasses
import json
import time

import click

from madre.cli import output as out
from madre.client import UNREACHABLE, ClientError, EventStream, MadreClient, StreamLost

RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0  # seconds between reconnection attempts
TAIL_SILENCE = 45.0  # seconds without a byte (the server pings every 15 s) = a dead connection


@dataclasses.dataclass(frozen=True)
class Filters:
    plan_id: str | None = None
    session_id: str | None = None
    status: str | None = None


@dataclasses.dataclass
class Follower:
    """Where the following stands: the last event printed, how many, the next delay."""

    client: MadreClient
    filters: Filters
    url: str
    as_json: bool
    style: out.Styler
    read_timeout: float
    last: int | str | None = None
    count: int | None = None
    printed: int = 0
    followed: bool = False
    delay: float = RECONNECT_FIRST

    def run(self) -> None:
        """Print events until `count` were printed (or for ever, until Ctrl-C)."""
        while True:
            stream = self._connect()
            if stream is None:
                continue
            with stream:
                if self._print_from(stream):
                    return

    def _connect(self) -> EventStream | None:
        """The next stream; None after a failure worth retrying (it slept first)."""
        try:
            stream = self.client.events(
                plan_id=self.filters.plan_id, session_id=self.filters.session_id,
                status=self.filters.status, last_event_id=self.last,
                read_timeout=self.read_timeout)
        except ClientError as exc:
            passing = exc.exit_code == UNREACHABLE or (exc.status or 0) >= 500
            if not self.followed or not passing:
                raise  # nothing to follow, or refused for good: say why and exit
            click.echo(f"madre: {exc.message}; retrying in {self.delay:g} s", err=True)
            self._wait()
            return None
        self.delay = RECONNECT_FIRST
        if self.followed:
            click.echo(f"madre: reconnected; going on after event {self.last}", err=True)
        else:
            click.echo(f"madre: following events at {self.url} (Ctrl-C stops)", err=True)
            self.followed = True
        return stream

    def _print_from(self, stream: EventStream) -> bool:
        """Print what `stream` sends; True once `count` events were printed."""
        try:
            for event in stream:
                data = event.json()
                if event.event == "dropped":
                    self.last = data.get("resume_with_last_event_id", self.last)
                    click.echo(f"madre: the server dropped this stream ({data.get('reason')}); "
                               f"resuming after event {self.last}", err=True)
                    return False  # resume at once, no delay: nothing is wrong with the server
                self.last = event.id if event.id is not None else self.last
                if self.as_json:
                    click.echo(json.dumps(data, ensure_ascii=False))
                else:
                    click.echo(out.render_event(data, self.style))
                self.printed += 1
                if self.count is not None and self.printed >= self.count:
                    return True
            click.echo("madre: the server ended the stream (stopping?); reconnecting", err=True)
        except StreamLost as exc:
            click.echo(f"madre: {exc.message}; reconnecting", err=True)
        time.sleep(self.delay)
        return False

    def _wait(self) -> None:
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, RECONNECT_MAX)

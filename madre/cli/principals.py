"""`madre principals`: the entries of a principals file (MADRE_PRINCIPALS_FILE), made here,
on this machine. A new token is printed once, with the entry that holds only its SHA-256:
Madre never sees the token until someone presents it."""

from __future__ import annotations

import base64
import json
import secrets
import sys

import click

from madre.principals import NAME, SOURCE, Role, hash_token

TOKEN_BYTES = 32


@click.group()
def principals() -> None:
    """Make the entries of a principals file: principals and webhook sources."""


@principals.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice([r.value for r in Role]),
              help="a role the principal has (repeatable)")
def add(name: str, roles: tuple[str, ...]) -> None:
    """A new principal NAME with a new token: prints the token (once) and the
    [[principal]] entry to add to the principals file."""
    if not NAME.match(name):
        click.echo("madre: NAME must be 1-64 letters, digits or ._@:- (starting with a "
                   "letter or digit)", err=True)
        sys.exit(2)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    unique = list(dict.fromkeys(roles))
    click.echo(f"token for {name} (shown once; give it to {name} and keep no copy):")
    click.echo(token)
    click.echo("")
    click.echo("add this entry to the principals file (MADRE_PRINCIPALS_FILE), then restart "
               "Madre:")
    click.echo("")
    click.echo("[[principal]]")
    click.echo(f'name = "{name}"')
    click.echo(f'token_sha256 = "{hash_token(token)}"')
    click.echo(f"roles = {json.dumps(unique)}")


@principals.command("add-webhook")
@click.argument("source")
def add_webhook(source: str) -> None:
    """A new webhook SOURCE with a new Standard Webhooks secret: prints the [[webhook]]
    entry (the sender signs with the same secret)."""
    if not SOURCE.match(source):
        click.echo("madre: SOURCE must be 1-48 lower-case letters, digits, _ or -", err=True)
        sys.exit(2)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(TOKEN_BYTES)).decode()
    click.echo("add this entry to the principals file (MADRE_PRINCIPALS_FILE), and give the "
               f"secret to the sender; it posts to /madre/webhook/{source}:")
    click.echo("")
    click.echo("[[webhook]]")
    click.echo(f'source = "{source}"')
    click.echo(f'secret = "{secret}"')

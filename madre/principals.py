"""Principals: who is asking, and what their roles let them do.

MADRE_PRINCIPALS_FILE names a TOML file of principals and webhook sources:

    [[principal]]
    name = "ops-alice"
    token_sha256 = "<hex SHA-256 of the token>"   # the token itself is never stored
    roles = ["approver", "viewer"]

    [[webhook]]
    source = "ci"                                 # POST /madre/webhook/ci
    secret = "whsec_<base64>"                     # a Standard Webhooks secret

Without the file, the server token (VX11_TOKEN) is one principal, `vx11`, with every role:
the original's single-token mode. A file that cannot be read, or an entry that is wrong,
stops start-up with a ConfigError naming the file and the entry.

A principal is what the auth middleware finds for a presented token; it travels from there
to the handlers and into intake and the commands explicitly, and its name is the audit's
`actor`.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from madre.errors import ConfigError, NotAllowed
from madre.webhooks import check_secret


class Role(enum.StrEnum):
    SUBMITTER = "submitter"  # chat, control, intent
    APPROVER = "approver"  # confirm, approve, reject
    OPERATOR = "operator"  # cancel, the event stream, metrics
    VIEWER = "viewer"  # read plans and health
    SPAWNER = "spawner"  # job reports
    ADMIN = "admin"  # everything


ALL_ROLES = frozenset(Role)

SINGLE_PRINCIPAL = "vx11"
"""The name of the one principal of single-token mode."""

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")
SOURCE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class Principal:
    """Someone (or something) Madre knows: a name and its roles."""

    name: str
    roles: frozenset[Role]

    def may(self, *roles: Role) -> bool:
        """Whether any of `roles` (or admin) is among this principal's."""
        return Role.ADMIN in self.roles or any(r in self.roles for r in roles)

    def require(self, *roles: Role, doing: str) -> None:
        """Raise NotAllowed (403 `not_allowed`) unless `may(*roles)`."""
        if not self.may(*roles):
            wanted = " or ".join(r.value for r in roles)
            raise NotAllowed(f"{self.name} may not {doing}: that needs the role {wanted} "
                             f"(it has {', '.join(sorted(self.roles)) or 'none'})")


OWNER = Principal(SINGLE_PRINCIPAL, ALL_ROLES)
"""The single-token principal; also who in-process callers act as unless they say."""


def hash_token(token: str) -> str:
    """A token as a principals file keeps it: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class Principals:
    """Every principal and webhook source this Madre knows."""

    by_hash: tuple[tuple[str, Principal], ...]
    webhooks: dict[str, str]  # source -> Standard Webhooks secret
    from_file: bool

    def find(self, token: bytes | str) -> Principal | None:
        """The principal whose token this is, or None. Every entry is compared (in constant
        time), so how long it takes says nothing about which entry nearly matched."""
        raw = token if isinstance(token, bytes) else token.encode("utf-8")
        presented = hashlib.sha256(raw).hexdigest().encode()
        found = None
        for digest, principal in self.by_hash:
            if hmac.compare_digest(presented, digest.encode()) and found is None:
                found = principal
        return found

    def names(self) -> list[str]:
        return [p.name for _, p in self.by_hash]


def single_token(token: str) -> Principals:
    """Single-token mode: the server token is `vx11`, with every role."""
    return Principals(((hash_token(token), OWNER),), {}, from_file=False)


def load_principals_file(path: str | Path) -> Principals:
    """The principals and webhook sources of a TOML file; ConfigError naming the entry."""
    where = f"principals file {path}"
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"principal", "webhook"})
    if unknown:
        raise ConfigError(f"{where}: unknown table {unknown[0]!r}; use [[principal]] and "
                          "[[webhook]] entries")
    principals = _principals(where, _entries(where, data, "principal"))
    if not principals:
        raise ConfigError(f"{where}: no [[principal]] entry; nobody could sign in")
    webhooks = _webhooks(where, _entries(where, data, "webhook"))
    return Principals(tuple(principals), webhooks, from_file=True)


def _entries(where: str, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries = data.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{where}: '{key}' must be a list of [[{key}]] tables")
    return entries


def _principals(where: str, entries: Iterable[dict[str, Any]]) -> list[tuple[str, Principal]]:
    out: list[tuple[str, Principal]] = []
    names: set[str] = set()
    hashes: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        name = entry.get("name")
        label = _label(where, "principal", number, entry, ("name", "token_sha256", "roles"))
        if not isinstance(name, str) or not NAME.match(name):
            raise ConfigError(f"{label}: 'name' must be 1-64 letters, digits or ._@:- "
                              "(starting with a letter or digit)")
        if name in names:
            raise ConfigError(f"{label}: the name {name!r} is given twice")
        digest = entry.get("token_sha256")
        if not isinstance(digest, str) or not HEX_SHA256.match(digest.lower()):
            raise ConfigError(f"{label}: 'token_sha256' must be the 64 hex digits of the "
                              "token's SHA-256 (`madre principals add` prints one)")
        digest = digest.lower()
        if digest in hashes:
            raise ConfigError(f"{label}: same token as {hashes[digest]!r}; each principal "
                              "needs a token of its own")
        roles = entry.get("roles")
        if not isinstance(roles, list) or not roles:
            raise ConfigError(f"{label}: 'roles' must be a non-empty list, like "
                              "roles = [\"approver\"]")
        known = {r.value for r in Role}
        for role in roles:
            if role not in known:
                raise ConfigError(f"{label}: unknown role {role!r} (roles: "
                                  f"{', '.join(r.value for r in Role)})")
        names.add(name)
        hashes[digest] = name
        out.append((digest, Principal(name, frozenset(Role(r) for r in roles))))
    return out


def _webhooks(where: str, entries: Iterable[dict[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        source = entry.get("source")
        label = _label(where, "webhook", number, entry, ("source", "secret"))
        if not isinstance(source, str) or not SOURCE.match(source):
            raise ConfigError(f"{label}: 'source' must be 1-48 lower-case letters, digits, "
                              "_ or - (it is the path of POST /madre/webhook/<source>)")
        if source in out:
            raise ConfigError(f"{label}: the source {source!r} is given twice")
        secret = entry.get("secret")
        problem = check_secret(secret)
        if problem:
            raise ConfigError(f"{label}: 'secret' {problem}")
        out[source] = str(secret)
    return out


def _label(where: str, kind: str, number: int, entry: dict[str, Any], keys: tuple[str, ...]
           ) -> str:
    """How a message names entry `number` (and its name or source, when it has one);
    ConfigError for a key the entry may not have."""
    named = entry.get(keys[0])
    label = f"{where}: {kind} #{number}" + (f" ({named!r})" if isinstance(named, str) else "")
    extra = sorted(set(entry) - set(keys))
    if extra:
        raise ConfigError(f"{label}: unknown key {extra[0]!r} (keys: {', '.join(keys)})")
    return label

"""The principals file: what it holds, how a token finds its principal, and every way an
entry can be wrong, each stopping start-up with a message that names the entry."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from helpers import WEBHOOK_SECRET, token_of, write_principals

from madre.errors import ConfigError
from madre.principals import (
    ALL_ROLES,
    OWNER,
    Principal,
    Role,
    load_principals_file,
    single_token,
)
from madre.settings import load_settings

GOOD_HASH = hashlib.sha256(b"t").hexdigest()


def test_a_file_gives_each_principal_its_roles_and_each_webhook_its_secret(tmp_path) -> None:
    principals = load_principals_file(write_principals(tmp_path / "p.toml"))

    bob = principals.find(token_of("bob"))
    assert bob == Principal("bob", frozenset({Role.APPROVER}))
    assert principals.find(token_of("alice").encode()).roles == {Role.SUBMITTER, Role.VIEWER}
    assert principals.find("not a token anyone has") is None
    assert principals.webhooks == {"ci": WEBHOOK_SECRET}
    assert principals.from_file


def test_without_a_file_the_server_token_is_vx11_with_every_role() -> None:
    principals = single_token("the-server-token")

    assert principals.find("the-server-token") == OWNER
    assert OWNER.name == "vx11" and OWNER.roles == ALL_ROLES
    assert principals.find("another") is None and principals.webhooks == {}


def test_admin_may_do_what_any_role_may() -> None:
    root = Principal("root", frozenset({Role.ADMIN}))
    assert root.may(Role.APPROVER) and root.may(Role.SPAWNER)
    assert not Principal("vic", frozenset({Role.VIEWER})).may(Role.APPROVER)


def entry(name: str = "ops-alice", digest: str = GOOD_HASH, roles: str = '["approver"]',
          extra: str = "") -> str:
    return (f'[[principal]]\nname = "{name}"\ntoken_sha256 = "{digest}"\nroles = {roles}\n'
            f"{extra}\n")


WRONG_FILES = {
    "not TOML": ("[[principal]\nname=", "not valid TOML"),
    "an unknown role": (entry(roles='["aprover"]'), "principal #1 ('ops-alice'): unknown "
                                                    "role 'aprover'"),
    "no roles": (entry(roles="[]"), "principal #1 ('ops-alice'): 'roles'"),
    "a token in clear": (entry(digest="my-secret-token"),
                         "principal #1 ('ops-alice'): 'token_sha256'"),
    "a name given twice": (entry() + entry(digest=hashlib.sha256(b"u").hexdigest()),
                           "principal #2 ('ops-alice'): the name 'ops-alice' is given twice"),
    "a token shared": (entry() + entry(name="ops-bob"),
                       "principal #2 ('ops-bob'): same token as 'ops-alice'"),
    "an unknown key": (entry(extra='token = "clear"'), "principal #1 ('ops-alice'): unknown "
                                                       "key 'token'"),
    "a bad name": (entry(name="has space"), "principal #1 ('has space'): 'name'"),
    "no principal": ('[[webhook]]\nsource = "ci"\nsecret = "' + WEBHOOK_SECRET + '"\n',
                     "no [[principal]] entry"),
    "a webhook secret that is not whsec_": (
        entry() + '[[webhook]]\nsource = "ci"\nsecret = "hunter2"\n',
        "webhook #1 ('ci'): 'secret' must be a Standard Webhooks secret"),
    "a webhook source that is no path": (
        entry() + f'[[webhook]]\nsource = "C I"\nsecret = "{WEBHOOK_SECRET}"\n',
        "webhook #1 ('C I'): 'source'"),
    "an unknown table": (entry() + "[notify]\nurl = 'x'\n", "unknown table 'notify'"),
}


@pytest.mark.parametrize("text, message", WRONG_FILES.values(), ids=WRONG_FILES.keys())
def test_a_wrong_principals_file_stops_start_up_naming_the_entry(tmp_path, text, message):
    path = tmp_path / "principals.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_settings(principals_file=str(path))

    assert "MADRE_PRINCIPALS_FILE" in str(caught.value)
    assert f"principals file {path}" in str(caught.value)
    assert message in str(caught.value)


def test_a_missing_principals_file_stops_start_up_saying_it_cannot_be_read(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(principals_file=str(tmp_path / "nowhere.toml"))


def test_madre_serve_with_a_wrong_principals_file_exits_2_naming_the_entry(tmp_path) -> None:
    path = tmp_path / "principals.toml"
    path.write_text(entry(roles='["root"]'), encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "madre", "serve"], capture_output=True, text=True, timeout=60,
        env={"MADRE_PRINCIPALS_FILE": str(path), "PATH": "/usr/bin:/bin",
             "DATABASE_URL": f"sqlite:///{tmp_path}/madre.db"}, check=False)

    assert result.returncode == 2
    assert "principal #1 ('ops-alice'): unknown role 'root'" in result.stderr


@pytest.mark.parametrize("setting", [{"four_eyes": "high"}, {"high_approvals": 2}])
def test_four_eyes_or_several_approvals_without_principals_stop_start_up(setting) -> None:
    with pytest.raises(ConfigError, match="needs MADRE_PRINCIPALS_FILE"):
        load_settings(**setting)


def test_four_eyes_default_to_off_with_one_token_and_high_with_principals(tmp_path) -> None:
    assert load_settings().four_eyes_mode == "off"
    path = write_principals(tmp_path / "p.toml")
    assert load_settings(principals_file=path).four_eyes_mode == "high"
    assert load_settings(principals_file=path, four_eyes="off").four_eyes_mode == "off"

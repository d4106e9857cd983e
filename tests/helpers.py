"""Plain helpers shared by the test files: the test token and settings, reads of the five
tables, waiting for a plan to settle, and the HTTP calls and checks of the contract tests.

Fixtures live in conftest.py; this module holds no fixture. tests/ has no __init__.py, so
pytest puts tests/ on sys.path and a test file imports these with `from helpers import ...`.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import pathlib
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

from madre import Madre, Settings
from madre.model import Plan
from madre.records import NO_CHANGE, Confirmation
from madre.standins import StandinCluster

TOKEN = "test-token-0123456789"
WAIT = 10.0  # seconds: how long a test waits for a plan to settle


def make_settings(database_url: str, standins: StandinCluster | None, **overrides: Any
                  ) -> Settings:
    """Settings for a test Madre: the test token, short timeouts, the stand-ins' URLs (when
    given), then `overrides`."""
    urls = {f"{k.lower()}": v for k, v in standins.env().items()} if standins else {}
    values: dict[str, Any] = {
        "token": TOKEN,
        "database_url": database_url,
        "chat_wait_seconds": 10.0,
        "parse_timeout_seconds": 1.0,
        "step_timeout_seconds": 2.0,
        "connect_timeout_seconds": 0.5,
        "step_retries": 1,
        "retry_backoff_seconds": 0.01,
        "health_interval_seconds": 0.2,
        "parses_at_once": 2,
        **urls,
        **overrides,
    }
    return Settings(**values)


def free_port() -> int:
    """A loopback port that was free a moment ago (and that nothing listens on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- principals

PEOPLE = {
    "alice": ["submitter", "viewer"],  # asks
    "bob": ["approver"],
    "carol": ["approver"],
    "dave": ["submitter", "approver"],  # asks and approves: four eyes is about him
    "olga": ["operator"],
    "vic": ["viewer"],
    "sam": ["spawner"],
    "root": ["admin"],
}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"a webhook secret of 32 bytes!!!!").decode()


def token_of(name: str) -> str:
    """The test token of principal `name`."""
    return f"token-of-{name}-0123456789"


def write_principals(path: Any, people: dict[str, list[str]] | None = None,
                     webhooks: dict[str, str] | None = None) -> str:
    """A principals file at `path` (PEOPLE, and a `ci` webhook, unless given); its path."""
    lines = []
    for name, roles in (PEOPLE if people is None else people).items():
        digest = hashlib.sha256(token_of(name).encode()).hexdigest()
        lines += ["[[principal]]", f'name = "{name}"', f'token_sha256 = "{digest}"',
                  f"roles = {json.dumps(roles)}", ""]
    for source, secret in ({"ci": WEBHOOK_SECRET} if webhooks is None else webhooks).items():
        lines += ["[[webhook]]", f'source = "{source}"', f'secret = "{secret}"', ""]
    pathlib.Path(path).write_text("\n".join(lines), encoding="utf-8")
    return str(path)


def as_principal(name: str) -> dict[str, str]:
    """The headers principal `name` sends."""
    return {"X-VX11-Token": token_of(name)}


# --------------------------------------------------------------------------- the database


def table_rows(madre: Madre, table: str) -> list[dict[str, Any]]:
    """Every row of `table`, as dicts, read straight from the database."""
    with madre.database.connection_context():
        cursor = madre.database.execute_sql(f"SELECT * FROM {table} ORDER BY id")  # noqa: S608
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def counts(madre: Madre) -> dict[str, int]:
    """The row count of each of the five tables, by table name."""
    with madre.database.connection_context():
        return {model._meta.table_name: model.select().count() for model in madre.models.all()}


def intent_row(madre: Madre, intent_id: str) -> dict[str, Any]:
    """The one intents_log row of `intent_id`."""
    [row] = [r for r in table_rows(madre, "intents_log") if r["intent_id"] == intent_id]
    return row


def audit_actions(madre: Madre, plan_id: str) -> list[str]:
    """The `action` of every madre_actions row of `plan_id`, oldest first."""
    return [r["action"] for r in table_rows(madre, "madre_actions") if r["plan_id"] == plan_id]


def is_subsequence(wanted: list[str], actual: list[str]) -> bool:
    """Whether `wanted` appears in `actual` in that order, other items allowed in between."""
    remaining = iter(actual)
    return all(any(a == w for a in remaining) for w in wanted)


def settled(madre: Madre, plan_id: str, timeout: float = WAIT) -> Plan:
    """The plan once it has settled (done, error or waiting); fails if it has not in time."""
    plan = madre.wait_for_plan(plan_id, timeout)
    assert plan is not None, f"plan {plan_id} did not settle in {timeout} s"
    return plan


# --------------------------------------------------------------------------- HTTP


def assert_envelope(resp: Any, status: int, code: str) -> dict[str, Any]:
    """`resp` is the one error envelope, `{"error": code, "detail": sentence}` (plus
    `errors` on a 422), with HTTP `status`. Returns the envelope."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) <= {"error", "detail", "errors"}, body
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"].strip()
    return body


def ok_json(resp: Any) -> dict[str, Any]:
    """The body of `resp`, which must be a 200."""
    assert resp.status_code == 200, resp.text
    return resp.json()


def chat(client: Any, message: str, **fields: Any) -> dict[str, Any]:
    """POST /madre/chat; the 200 answer's body."""
    return ok_json(client.post("/madre/chat", json={"message": message, **fields}))


def control(client: Any, target: str, action: str, **fields: Any) -> dict[str, Any]:
    """POST /madre/control; the 200 answer's body."""
    return ok_json(client.post("/madre/control",
                                json={"target": target, "action": action, **fields}))


def intent(client: Any, **fields: Any) -> dict[str, Any]:
    """POST /madre/intent; the 200 answer's body."""
    return ok_json(client.post("/madre/intent", json=fields))


def detail(client: Any, plan_id: str) -> dict[str, Any]:
    """GET /madre/plans/{plan_id}; the 200 answer's body."""
    return ok_json(client.get(f"/madre/plans/{plan_id}"))


def plan_actor_count(madre: Madre) -> int:
    """Plan actors alive, asked once no Plan actor's loop is left running. Race-free: an
    actor reports its stop to the Supervisor on its own thread before its loop ends, so a
    count asked after that is queued behind that report."""
    assert madre.plan_threads.wait_quiet(WAIT), "plan actors still running"
    return madre.supervisor.count()


def plan_actors_left(madre: Madre) -> int:
    """Plan actors alive once the dust settles. Twice: an actor stopping may free a place
    the Supervisor gives to a queued plan, whose actor the first round's count has started
    and the second round joins."""
    plan_actor_count(madre)
    return plan_actor_count(madre)


def final(madre: Madre, plan_id: str, timeout: float = WAIT) -> Plan:
    """The plan once it has ended (DONE or ERROR); fails if it has not in time."""
    plan = madre.wait_for_plan(plan_id, timeout, final=True)
    assert plan is not None, f"plan {plan_id} did not end in {timeout} s"
    return plan


def store_plan(madre: Madre, plan: Plan, *, confirmation: Confirmation | None = None) -> Plan:
    """Write `plan` to the database as a new plan of `madre`'s (no actor started, nothing
    audited): one that must run is owned by `madre` (epoch 1), as intake does."""
    if plan.active:
        plan.owner, plan.epoch = madre.instance_id, 1
    madre.store.create_plan(plan, NO_CHANGE, confirmation=confirmation)
    return plan


def execute(madre: Madre, sql: str, params: tuple[Any, ...] = ()) -> int:
    """Run one statement straight on the database (`?` for parameters), as a person with a
    SQL prompt would: to damage a row on purpose. The number of rows it changed."""
    with madre.database.connection_context():
        cursor = madre.database.execute_sql(sql.replace("?", madre.database.param), params)
        return int(cursor.rowcount)


# --------------------------------------------------------------------------- full disks


@contextlib.contextmanager
def small_disk(folder: pathlib.Path, size: str) -> Iterator[pathlib.Path]:
    """A tmpfs of `size` mounted at `folder` (needs root): the test is skipped without one."""
    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: pathlib.Path) -> pathlib.Path:
    """A file taking every free byte of `disk` (delete it to give the space back)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def post_ok(url: str, path: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """POST `body` to a live server's `path` with the test token; its JSON answer, which must
    be a 200 (the body is shown when it is not)."""
    import requests

    resp = requests.post(url + path, json=body, headers={"X-VX11-Token": TOKEN}, timeout=30,
                         **kwargs)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run each call on its own thread, released together by a barrier; their results (or
    the exception each raised), in order."""
    import threading

    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)
    return results

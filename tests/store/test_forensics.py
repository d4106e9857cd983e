"""The forensic trail and `madre audit verify [PATH]`.

Madre appends one hash-chained JSON line per committed record (every intent received, every
audit row) to a file per UTC day in MADRE_FORENSIC_DIR. `madre audit verify` reads the files
(no server) and says where the chain breaks: exit 0 intact, 1 broken (at FILE:LINE), 2 no
trail at that path. A changed line fails at that line; a removed line at the line after it;
the chain goes on across a restart and across day files; tokens never reach it.

Trails come from real traffic through a running Madre (`start_madre(forensic_dir=...)`, on
SQLite and PostgreSQL), or are written through ForensicTrail directly where the dates matter.
The trail is written by its own actor after each commit, so a test stops its Madre (which
writes everything committed) before reading the files.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from helpers import TOKEN, table_rows
from hypothesis import given, settings
from hypothesis import strategies as st

from madre import Madre
from madre.contracts.intake import ChatRequest, ControlRequest
from madre.errors import InvalidToken
from madre.forensics import (
    GENESIS,
    ForensicTrail,
    canonical,
    record_hash,
    sealed_line,
    verify,
)
from madre.model import Status

TIMEOUT = 60
VERDICT_OK = re.compile(r"^OK: (\d+) records? in (\d+) files?, chain intact$")


def audit_verify(*args: str, env: dict[str, str] | None = None,
                 cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m madre audit verify ARGS`, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "madre", "audit", "verify", *args],
                          env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def broken_at(result: subprocess.CompletedProcess[str]) -> tuple[str, int, str]:
    """(file, line, problem) from a `BROKEN at FILE:LINE: PROBLEM` verdict that exited 1."""
    assert result.returncode == 1, result
    match = re.fullmatch(r"BROKEN at (.+):(\d+): (.+)\n", result.stdout)
    assert match, result.stdout
    return match[1], int(match[2]), match[3]


def intact(result: subprocess.CompletedProcess[str]) -> tuple[int, int]:
    """(records, files) from an `OK: ...` verdict that exited 0."""
    assert result.returncode == 0, result
    match = VERDICT_OK.match(result.stdout.strip())
    assert match, result.stdout
    return int(match[1]), int(match[2])


def day_files(trail: pathlib.Path) -> list[pathlib.Path]:
    return sorted(trail.glob("*.jsonl"))


def lines_of(path: pathlib.Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def write_lines(path: pathlib.Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def traffic(madre: Madre) -> str:
    """A LOW chat, a HIGH control confirmed, a denied control; every plan ended. Returns
    the confirm token that was used."""
    low = madre.chat(ChatRequest(message="mix these 3 stems"))
    assert low.status is Status.DONE
    held = madre.control(ControlRequest(target="shub", action="delete"))
    assert held.confirm_token and held.plan_id
    madre.confirm(held.plan_id, held.confirm_token)
    assert madre.wait_for_plan(held.plan_id, 10, final=True).status is Status.DONE
    madre.control(ControlRequest(target="madre", action="stop"))
    return held.confirm_token


@pytest.fixture
def trail(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "trail"


@pytest.fixture
def trail_madre(start_madre, trail: pathlib.Path) -> Madre:
    return start_madre(forensic_dir=str(trail))


@pytest.fixture
def written(trail_madre: Madre, trail: pathlib.Path) -> pathlib.Path:
    """The one day file a Madre wrote with the traffic above, once it stopped."""
    traffic(trail_madre)
    trail_madre.stop()
    [path] = day_files(trail)
    return path


def line_with(path: pathlib.Path, event: str) -> int:
    """The 1-based number of the first line of `path` recording `event`."""
    return next(i for i, line in enumerate(lines_of(path), start=1)
                if json.loads(line)["event"] == event)


# --------------------------------------------------------------------------- intact trails


def test_a_trail_written_by_real_traffic_verifies_intact(trail, written) -> None:
    records, files = intact(audit_verify(str(trail)))
    assert (records, files) == (len(lines_of(written)), 1)


def test_the_trail_records_every_intent_received_and_every_audit_row_in_commit_order(
        trail_madre, written) -> None:
    events = [json.loads(line)["event"] for line in lines_of(written)]
    actions = [r["action"] for r in table_rows(trail_madre, "madre_actions")]
    assert [e for e in events if e != "intent_received"] == actions
    assert events.count("intent_received") == len(table_rows(trail_madre, "intents_log"))


def test_each_record_carries_its_time_sequence_number_and_the_hash_chain(written) -> None:
    records = [json.loads(line) for line in lines_of(written)]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert records[0]["prev"] == GENESIS
    for before, record in zip(records, records[1:], strict=False):
        assert record["prev"] == before["hash"]
    for record in records:
        assert record["hash"] == record_hash(record)
        assert written.name == record["time"][:10] + ".jsonl"


def test_one_file_of_a_trail_can_be_verified_alone(written) -> None:
    assert intact(audit_verify(str(written)))[1] == 1


def test_verify_defaults_to_madre_forensic_dir(trail, written) -> None:
    intact(audit_verify(env={"MADRE_FORENSIC_DIR": str(trail)}))


def test_verify_defaults_to_forensic_madre_logs_under_the_working_directory(
        tmp_path, trail, written) -> None:
    here = tmp_path / "elsewhere"
    (here / "forensic" / "madre").mkdir(parents=True)
    trail.rename(here / "forensic" / "madre" / "logs")
    env = {k: v for k, v in os.environ.items() if k != "MADRE_FORENSIC_DIR"}
    result = subprocess.run([sys.executable, "-m", "madre", "audit", "verify"], env=env,
                            cwd=here, capture_output=True, text=True, timeout=TIMEOUT,
                            check=False)
    intact(result)


def test_verify_json_prints_the_verdict_as_json(trail, written) -> None:
    result = audit_verify(str(trail), "--json")
    assert result.returncode == 0
    verdict = json.loads(result.stdout)
    assert verdict["ok"] is True
    assert verdict["records"] == len(lines_of(written))
    assert verdict["files"] == 1


# --------------------------------------------------------------------------- broken trails


def test_changing_the_reason_of_one_record_breaks_the_chain_at_that_file_and_line(
        trail, written) -> None:
    lines = lines_of(written)
    number = line_with(written, "plan_created")
    record = json.loads(lines[number - 1])
    record["reason"] = "nothing to see here"
    lines[number - 1] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    write_lines(written, lines)
    file, line, problem = broken_at(audit_verify(str(trail)))
    assert (file, line) == (str(written), number)
    assert "changed" in problem


def test_deleting_a_line_breaks_the_chain_at_the_line_after_it(trail, written) -> None:
    lines = lines_of(written)
    number = line_with(written, "plan_confirmed")
    assert 1 < number < len(lines)
    write_lines(written, lines[:number - 1] + lines[number:])
    file, line, problem = broken_at(audit_verify(str(trail)))
    assert (file, line) == (str(written), number)  # the record that followed the deleted one
    assert "removed" in problem


def test_deleting_the_first_line_breaks_the_chain_at_the_new_first_line(trail, written) -> None:
    write_lines(written, lines_of(written)[1:])
    file, line, problem = broken_at(audit_verify(str(trail)))
    assert (file, line) == (str(written), 1)
    assert "removed" in problem


def test_inserting_a_copy_of_a_line_breaks_the_chain_at_the_copy(trail, written) -> None:
    lines = lines_of(written)
    write_lines(written, lines[:3] + [lines[2]] + lines[3:])
    file, line, _ = broken_at(audit_verify(str(trail)))
    assert (file, line) == (str(written), 4)


def test_a_line_that_is_not_a_json_record_breaks_the_chain_there(trail, written) -> None:
    for garbage in ("{not json", "42", '["a", "list"]'):
        lines = lines_of(written)
        write_lines(written, lines[:1] + [garbage] + lines[1:])
        file, line, problem = broken_at(audit_verify(str(trail)))
        assert (file, line, problem) == (str(written), 2, "not a JSON record")
        write_lines(written, lines)


def test_bytes_that_are_not_text_break_the_chain_where_they_are(trail, written) -> None:
    data = written.read_bytes()
    first_end = data.index(b"\n") + 1
    written.write_bytes(data[:first_end] + b"\xff\xfe\x00garbage\n" + data[first_end:])
    file, line, problem = broken_at(audit_verify(str(trail)))
    assert (file, line) == (str(written), 2)
    assert "not" in problem


def test_a_path_without_a_trail_exits_2(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "missing", tmp_path / "missing.jsonl"):
        result = audit_verify(str(path))
        assert result.returncode == 2, result
        assert result.stdout == ""
        assert f"no trail at {path}" in result.stderr


# --------------------------------------------------------------------------- the chain goes on


def test_the_chain_goes_on_across_a_restart_of_madre(start_madre, trail_madre, trail) -> None:
    traffic(trail_madre)
    trail_madre.stop()
    [path] = day_files(trail)
    before = [json.loads(line) for line in lines_of(path)]

    again = start_madre(forensic_dir=str(trail))  # the same database and trail folder
    traffic(again)
    again.stop()
    after = [json.loads(line) for line in lines_of(path)][len(before):]
    assert after, "the second Madre wrote nothing"
    assert after[0]["prev"] == before[-1]["hash"]
    assert after[0]["seq"] == before[-1]["seq"] + 1
    records, _ = intact(audit_verify(str(trail)))
    assert records == len(before) + len(after)


def two_days(trail: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    ForensicTrail(trail).append([
        {"event": "intent_received", "intent_id": "i-1", "time": "2031-03-01T23:59:58+00:00"},
        {"event": "plan_created", "plan_id": "p-1", "time": "2031-03-01T23:59:59+00:00"},
    ])
    ForensicTrail(trail).append([  # a new writer, as after a restart: it resumes the chain
        {"event": "plan_done", "plan_id": "p-1", "time": "2031-03-02T00:00:01+00:00"},
        {"event": "intent_received", "intent_id": "i-2", "time": "2031-03-02T08:00:00+00:00"},
    ])
    first, second = day_files(trail)
    return first, second


def test_the_chain_goes_on_across_two_day_files(trail) -> None:
    first, second = two_days(trail)
    assert (first.name, second.name) == ("2031-03-01.jsonl", "2031-03-02.jsonl")
    assert json.loads(lines_of(second)[0])["prev"] == json.loads(lines_of(first)[-1])["hash"]
    assert intact(audit_verify(str(trail))) == (4, 2)


def test_removing_the_last_line_of_a_day_breaks_the_chain_at_the_next_days_first_line(
        trail) -> None:
    first, second = two_days(trail)
    write_lines(first, lines_of(first)[:-1])
    file, line, _ = broken_at(audit_verify(str(trail)))
    assert (file, line) == (str(second), 1)


def test_removing_the_oldest_day_file_breaks_the_chain(trail) -> None:
    first, second = two_days(trail)
    first.unlink()
    file, line, _ = broken_at(audit_verify(str(trail)))
    assert (file, line) == (str(second), 1)


def test_verify_reads_the_same_verdict_as_the_cli(trail) -> None:
    two_days(trail)
    verdict = verify(trail)
    assert verdict.ok and verdict.describe() == audit_verify(str(trail)).stdout.strip()


# --------------------------------------------------------------------------- secrets


def test_no_token_ever_reaches_the_trail(trail_madre, trail) -> None:
    used = traffic(trail_madre)
    held = trail_madre.control(ControlRequest(target="hermes", action="delete"))
    assert held.plan_id and held.confirm_token
    with pytest.raises(InvalidToken):
        trail_madre.confirm(held.plan_id, held.confirm_token[::-1])
    trail_madre.stop()
    text = "".join(p.read_text(encoding="utf-8") for p in day_files(trail))
    assert "confirmation_rejected" in text  # the refused attempt is recorded...
    for secret in (used, held.confirm_token, held.confirm_token[::-1], TOKEN):
        assert secret not in text  # ...but no token, right or wrong, nor the server's


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["action", "cursor", "detail", "h", "hash0", "hasg",
                                        "prev", "seq", "time", "zeta", "", "Hash", "é"]),
                       _JSON, max_size=8))
def test_a_sealed_line_is_the_canonical_record_with_its_hash_encoded_once(
    record: dict[str, object],
) -> None:
    digest, line = sealed_line(record)
    assert digest == record_hash(record)
    assert line == canonical({**record, "hash": digest})

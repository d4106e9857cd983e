"""schemathesis, with every check, against Madre served by a real uvicorn: the OpenAPI
document says what the server enforces, and the server does what it says.

Every check includes positive and negative data acceptance (schema-valid requests are not
refused, schema-violating ones are), response conformance (statuses, content types, bodies,
each event of the event stream) and that no request is answered 500. Bounded: a few
examples per operation, a timeout per request (an event stream is cut after it and judged
on the events it sent), one run on SQLite.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from helpers import TOKEN, make_settings

from madre import Madre, create_app
from madre.server import http_options
from madre.standins import LoopbackServer

MAX_EXAMPLES = 10
REQUEST_TIMEOUT = 1.0
BUDGET = 300  # seconds for the whole run


def test_schemathesis_finds_no_mismatch_between_the_document_and_the_server(
        tmp_path: pathlib.Path, standins) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}/madre.db", standins,
                             chat_wait_seconds=0.5, forensic_dir=str(tmp_path / "trail"))
    with Madre(settings) as madre, LoopbackServer(
            create_app(madre), lifespan="on", name="madre-schemathesis",
            **http_options(settings)) as server:
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
             "--checks", "all", "--header", f"X-VX11-Token: {TOKEN}",
             "--max-examples", str(MAX_EXAMPLES), "--request-timeout", str(REQUEST_TIMEOUT),
             "--phases", "examples,coverage,fuzzing", "--workers", "1",
             "--generation-deterministic", "--no-color"],
            capture_output=True, text=True, timeout=BUDGET, cwd=tmp_path, check=False,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
                 "PYTHONPATH": os.pathsep.join(filter(None, [
                     str(pathlib.Path(__file__).parent), os.environ.get("PYTHONPATH")]))})
    summary = run.stdout[-6000:]
    assert run.returncode == 0, summary
    assert "Failures:" not in run.stdout and "Errors:" not in run.stdout, summary

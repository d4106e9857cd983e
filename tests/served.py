"""`python run.py` as a real process for the tests that need one: its output read line by line
as it comes (by a thread, into a queue: nothing sleeps), and its address read from its
"madre serving" line, so it can listen on a port the system picks (MADRE_PORT=0) and no
test depends on a given port being free.

Like helpers.py this module holds no fixture; test files import it (`from served import ...`).
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN = ROOT / "run.py"
START = 30.0  # seconds for a server to start, or to stop

_URL_IN_TEXT = re.compile(r"\burl=(\S+?)[\s\]]")


def madre_env(**env: str) -> dict[str, str]:
    """This process's environment without any Madre setting (the forensic folder aside), so
    a server starts from its defaults, then `env`; the port is the system's pick unless
    `env` names one."""
    clean = {k: v for k, v in os.environ.items()
             if (not k.startswith("MADRE_") or k == "MADRE_FORENSIC_DIR")
             and k not in ("DATABASE_URL", "VX11_TOKEN", "NO_COLOR")}
    return {**clean, "MADRE_PORT": "0", **env}


def serving_url(line: str) -> str:
    """The address a "madre serving" line names (JSON or text)."""
    try:
        return str(json.loads(line)["url"])
    except ValueError:
        found = _URL_IN_TEXT.search(line + " ")
        assert found, f"no url in {line!r}"
        return found.group(1)


class Served:
    """`python run.py [args]` in `cwd` with `env`: stdout read line by line, stderr kept in a
    file (or merged into stdout)."""

    def __init__(self, cwd: pathlib.Path, env: dict[str, str], *, args: Sequence[str] = (),
                 merge_stderr: bool = False) -> None:
        self.errors = (cwd / "stderr.txt").open("w+", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, str(RUN), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else self.errors, text=True)
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._pump, name="log-reader", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def wait_for(self, text: str, timeout: float = START) -> str:
        """The first line containing `text` (waiting for it if it has not come yet)."""
        for line in self.lines:
            if text in line:
                return line
        while True:
            line = self.queue.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"Madre ended before logging {text!r}: {self.lines}")
            self.lines.append(line)
            if text in line:
                return line

    def serving(self) -> str:
        """The server's URL, once it logs that it serves."""
        return serving_url(self.wait_for("madre serving"))

    def signal(self, sig: int) -> int:
        """Send `sig`; the exit status."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=START)

    def rest(self) -> list[str]:
        """Every line it printed, to the end (the process must be ending)."""
        while (line := self.queue.get(timeout=START)) is not None:
            self.lines.append(line)
        return self.lines

    def stop(self) -> list[str]:
        """SIGTERM, then every line it printed, to the end."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=START) == 0
        return self.rest()

    def stderr(self) -> str:
        self.errors.seek(0)
        return self.errors.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=START)
        self.thread.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.errors.close()

"""Real Madre processes for the tests that need them: `python run.py` on a free port with a
database and stand-ins of its own, killed or stopped at will; a PostgreSQL database made for
one test and dropped after it; a TCP proxy a test can freeze between a process and
PostgreSQL (a network partition, the process living on)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from helpers import TOKEN, free_port

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN = ROOT / "run.py"
START = 30.0  # seconds for a process to start, or to stop


class MadreProcess:
    """`python run.py` in `cwd` with `env`; its log lines read as they come."""

    def __init__(self, cwd: pathlib.Path, env: dict[str, str], *, name: str = "madre") -> None:
        self.port = int(env["MADRE_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name
        cwd.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, str(RUN)], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, name=f"{name}-log", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = START) -> str:
        """The first log line containing `text` (waiting for it if it has not come yet)."""
        for line in self.lines:
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{self.name} did not log {text!r} in {timeout} s: "
                                     f"{self.lines[-20:]}") from None
            if line is None:
                raise AssertionError(f"{self.name} ended before logging {text!r}: "
                                     f"{self.lines[-20:]}")
            self.lines.append(line)
            if text in line:
                return line

    def ready(self) -> MadreProcess:
        self.wait_for("Uvicorn running on")
        return self

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        resp = requests.request(method, self.url + path, headers={"X-VX11-Token": TOKEN},
                                timeout=30, **kwargs)
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def kill(self) -> None:
        """kill -9: no chance to release anything."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=START)

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=START)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=START)
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def madre_env(database_url: str, standin_env: dict[str, str], **settings: str) -> dict[str, str]:
    """The environment of a Madre process: this process's, without any MADRE_ setting but
    the forensic folder, plus the test token, a free port, the stand-ins and `settings`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MADRE_") or k == "MADRE_FORENSIC_DIR"}
    env.update({"MADRE_PORT": str(free_port()), "VX11_TOKEN": TOKEN, "DATABASE_URL": database_url,
                "MADRE_LOG_LEVEL": "INFO", "MADRE_HEALTH_INTERVAL_SECONDS": "30",
                "MADRE_STEP_RETRIES": "0", **standin_env, **settings})
    return env


@contextlib.contextmanager
def fresh_postgres(admin_url: str) -> Iterator[str]:
    """A database of its own on the server `admin_url` points at, dropped afterwards."""
    import psycopg2

    name = f"madre_t_{uuid.uuid4().hex[:10]}"
    parts = urlsplit(admin_url)
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`. `freeze()` stops moving bytes both ways
    without closing anything (a partition: neither side hears of it); `heal()` lets the
    bytes through again, held ones first."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._stop = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, name="proxy", daemon=True)]
        self._threads[0].start()

    def url_for(self, database_url: str) -> str:
        parts = urlsplit(database_url)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    def freeze(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._stop.set()
        self._flowing.set()
        self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
            thread = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            thread.start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for sock in ready:
                    self._flowing.wait()  # frozen: bytes wait in the kernel's buffers
                    if self._stop.is_set():
                        return
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

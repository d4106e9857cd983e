"""Fixtures of the runtime tests that serve Madre as a real process (`python run.py`)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest
from helpers import TOKEN
from served import Served, madre_env

from madre.standins import StandinCluster


@pytest.fixture
def serve(tmp_path: pathlib.Path, standins: StandinCluster
          ) -> Iterator[Callable[..., tuple[Served, str]]]:
    """Start `python run.py` in `cwd` (tmp_path) with the stand-ins and the test token (`env`
    overrides), on a port the system picks; (process, URL) once it serves. Killed after the
    test if still running."""
    started: list[Served] = []

    def start(cwd: pathlib.Path = tmp_path, **env: str) -> tuple[Served, str]:
        environment = madre_env(**{
            "VX11_TOKEN": TOKEN, "MADRE_LOG_LEVEL": "INFO", "MADRE_LOG_FORMAT": "auto",
            "MADRE_HEALTH_INTERVAL_SECONDS": "30", "DATABASE_URL": "sqlite:///madre.db",
            **standins.env(), **env})
        process = Served(cwd, environment)
        started.append(process)
        return process, process.serving()

    try:
        yield start
    finally:
        for process in started:
            process.close()

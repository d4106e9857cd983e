"""Fixtures of the console tests: a Madre with the test principals (helpers.PEOPLE) and a
known console secret, an API client for it (no default token), and visitors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from console_client import SECRET, Visitor
from helpers import write_principals
from starlette.testclient import TestClient

from madre import Madre, create_app


@pytest.fixture
def console_madre(start_madre: Callable[..., Madre], tmp_path: Any) -> Callable[..., Madre]:
    """Start a Madre for the console (settings may be overridden); with principals."""

    def start(**settings: Any) -> Madre:
        settings.setdefault("principals_file", write_principals(tmp_path / "principals.toml"))
        settings.setdefault("console_secret", SECRET)
        return start_madre(**settings)

    return start


@pytest.fixture
def served(console_madre: Callable[..., Madre]) -> Iterator[tuple[Madre, Any, TestClient]]:
    """A Madre with the principals, its app, and an API client sending no token itself."""
    madre = console_madre()
    app = create_app(madre)
    with TestClient(app) as api:
        yield madre, app, api


@pytest.fixture
def visitor(served: tuple[Madre, Any, TestClient]) -> Iterator[Callable[..., Visitor]]:
    """Make visitors of the served app (each its own cookie jar), signed in or not."""
    opened: list[Visitor] = []

    def make(who: str | None = None, *, base_url: str = "http://testserver") -> Visitor:
        """A visitor, signed in as `who` when given."""
        v = Visitor(served[1], base_url).__enter__()
        opened.append(v)
        if who is not None:
            resp = v.sign_in(who)
            assert resp.status_code == 303, resp.text
        return v

    yield make
    for v in opened:
        v.__exit__(None, None, None)

"""Fixtures of the delegation tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from madre.delegation.client import ConnectionPools


@pytest.fixture
def pools() -> Iterator[ConnectionPools]:
    """Connection pools for the ModuleClients a test makes, closed after it."""
    made = ConnectionPools()
    yield made
    made.close()

"""Fixtures of the recipe tests: both anyio backends."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async recipe test runs under asyncio and under trio."""
    return str(request.param)

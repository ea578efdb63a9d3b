"""Fixtures of the client SDK tests: both anyio backends, and a client factory."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async client test runs under asyncio and under trio."""
    return str(request.param)

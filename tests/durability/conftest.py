"""Durability tests: real server processes killed, failed and corrupted on purpose."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a durability test that runs for many seconds (deselect: -m 'not slow')"
    )

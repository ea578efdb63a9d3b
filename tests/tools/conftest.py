"""Fixtures of the operator tools' tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tools_support import CoordProcess


@pytest.fixture
def coord_process() -> Iterator[Callable[..., CoordProcess]]:
    """Start coord server processes: ``coord_process(data_dir, *flags)``; all stopped after."""
    started: list[CoordProcess] = []

    def start(data_dir: Path, *args: str) -> CoordProcess:
        process = CoordProcess(data_dir, *args)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()

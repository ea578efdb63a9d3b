"""Fixtures of the shell's tests: run ``coord shell`` commands in-process."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from shell_support import ShellRun

from coord.shell import run_shell


@pytest.fixture
def shell() -> Callable[..., ShellRun]:
    """``shell(address, *commands, json_mode=False, **options)``: a one-shot run, as
    ``coord shell ADDRESS -c CMD ...`` does it, in this process."""

    def run(address: str, *commands: str, **options: Any) -> ShellRun:
        out, err = io.StringIO(), io.StringIO()
        status = run_shell(
            address, commands=commands, stdout=out, stderr=err, timeout=10, **options
        )
        return ShellRun(status, out.getvalue(), err.getvalue())

    return run

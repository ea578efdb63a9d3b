"""Helpers of the shell's tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class ShellRun:
    """What a one-shot run printed, and its exit status."""

    status: int
    out: str
    err: str

    @property
    def objects(self) -> list[dict[str, Any]]:
        """The JSON objects of a ``--json`` run, one per line."""
        return [json.loads(line) for line in self.out.splitlines()]

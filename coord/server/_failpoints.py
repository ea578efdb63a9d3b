"""Failpoints: make the dangerous instants of the write path reproducible in tests.

Set ``COORD_FAILPOINTS`` to a comma-separated list of ``name`` or ``name:N`` (crash on the
N-th time the point is reached, default 1); the process then kills itself with SIGKILL at
that point, exactly as ``kill -9`` would. Points in the server:

``before-log-write``
    a batch of entries is about to be written.
``after-log-write``
    the batch is durable but nothing of it is applied or answered.
``before-reply``
    the batch is applied; its replies are queued but not yet sent.
``mid-compaction``
    a write that compacts the log is about to be issued.

Unset, a failpoint costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["failpoint"]


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, count = item.partition(":")
        points[name] = int(count) if count else 1
    return points


_armed = _parse(os.environ.get("COORD_FAILPOINTS", ""))


def failpoint(name: str) -> None:
    """Crash the process here if the failpoint ``name`` is armed and its count is reached."""
    remaining = _armed.get(name)
    if remaining is None:
        return
    if remaining > 1:
        _armed[name] = remaining - 1
        return
    os.kill(os.getpid(), signal.SIGKILL)

"""Lease against coord and Apache ZooKeeper, under asyncio and trio: a notification before
the end, the body cancelled at the deadline, the node removed."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import coord
from coord.recipes._lease import Lease, LeaseExpired

pytestmark = pytest.mark.anyio


async def test_Lease_notifies_then_cancels_body_and_removes_node(target: Any, root: str) -> None:
    """wait_expiring fires before the deadline; at the deadline the body is cancelled,
    LeaseExpired raised and the node deleted, so the next contender gets it."""
    async with coord.connect(target.address) as a, coord.connect(target.address) as b:
        notified_at = 0.0
        body_finished = False
        with anyio.fail_after(15):
            with pytest.raises(LeaseExpired):
                async with Lease(a, f"{root}/lease", duration=1.0) as lease:
                    deadline = lease.deadline
                    assert lease.is_held and lease.fencing_token > 0
                    await lease.wait_expiring(margin=0.5)
                    notified_at = anyio.current_time()
                    await anyio.sleep_forever()
                    body_finished = True
            assert not body_finished
            assert notified_at <= deadline - 0.5 + 0.2
            assert anyio.current_time() >= deadline
            assert await a.ephemerals(root) == []
            async with Lease(b, f"{root}/lease", duration=5) as other:
                assert other.fencing_token > 0


async def test_Lease_body_ending_early_releases(target: Any, root: str) -> None:
    """A body that ends before the deadline exits normally and releases the node."""
    async with coord.connect(target.address) as a:
        with anyio.fail_after(10):
            async with Lease(a, f"{root}/lease", duration=30) as lease:
                assert 0 < lease.remaining <= 30
            assert not lease.is_held
            assert await a.ephemerals(root) == []


async def test_Lease_body_error_propagates(target: Any, root: str) -> None:
    """An exception in the body propagates unchanged; the node is released."""
    async with coord.connect(target.address) as a:
        with pytest.raises(KeyError):
            async with Lease(a, f"{root}/lease", duration=30):
                raise KeyError("x")
        assert await a.ephemerals(root) == []


def test_Lease_rejects_nonpositive_duration() -> None:
    with pytest.raises(ValueError):
        Lease(None, "/l", 0)  # type: ignore[arg-type]

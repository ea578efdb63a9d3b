"""Counter against coord and Apache ZooKeeper, under asyncio and trio."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import coord
from coord.recipes._counter import Counter

pytestmark = pytest.mark.anyio


async def test_Counter_concurrent_increments_are_never_lost(target: Any, root: str) -> None:
    """8 clients x 50 increments give exactly 400, and every returned value is distinct."""
    seen: list[int] = []

    async def worker() -> None:
        async with coord.connect(target.address) as client:
            counter = Counter(client, f"{root}/hits")
            for _ in range(50):
                seen.append(await counter.add(1))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(worker)
        async with coord.connect(target.address) as client:
            assert await Counter(client, f"{root}/hits").value() == 400
    assert sorted(seen) == list(range(1, 401))


async def test_Counter_default_set_and_float(target: Any, root: str) -> None:
    """A missing node reads as the default; set replaces; float counters add floats."""
    with anyio.fail_after(20):
        async with coord.connect(target.address) as client:
            counter = Counter(client, f"{root}/c", default=10)
            assert await counter.value() == 10
            assert await counter.add(5) == 15
            assert await counter.subtract(3) == 12
            await counter.set(100)
            assert await counter.value() == 100
            assert not await counter.compare_and_set(1, 2)
            assert await counter.compare_and_set(100, 7)
            assert await counter.value() == 7
            await Counter(client, f"{root}/fresh").set(3)
            assert await Counter(client, f"{root}/fresh").value() == 3

            ratio = Counter(client, f"{root}/f", kind=float)
            assert await ratio.value() == 0.0
            assert await ratio.add(0.25) == 0.25
            assert await ratio.add(1.5) == 1.75
            assert isinstance(await ratio.value(), float)

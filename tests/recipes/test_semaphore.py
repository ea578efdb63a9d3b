"""Semaphore against coord and Apache ZooKeeper, under asyncio and trio: never more than N
holders, and work-conserving when leases are released out of order."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import coord
from coord.recipes._semaphore import Semaphore, SemaphoreWatch, semaphore_watch


def _n(seq: int) -> str:
    return f"_c_{seq:08d}-1111-1111-1111-111111111111-lease-{seq:010d}"


def test_semaphore_watch_first_waiter_watches_children_others_their_predecessor() -> None:
    """Holders hold; the first waiter watches the list; later waiters their predecessor."""
    names = [_n(i) for i in range(5)]
    assert semaphore_watch(names, names[1], 2) == SemaphoreWatch(True)
    assert semaphore_watch(names, names[2], 2) == SemaphoreWatch(False, children=True)
    assert semaphore_watch(names, names[4], 2) == SemaphoreWatch(False, node=names[3])


def test_Semaphore_rejects_no_leases() -> None:
    with pytest.raises(ValueError):
        Semaphore(None, "/s", leases=0)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_Semaphore_never_more_than_n_holders(target: Any, root: str) -> None:
    """6 clients x 3 acquisitions of a 2-lease semaphore: at most 2 hold, and 2 do at once."""
    holding = 0
    peak = 0
    two = anyio.Event()

    async def worker() -> None:
        nonlocal holding, peak
        async with coord.connect(target.address) as client:
            for _ in range(3):
                async with Semaphore(client, f"{root}/sem", leases=2):
                    holding += 1
                    peak = max(peak, holding)
                    assert holding <= 2
                    if holding == 2:
                        two.set()
                    with anyio.move_on_after(1):  # give a second holder a chance to enter
                        await two.wait()
                    holding -= 1

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(worker)
    assert peak == 2


@pytest.mark.anyio
async def test_Semaphore_is_work_conserving_out_of_order(target: Any, root: str) -> None:
    """Leases released out of order: each release lets the next waiter in at once."""
    async with coord.connect(target.address) as client:
        path = f"{root}/sem"
        release = {k: anyio.Event() for k in "ABCD"}
        entered = {k: anyio.Event() for k in "ABCD"}

        async def holder(k: str) -> None:
            async with Semaphore(client, path, leases=2, identifier=k.encode()):
                entered[k].set()
                await release[k].wait()

        async def queued(n: int) -> None:
            while len(await client.children(path)) < n:
                names, changed = await client.children(path, watch=True)
                if len(names) >= n:
                    return
                await changed.wait()

        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                tg.start_soon(holder, "A")
                await entered["A"].wait()
                tg.start_soon(holder, "B")
                await entered["B"].wait()
                tg.start_soon(holder, "C")
                await queued(3)
                tg.start_soon(holder, "D")
                await queued(4)
                release["B"].set()  # out of order: B, not A
                await entered["C"].wait()
                assert not entered["D"].is_set()
                release["C"].set()  # again out of order
                await entered["D"].wait()
                release["A"].set()
                release["D"].set()
        assert await client.ephemerals(root) == []


def test_Semaphore_sync_facade(target: Any, root: str) -> None:
    """with Semaphore(sync_client, ...) holds and releases a lease."""
    with coord.connect_sync(target.address) as client:
        with Semaphore(client, f"{root}/sem", leases=3) as sem:
            assert sem.is_held
        assert client.ephemerals(root, timeout=5) == []

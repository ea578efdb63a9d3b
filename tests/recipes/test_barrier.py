"""Barrier and DoubleBarrier against coord and Apache ZooKeeper, under asyncio and trio."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

import coord
from coord.recipes._barrier import Barrier, DoubleBarrier

pytestmark = pytest.mark.anyio


async def test_Barrier_wait_blocks_until_removed(target: Any, root: str) -> None:
    """Waiters block while the node exists and all return once it is removed."""
    released = 0

    async def waiter(task_status: anyio.abc.TaskStatus[None]) -> None:
        nonlocal released
        async with coord.connect(target.address) as client:
            barrier = Barrier(client, f"{root}/b")
            assert await client.exists(f"{root}/b") is not None
            task_status.started()
            await barrier.wait()
            released += 1

    with anyio.fail_after(30):
        async with coord.connect(target.address) as client:
            barrier = Barrier(client, f"{root}/b")
            await barrier.wait()  # down: returns at once
            assert await barrier.create()
            assert not await barrier.create()
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    await tg.start(waiter)
                await anyio.lowlevel.checkpoint()
                assert released == 0
                assert await barrier.remove()
            assert released == 4
            assert not await barrier.remove()


async def test_DoubleBarrier_enters_and_leaves_together(target: Any, root: str) -> None:
    """5 members, 2 rounds: nobody enters before all joined, nobody leaves before all left."""
    parties = 5
    for round_ in range(2):
        joined = 0
        inside = 0
        exiting = 0
        left = 0

        async def member(index: int) -> None:
            nonlocal joined, inside, exiting, left
            async with coord.connect(target.address) as client:
                barrier = DoubleBarrier(client, f"{root}/db", parties, identifier=f"m{index}")
                joined += 1
                async with barrier:
                    assert joined == parties, "entered before everyone joined"
                    inside += 1
                    await anyio.sleep(0.01 * index)
                    exiting += 1
                assert exiting == parties, "left before everyone was leaving"
                left += 1

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for index in range(parties):
                    tg.start_soon(member, index)
        assert left == parties, round_
        async with coord.connect(target.address) as client:
            assert await client.children(f"{root}/db") == []


def test_DoubleBarrier_sync_facade(coord_server: Any, root: str) -> None:
    """With a SyncClient, ``with DoubleBarrier(...)`` enters and leaves with 3 threads."""
    joined = 0
    errors: list[BaseException] = []
    lock = threading.Lock()

    def member(index: int) -> None:
        nonlocal joined
        try:
            with coord.connect_sync(coord_server.address) as client:
                with lock:
                    joined += 1
                with DoubleBarrier(client, f"{root}/db", 3, identifier=f"m{index}"):
                    assert joined == 3
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=member, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert not any(thread.is_alive() for thread in threads)

"""Queue, PriorityQueue and LockingQueue against coord and Apache ZooKeeper, asyncio and trio."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

import anyio
import pytest

import coord
from coord.client._testing import expire_session
from coord.recipes._queue import (
    ItemLost,
    LockingQueue,
    PriorityQueue,
    Queue,
    copies,
    item_key,
    sort_items,
)

pytestmark = pytest.mark.anyio

PRODUCERS = 3
PER_PRODUCER = 20
CONSUMERS = 4


def test_Queue_item_order_is_priority_then_sequence() -> None:
    """Names sort by (priority, sequence); plain items are priority 0; others ignored."""
    names = [
        "_c_1-item-0000000003",
        "_c_2-item-p-1-0000000009",
        "_c_3-item-p5-0000000001",
        "item-0000000002",
        "_locks",
    ]
    assert item_key("_locks") is None
    assert sort_items(names) == [
        "_c_2-item-p-1-0000000009",
        "item-0000000002",
        "_c_1-item-0000000003",
        "_c_3-item-p5-0000000001",
    ]


def test_Queue_nodes_of_one_put_are_copies_of_one_item() -> None:
    """Nodes sharing a protection prefix come from one put: the first is the item, the
    others its copies; unprotected names are items of their own."""
    a = "_c_" + "a" * 8 + "-" + "-".join(["aaaa"] * 3) + "-" + "a" * 12 + "-"
    b = a.replace("a", "b")
    names = [f"{a}item-0000000005", f"{b}item-0000000004", f"{a}item-0000000003", "item-0000000001"]
    assert copies(names) == {
        "item-0000000001": ["item-0000000001"],
        f"{a}item-0000000003": [f"{a}item-0000000003", f"{a}item-0000000005"],
        f"{b}item-0000000004": [f"{b}item-0000000004"],
    }


async def _produce_and_consume(target: Any, root: str, queue_type: type[Queue]) -> None:
    """Every item consumed exactly once; each consumer sees each producer's items in order."""
    consumed: list[list[tuple[int, int]]] = []
    done = anyio.Event()

    async def producer(p: int) -> None:
        async with coord.connect(target.address) as client:
            queue = queue_type(client, f"{root}/q")
            for i in range(PER_PRODUCER):
                await queue.put(f"{p}:{i}".encode())

    async def consumer() -> None:
        mine: list[tuple[int, int]] = []
        consumed.append(mine)
        async with coord.connect(target.address) as client:
            queue = queue_type(client, f"{root}/q")
            with anyio.CancelScope() as scope:
                stop = scope

                async def stopper() -> None:
                    await done.wait()
                    stop.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(stopper)
                    while True:
                        data = await queue.get()
                        p, i = map(int, data.decode().split(":"))
                        mine.append((p, i))
                        if sum(map(len, consumed)) == PRODUCERS * PER_PRODUCER:
                            done.set()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for _ in range(CONSUMERS):
                tg.start_soon(consumer)
            for p in range(PRODUCERS):
                tg.start_soon(producer, p)
    everything = [item for mine in consumed for item in mine]
    tally = Tally(everything)
    assert len(everything) == PRODUCERS * PER_PRODUCER
    assert all(count == 1 for count in tally.values())
    for mine in consumed:
        for p in range(PRODUCERS):
            seq = [i for q, i in mine if q == p]
            assert seq == sorted(seq), "FIFO order per producer"


async def test_Queue_many_producers_and_consumers(target: Any, root: str) -> None:
    await _produce_and_consume(target, root, Queue)


async def test_LockingQueue_many_producers_and_consumers(target: Any, root: str) -> None:
    await _produce_and_consume(target, root, LockingQueue)


async def test_Queue_fifo_and_get_nowait(target: Any, root: str) -> None:
    """One consumer gets the items in the order they were put; get_nowait on empty is None."""
    with anyio.fail_after(20):
        async with coord.connect(target.address) as client:
            queue = Queue(client, f"{root}/q")
            assert await queue.get_nowait() is None
            for i in range(5):
                await queue.put(b"%d" % i)
            assert await queue.qsize() == 5
            assert [await queue.get() for _ in range(4)] == [b"0", b"1", b"2", b"3"]
            assert await queue.get_nowait() == b"4"
            assert await queue.get_nowait() is None

            async with anyio.create_task_group() as tg:
                got: list[bytes] = []

                async def getter() -> None:
                    got.append(await queue.get())

                tg.start_soon(getter)
                await queue.put(b"late")
            assert got == [b"late"]


async def test_PriorityQueue_lower_priority_first_fifo_within(target: Any, root: str) -> None:
    """Lower priorities come out first, FIFO within a priority."""
    with anyio.fail_after(20):
        async with coord.connect(target.address) as client:
            queue = PriorityQueue(client, f"{root}/pq")
            await queue.put(b"low-1", priority=5)
            await queue.put(b"high-1", priority=-1)
            await queue.put(b"mid-1")
            await queue.put(b"low-2", priority=5)
            await queue.put(b"high-2", priority=-1)
            out = [await queue.get() for _ in range(5)]
            assert out == [b"high-1", b"high-2", b"mid-1", b"low-1", b"low-2"]


async def test_LockingQueue_taken_item_hidden_then_release_and_ack(target: Any, root: str) -> None:
    """A taken item is hidden from others; release shows it again; ack removes it."""
    with anyio.fail_after(20):
        async with coord.connect(target.address) as a, coord.connect(target.address) as b:
            qa, qb = LockingQueue(a, f"{root}/lq"), LockingQueue(b, f"{root}/lq")
            await qa.put(b"one")
            item = await qa.take()
            assert item.data == b"one"
            assert await qb.take_nowait() is None
            await item.release()
            again = await qb.take()
            assert again.data == b"one"
            async with again:
                pass  # acknowledged on success
            assert await qa.take_nowait() is None
            assert await qa.qsize() == 0


async def test_LockingQueue_redelivers_after_session_expiry(target: Any, root: str) -> None:
    """An unacknowledged item comes back when its consumer's session expires."""
    with anyio.fail_after(30):
        async with coord.connect(target.address) as a, coord.connect(target.address) as b:
            qa, qb = LockingQueue(a, f"{root}/lq"), LockingQueue(b, f"{root}/lq")
            await qa.put(b"job")
            item = await qa.take()
            assert await qb.take_nowait() is None
            await expire_session(a)
            again = await qb.take()
            assert again.data == b"job"
            with pytest.raises(ItemLost):
                await item.ack()
            await again.ack()
            assert await qb.take_nowait() is None

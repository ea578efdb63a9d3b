"""ReadWriteLock against coord and Apache ZooKeeper, under asyncio and trio: readers share,
writers exclude, and the read-to-write upgrade is atomic and cannot deadlock."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

import coord
from coord.recipes._rwlock import (
    HELD_MARK,
    ReadWriteLock,
    UpgradeConflict,
    decide_upgrade,
    upgrade_nodes,
)

U1 = "_c_11111111-1111-1111-1111-111111111111-"
U2 = "_c_22222222-2222-2222-2222-222222222222-"


def _n(prefix: str, seq: int, protect: str = U1) -> str:
    return f"{protect}{prefix}{seq:010d}"


# --- the pure decision, no server ---------------------------------------------------------


def test_decide_upgrade_ignores_queued_writers_and_unmarked_readers() -> None:
    """Writers queued after my read node and unmarked (waiting) readers are no obstacle."""
    r, x, y, w = _n("read-", 1), _n("write-", 2), _n("read-", 3), _n("upgrade-0000000001-", 4)
    assert upgrade_nodes([r, x, y, w]) == {w: 1}
    d = decide_upgrade({r: True, x: False, y: False, w: False}, r, w)
    assert d.holds and d.watch is None


def test_decide_upgrade_waits_for_marked_readers() -> None:
    """Holding (marked) readers other than mine are waited for, the latest first."""
    q, r, z, w = _n("read-", 1), _n("read-", 2), _n("read-", 3), _n("upgrade-0000000002-", 4)
    d = decide_upgrade({q: True, r: True, z: True, w: False}, r, w)
    assert not d.holds and d.watch == z and not d.conflict


def test_decide_upgrade_later_of_two_upgraders_conflicts() -> None:
    """Two upgraders whose read nodes both hold: the later one conflicts, the earlier waits."""
    r1, r2 = _n("read-", 1), _n("read-", 2, U2)
    w1, w2 = _n("upgrade-0000000001-", 3), _n("upgrade-0000000002-", 4, U2)
    held = {r1: True, r2: True, w1: False, w2: False}
    assert decide_upgrade(held, r2, w2).conflict
    first = decide_upgrade(held, r1, w1)
    assert not first.conflict and first.watch == r2


# --- against servers ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_ReadWriteLock_writers_exclude_readers(target: Any, root: str) -> None:
    """4 clients mixing reads and writes: a writer never overlaps anyone; readers do share."""
    readers = writers = 0
    max_readers = 0
    all_reading = anyio.Event()

    async def worker(i: int) -> None:
        nonlocal readers, writers, max_readers
        async with coord.connect(target.address) as client:
            rw = ReadWriteLock(client, f"{root}/rw")
            for round_ in range(3):
                if (i + round_) % 3 == 0:
                    async with rw.write_lock() as w:
                        assert w.fencing_token > 0
                        writers += 1
                        assert writers == 1 and readers == 0
                        await client.exists("/")
                        writers -= 1
                else:
                    async with rw.read_lock():
                        readers += 1
                        assert writers == 0
                        max_readers = max(max_readers, readers)
                        await client.exists("/")
                        readers -= 1

    async def sharers() -> None:
        # two readers that hold at the same time (events, not timing)
        async with coord.connect(target.address) as client:
            rw = ReadWriteLock(client, f"{root}/rw2")
            both = [anyio.Event(), anyio.Event()]

            async def reader(k: int) -> None:
                async with rw.read_lock():
                    both[k].set()
                    await both[1 - k].wait()

            async with anyio.create_task_group() as tg:
                tg.start_soon(reader, 0)
                tg.start_soon(reader, 1)
            all_reading.set()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(worker, i)
            tg.start_soon(sharers)
    assert all_reading.is_set()


@pytest.mark.anyio
async def test_ReadWriteLock_two_upgraders_one_conflicts(target: Any, root: str) -> None:
    """Two readers upgrading at once: exactly one gets the write lock, the other gets
    UpgradeConflict promptly and keeps its read lock."""
    holding = [anyio.Event(), anyio.Event()]
    results: list[str] = []
    writing = 0

    async def upgrader(k: int) -> None:
        nonlocal writing
        async with coord.connect(target.address) as client:
            rw = ReadWriteLock(client, f"{root}/rw")
            async with rw.read_lock() as read:
                holding[k].set()
                await holding[1 - k].wait()
                try:
                    async with read.upgrade() as write:
                        writing += 1
                        assert writing == 1
                        assert write.fencing_token > read.fencing_token
                        results.append("upgraded")
                        writing -= 1
                except UpgradeConflict:
                    assert read.is_held
                    data, _ = await client.get(read.node or "")
                    assert data.startswith(HELD_MARK)
                    results.append("conflict")

    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(upgrader, 0)
            tg.start_soon(upgrader, 1)
    assert sorted(results) == ["conflict", "upgraded"]


@pytest.mark.anyio
async def test_ReadWriteLock_upgrade_goes_before_queued_writer(target: Any, root: str) -> None:
    """An upgrade is atomic: a writer queued behind the read lock (and a reader queued behind
    that writer) neither deadlocks it nor gets in between."""
    order: list[str] = []
    async with coord.connect(target.address) as a, coord.connect(target.address) as b:
        rw_a, rw_b = ReadWriteLock(a, f"{root}/rw"), ReadWriteLock(b, f"{root}/rw")

        async def wait_children(n: int) -> None:
            while True:
                names, changed = await a.children(f"{root}/rw", watch=True)
                if len(names) >= n:
                    return
                await changed.wait()

        async def writer() -> None:
            async with rw_b.write_lock():
                order.append("writer")

        async def late_reader() -> None:
            async with rw_b.read_lock():
                order.append("late reader")

        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg, rw_a.read_lock() as read:
                tg.start_soon(writer)
                await wait_children(2)
                tg.start_soon(late_reader)
                await wait_children(3)
                async with read.upgrade():
                    order.append("upgraded")
                order.append("downgraded")
        assert order[:2] == ["upgraded", "downgraded"]
        assert order[2] == "writer"


def test_ReadWriteLock_sync_facade(target: Any, root: str) -> None:
    """with rw.read_lock() / write_lock() / read.upgrade() through a SyncClient."""
    with coord.connect_sync(target.address) as client:
        rw = ReadWriteLock(client, f"{root}/rw")
        with rw.read_lock() as read:
            assert read.is_held
            with read.upgrade() as write:
                assert write.fencing_token > read.fencing_token
        with rw.write_lock() as w:
            assert w.is_held
        assert client.ephemerals(root, timeout=5) == []


@pytest.mark.anyio
async def test_ReadWriteLock_waiting_reader_enters_after_writer(target: Any, root: str) -> None:
    """A waiting reader behind a writer gets in once the writer leaves."""
    async with coord.connect(target.address) as a, coord.connect(target.address) as b:
        got = anyio.Event()
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                async with ReadWriteLock(a, f"{root}/rw").write_lock():

                    async def reader() -> None:
                        async with ReadWriteLock(b, f"{root}/rw").read_lock():
                            got.set()

                    tg.start_soon(reader)
                    await anyio.lowlevel.checkpoint()
                    assert not got.is_set()
                await got.wait()

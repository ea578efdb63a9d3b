"""Lock against coord and Apache ZooKeeper, under asyncio and trio: contention, cancellation,
session expiry, the sync facade."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import coord
from coord.client._testing import expire_session
from coord.recipes import Lock, LockLost

pytestmark = pytest.mark.anyio


def check_intervals(intervals: list[tuple[float, float, int]]) -> None:
    """Hold intervals never overlap and fencing tokens strictly increase with time."""
    ordered = sorted(intervals)
    for (_, end, token), (start, _, next_token) in itertools.pairwise(ordered):
        assert end <= start, "two holders at once"
        assert token < next_token, "fencing token did not increase"


async def test_Lock_mutual_exclusion_under_contention(target: Any, root: str) -> None:
    """8 clients x 4 acquisitions: never two holders, tokens strictly increasing."""
    intervals: list[tuple[float, float, int]] = []
    holding = 0

    async def worker() -> None:
        nonlocal holding
        async with coord.connect(target.address) as client:
            for _ in range(4):
                async with Lock(client, f"{root}/lock") as lock:
                    holding += 1
                    assert holding == 1
                    start = anyio.current_time()
                    await anyio.lowlevel.checkpoint()  # a checkpoint: let others run while held
                    await client.exists("/")
                    holding -= 1
                    intervals.append((start, anyio.current_time(), lock.fencing_token))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(worker)
    assert len(intervals) == 32
    check_intervals(intervals)


async def test_Lock_try_acquire_leaves_no_node(target: Any, root: str) -> None:
    """try_acquire on a held lock returns False and leaves no contender node."""
    async with coord.connect(target.address) as a, coord.connect(target.address) as b:
        async with Lock(a, f"{root}/lock", identifier=b"a") as held:
            assert held.is_held
            other = Lock(b, f"{root}/lock")
            assert not await other.try_acquire()
            assert len(await a.children(f"{root}/lock")) == 1
        assert await other.try_acquire()
        assert other.fencing_token > 0
        await other.release()
        assert await b.exists(f"{root}/lock") is None or not await b.children(f"{root}/lock")


async def test_Lock_cancelled_acquisition_leaves_no_node(target: Any, root: str) -> None:
    """An acquisition cancelled while waiting removes its node."""
    async with (
        coord.connect(target.address) as a,
        coord.connect(target.address) as b,
        Lock(a, f"{root}/lock"),
    ):
        with anyio.move_on_after(0.3) as scope:
            await Lock(b, f"{root}/lock").acquire()
        assert scope.cancelled_caught
        assert len(await a.children(f"{root}/lock")) == 1
        assert await b.ephemerals(root) == []


async def test_Lock_session_expiry_cancels_body_and_raises(target: Any, root: str) -> None:
    """Session expiry while holding: the body is cancelled, LockLost raised; the next
    contender gets the lock only after the expiry, with a larger token."""
    async with coord.connect(target.address) as a, coord.connect(target.address) as b:
        entered = anyio.Event()
        expired_at = 0.0
        body_finished = False
        first_token = 0
        got: list[tuple[float, int]] = []

        async def holder() -> None:
            nonlocal body_finished, first_token
            with pytest.raises(LockLost):
                async with Lock(a, f"{root}/lock") as lock:
                    first_token = lock.fencing_token
                    entered.set()
                    await anyio.sleep_forever()
                    body_finished = True

        async def contender() -> None:
            await entered.wait()
            async with Lock(b, f"{root}/lock") as lock:
                got.append((anyio.current_time(), lock.fencing_token))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(holder)
                tg.start_soon(contender)
                await entered.wait()
                await anyio.wait_all_tasks_blocked() if hasattr(
                    anyio, "wait_all_tasks_blocked"
                ) else None
                expired_at = anyio.current_time()
                await expire_session(a)
        assert not body_finished
        assert got and got[0][0] >= expired_at and got[0][1] > first_token


def test_Lock_sync_facade(target: Any, root: str) -> None:
    """with Lock(sync_client, path): mutual exclusion between threads of two clients."""
    holding = 0
    violations = 0
    mutex = threading.Lock()

    def worker(client: coord.SyncClient) -> None:
        nonlocal holding, violations
        for _ in range(3):
            with Lock(client, f"{root}/lock") as lock:
                with mutex:
                    holding += 1
                    violations += holding > 1
                assert lock.fencing_token > 0
                client.exists("/", timeout=5)
                with mutex:
                    holding -= 1

    with coord.connect_sync(target.address) as a, coord.connect_sync(target.address) as b:
        threads = [threading.Thread(target=worker, args=(c,)) for c in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert violations == 0
        assert a.ephemerals(root, timeout=5) == []

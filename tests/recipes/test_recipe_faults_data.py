"""The other recipes under faults, against coord and Apache ZooKeeper, asyncio and trio:
connections cut through a TCP proxy, session expiry (``expire_session``, or a partition
past the session timeout), and a durable coord server killed and restarted.

What must hold: queues lose no item and deliver none twice; a LockingQueue item taken by
an expired consumer comes back; group and registry membership survive cuts and restarts,
leave with an expired session and come back when re-joined; Semaphore and ReadWriteLock
never have more holders than allowed; barriers complete across cuts; no counter
increment is lost or doubled; a ConfigWatcher misses no change.
"""

from __future__ import annotations

import itertools
from collections import Counter as Tally
from typing import Any

import anyio
import pytest

import coord
from coord.client import Client, ConnectionState
from coord.client._testing import expire_session
from coord.protocol import SessionExpiredError
from coord.recipes import (
    Barrier,
    ConfigWatcher,
    Counter,
    DoubleBarrier,
    Group,
    ItemLost,
    LockingQueue,
    LockLost,
    PriorityQueue,
    Queue,
    ReadWriteLock,
    Semaphore,
    ServiceRegistry,
)
from coord.testing import TcpProxy

pytestmark = pytest.mark.anyio


SESSION = 3.0  # seconds: for the partitions that must end in an expiry
LONG = 10.0  # seconds: sessions that must survive every cut
QUEUES = {"Queue": Queue, "PriorityQueue": PriorityQueue, "LockingQueue": LockingQueue}


async def wait_state(client: Client, wanted: ConnectionState) -> None:
    with anyio.fail_after(20):
        async for state in client.states():
            if state is wanted:
                return
    raise AssertionError(f"the client never reached {wanted}")


async def cut_repeatedly(
    proxy: TcpProxy,
    done: anyio.Event,
    *,
    cuts: int,
    every: float,
    first: anyio.Event | None = None,
) -> int:
    """Cut every connection through ``proxy`` every ``every`` s, ``cuts`` times or until
    ``done``; set ``first`` once a cut hit a connection; return how many were cut."""
    total = 0
    # Start once someone is connected (a slow handshake must not use up the cuts).
    with anyio.move_on_after(20):
        while proxy.connection_count == 0 and not done.is_set():  # noqa: ASYNC110
            await anyio.sleep(0.01)
    for k in range(cuts):
        if k:  # the first cut at once: fast writers may be done within ``every``
            with anyio.move_on_after(every):
                await done.wait()
        if done.is_set():
            break
        total += await proxy.cut()
        if total and first is not None:
            first.set()
    if first is not None:
        first.set()
    return total


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals that contain one instant (ends are exclusive)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    return max(itertools.accumulate(delta for _, delta in events), default=0)


# --- queues -------------------------------------------------------------------------------------


@pytest.fixture(params=sorted(QUEUES))
def queue_type(request: pytest.FixtureRequest) -> type[Queue]:
    return QUEUES[request.param]


async def put(queue: Queue, data: bytes, index: int) -> None:
    if isinstance(queue, PriorityQueue):
        await queue.put(data, priority=index % 3)
    else:
        await queue.put(data)


async def test_queues_lose_and_duplicate_nothing_across_cuts(
    target: Any, root: str, queue_type: type[Queue]
) -> None:
    """A producer and three consumers whose connections are cut again and again: every
    item is consumed exactly once, and no claim witness or lock is left behind."""
    items = [f"item-{i}".encode() for i in range(30)]
    path = f"{root}/q"
    consumed: list[bytes] = []
    done, quiet, first_cut = anyio.Event(), anyio.Event(), anyio.Event()
    async with TcpProxy(target.host, target.port) as proxy:

        async def producer() -> None:
            async with coord.connect(proxy.address, session_timeout=LONG) as client:
                queue = queue_type(client, path)
                for index, data in enumerate(items):
                    if index == len(items) // 3:
                        await first_cut.wait()  # the rest is produced under cuts
                    await put(queue, data, index)

        async def consumer() -> None:
            async with coord.connect(proxy.address, session_timeout=LONG) as client:
                queue = queue_type(client, path)
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:

                        async def stop() -> None:
                            await done.wait()
                            scope.cancel()

                        tg.start_soon(stop)
                        while True:
                            consumed.append(await queue.get())
                            if len(consumed) >= len(items):
                                done.set()
                # A client closed while suspended cannot close its session (whose
                # ephemerals would then stay until it expires): reconnect first.
                await quiet.wait()
                await client.exists("/")

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(consumer)
                tg.start_soon(producer)
                cut = await cut_repeatedly(proxy, done, cuts=12, every=0.05, first=first_cut)
                quiet.set()
    assert cut > 0
    duplicates = [data for data, count in Tally(consumed).items() if count > 1]
    assert not duplicates, f"delivered twice: {duplicates}"
    assert sorted(consumed) == sorted(items)
    async with coord.connect(target.address) as client:
        leftovers = await client.children(path)
        for helper in ("_taken", "_locks"):
            if helper in leftovers:
                assert await client.children(f"{path}/{helper}") == [], helper
        assert await queue_type(client, path).qsize() == 0


async def test_queues_consumer_expiry_loses_nothing(
    target: Any, root: str, queue_type: type[Queue]
) -> None:
    """A consumer whose session expires between two gets: its next get raises
    SessionExpiredError; the items it did not get are all delivered to another consumer,
    once."""
    items = [f"item-{i}".encode() for i in range(6)]
    path = f"{root}/q"
    async with coord.connect(target.address) as a, coord.connect(target.address) as b:
        with anyio.fail_after(30):
            for index, data in enumerate(items):
                await put(queue_type(b, path), data, index)
            got_a = [await queue_type(a, path).get() for _ in range(2)]
            await expire_session(a)
            with pytest.raises(SessionExpiredError):
                await queue_type(a, path).get()
            got_b = [await queue_type(b, path).get() for _ in range(len(items) - 2)]
            assert await queue_type(b, path).get_nowait() is None
    assert sorted(got_a + got_b) == sorted(items)


async def test_LockingQueue_items_of_an_expired_consumer_come_back(target: Any, root: str) -> None:
    """Items taken (not acknowledged) by a consumer whose session expires become visible
    again and are delivered to another consumer; the first one's ack raises ItemLost. An
    item taken across a cut keeps its lock (same session) and its ack works."""
    path = f"{root}/lq"
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(proxy.address, session_timeout=LONG) as a,
        coord.connect(target.address) as b,
    ):
        with anyio.fail_after(30):
            queue_a, queue_b = LockingQueue(a, path), LockingQueue(b, path)
            for data in (b"1", b"2", b"3"):
                await queue_b.put(data)
            kept = await queue_a.take()
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_state, a, ConnectionState.RECONNECTED)
                await anyio.wait_all_tasks_blocked()
                await proxy.cut()
            await kept.ack()  # the lock survived the cut
            taken = [await queue_a.take(), await queue_a.take()]
            assert await queue_b.take_nowait() is None  # both hidden
            await expire_session(a)
            back = [await queue_b.take(), await queue_b.take()]
            assert sorted(item.data for item in back) == sorted(item.data for item in taken)
            for item in taken:
                with pytest.raises(ItemLost):
                    await item.ack()
            for item in back:
                await item.ack()
            assert await queue_b.qsize() == 0


# --- group and service registry -----------------------------------------------------------------


async def test_Group_and_registry_survive_cuts_and_come_back_after_expiry(
    target: Any, root: str
) -> None:
    """A member (and a registered instance) through a proxy: a cut changes nothing (same
    session, same nodes); an expiry removes both, which watchers on another client see,
    without cancelling the bodies; re-joining on a new client brings them back."""
    group_path, services = f"{root}/party", f"{root}/services"
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(target.address) as watcher,
    ):
        with anyio.fail_after(30):
            async with (
                Group(watcher, group_path).watch() as members,
                ServiceRegistry(watcher, root=services).watch("www") as instances,
            ):
                assert await members.__anext__() == {}
                assert await instances.__anext__() == []
                # leaving after the expiry (below) is quiet: the nodes are gone already
                async with (
                    coord.connect(proxy.address, session_timeout=LONG) as m,
                    Group(m, group_path).join("m1", b"one"),
                    ServiceRegistry(m, root=services).register(
                        "www", "10.0.0.1:80", instance_id="i1"
                    ) as instance,
                ):
                    assert await members.__anext__() == {"m1": b"one"}
                    assert await instances.__anext__() == [instance]
                    session = m.session_id
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(wait_state, m, ConnectionState.RECONNECTED)
                        await anyio.wait_all_tasks_blocked()
                        assert await proxy.cut() == 1
                    assert m.session_id == session
                    assert sorted(await m.ephemerals(root)) == [
                        f"{group_path}/m1",
                        f"{services}/www/i1",
                    ]
                    await expire_session(m)
                    assert await members.__anext__() == {}
                    assert await instances.__anext__() == []
                async with (
                    coord.connect(target.address) as again,
                    Group(again, group_path).join("m1", b"one"),
                    ServiceRegistry(again, root=services).register(
                        "www", "10.0.0.1:80", instance_id="i1"
                    ),
                ):
                    assert await members.__anext__() == {"m1": b"one"}
                    assert [i.id for i in await instances.__anext__()] == ["i1"]


# --- Semaphore and ReadWriteLock -------------------------------------------------------------


async def test_Semaphore_and_ReadWriteLock_never_too_many_holders(target: Any, root: str) -> None:
    """Holders through a proxy, contenders direct. A short cut keeps every hold; then a
    partition past the session timeout: the partitioned holders give up (LockLost) and
    the contenders get in only after the servers deleted their nodes. Recorded hold
    intervals: never more than ``leases`` semaphore holders, a writer never beside
    anyone."""
    sem_path, rw_path = f"{root}/sem", f"{root}/rw"
    sem_holds: list[tuple[float, float]] = []
    rw_holds: list[tuple[float, float, str]] = []
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(target.address, session_timeout=LONG) as direct,
    ):
        held = anyio.Event()
        release = anyio.Event()
        count = 0

        async def partitioned() -> None:
            nonlocal count
            async with coord.connect(proxy.address, session_timeout=SESSION) as client:

                async def sem_holder() -> None:
                    nonlocal count
                    with pytest.raises(LockLost):
                        async with Semaphore(client, sem_path, leases=2):
                            start = anyio.current_time()
                            count += 1
                            try:
                                await anyio.sleep_forever()
                            finally:
                                sem_holds.append((start, anyio.current_time()))

                async def reader() -> None:
                    nonlocal count
                    with pytest.raises(LockLost):
                        async with ReadWriteLock(client, rw_path).read_lock():
                            start = anyio.current_time()
                            count += 1
                            try:
                                await anyio.sleep_forever()
                            finally:
                                rw_holds.append((start, anyio.current_time(), "read"))

                async with anyio.create_task_group() as inner:
                    inner.start_soon(sem_holder)
                    inner.start_soon(reader)
                    with anyio.fail_after(10):
                        while count < 2:  # noqa: ASYNC110 - both recorded their start
                            await anyio.sleep(0.01)
                    held.set()
                await proxy.cut()  # never forward the held connections later

        async def steady_holder() -> None:
            await held.wait()
            async with Semaphore(direct, sem_path, leases=2):
                start = anyio.current_time()
                await release.wait()
            sem_holds.append((start, anyio.current_time()))

        async def sem_waiter() -> None:
            await held.wait()
            await anyio.wait_all_tasks_blocked()
            async with Semaphore(direct, sem_path, leases=2):
                now = anyio.current_time()
                sem_holds.append((now, now))
            release.set()

        async def writer() -> None:
            await held.wait()
            async with ReadWriteLock(direct, rw_path).write_lock():
                now = anyio.current_time()
                rw_holds.append((now, now, "write"))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(partitioned)
                tg.start_soon(steady_holder)
                await held.wait()
                # a short cut: the holds are kept (the body is not cancelled)
                assert await proxy.cut() == 1
                tg.start_soon(sem_waiter)
                tg.start_soon(writer)
                await anyio.sleep(0.5)
                assert not sem_holds and not rw_holds, "a hold was lost to a short cut"
                proxy.stall()
    assert len(sem_holds) == 3 and len(rw_holds) == 2
    assert max_overlap(sem_holds) <= 2
    (_, read_end, _), (write_start, _, _) = sorted(rw_holds)
    assert read_end <= write_start, "a writer beside a reader"


# --- barriers -------------------------------------------------------------------------------------


async def test_barriers_complete_across_cuts_and_expiry_is_reported(target: Any, root: str) -> None:
    """A Barrier waiter whose connection is cut while the barrier is removed still
    returns; DoubleBarrier members enter together although one's connection is cut while
    it waits; a member whose session expires while entering gets SessionExpiredError and
    leaves no node."""
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(proxy.address, session_timeout=LONG) as cut_client,
        coord.connect(target.address) as direct,
    ):
        with anyio.fail_after(30):
            barrier = Barrier(direct, f"{root}/barrier")
            await barrier.create()
            async with anyio.create_task_group() as tg:
                tg.start_soon(Barrier(cut_client, f"{root}/barrier").wait)
                await anyio.wait_all_tasks_blocked()
                proxy.refuse()  # stay disconnected while the barrier goes
                await proxy.cut()
                await barrier.remove()
                proxy.accept()

            path = f"{root}/double"
            entered: list[str] = []

            async def member(client: Client, name: str) -> None:
                async with DoubleBarrier(client, path, 2, identifier=name):
                    entered.append(name)

            async with anyio.create_task_group() as tg:
                tg.start_soon(member, cut_client, "a")
                await anyio.wait_all_tasks_blocked()
                assert await proxy.cut() == 1
                tg.start_soon(member, direct, "b")
            assert sorted(entered) == ["a", "b"]

            async with coord.connect(target.address) as doomed, anyio.create_task_group() as tg:

                async def enter_and_fail() -> None:
                    with pytest.raises(SessionExpiredError):
                        await DoubleBarrier(doomed, f"{root}/never", 2, identifier="x").enter()

                tg.start_soon(enter_and_fail)
                # expire only once the member node is in (it waits for the second party)
                stat, appeared = await direct.exists(f"{root}/never/x", watch=True)
                if stat is None:
                    await appeared.wait()
                await expire_session(doomed)
            assert await direct.children(f"{root}/never") == []


# --- counter --------------------------------------------------------------------------------------


async def test_Counter_no_increment_lost_or_doubled_across_cuts(target: Any, root: str) -> None:
    """Three writers adding 1 from the same values (maximal contention) while their
    connections are cut again and again: the final value is exactly the number of adds,
    and no write witness is left."""
    path, per_writer = f"{root}/counter", 15
    done = anyio.Event()
    finished = 0
    async with TcpProxy(target.host, target.port) as proxy:

        async def writer() -> None:
            nonlocal finished
            async with coord.connect(proxy.address, session_timeout=LONG) as client:
                counter = Counter(client, path)
                for _ in range(per_writer):
                    await counter.add(1)
            finished += 1
            if finished == 3:
                done.set()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(writer)
                assert await cut_repeatedly(proxy, done, cuts=12, every=0.05) > 0
    async with coord.connect(target.address) as client:
        assert await Counter(client, path).value() == 3 * per_writer
        assert await client.children(path) == []


# --- ConfigWatcher --------------------------------------------------------------------------------


async def test_ConfigWatcher_misses_no_change_across_cuts(target: Any, root: str) -> None:
    """A watcher (one node, and a subtree) whose connection is cut after every change made
    by another client: each change is seen, and changes made while it was disconnected
    (data, a new child, a deleted child) arrive once it reconnects."""
    path = f"{root}/config"
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(proxy.address, session_timeout=LONG) as client,
        coord.connect(target.address) as writer,
    ):
        with anyio.fail_after(40):
            await writer.create(path, b"v0", makepath=True)
            async with (
                ConfigWatcher(client, path) as node,
                ConfigWatcher(client, root, recursive=True) as tree,
            ):
                assert await node.__anext__() == b"v0"
                assert await tree.__anext__() == {root: b"", path: b"v0"}
                for version in range(1, 8):
                    value = f"v{version}".encode()
                    if version % 2:
                        proxy.refuse()  # the change happens while disconnected
                        await proxy.cut()
                        await writer.set(path, value)
                        proxy.accept()
                    else:
                        await writer.set(path, value)
                        await proxy.cut()
                    assert await node.__anext__() == value
                    assert (await tree.__anext__())[path] == value
                proxy.refuse()
                await proxy.cut()
                await writer.create(f"{path}/child", b"c")
                await writer.set(path, b"last")
                proxy.accept()
                assert await node.__anext__() == b"last"
                expected = {root: b"", path: b"last", f"{path}/child": b"c"}
                while (snapshot := await tree.__anext__()) != expected:
                    assert set(snapshot) <= set(expected)
                proxy.refuse()
                await proxy.cut()
                await writer.delete(f"{path}/child")
                proxy.accept()
                assert await tree.__anext__() == {root: b"", path: b"last"}


# --- a durable server restarted under every recipe -----------------------------------------------


async def test_recipes_survive_a_durable_server_restart(coord_process: Any) -> None:
    """SIGKILL and restart of a durable coord server (same port, same data) while a queue
    is half consumed, a counter counts, a member and an instance are registered, a
    semaphore and a read lock are held and a watcher watches: the sessions survive, every
    hold and membership is intact, nothing is lost or repeated, and the watcher sees the
    change made after the restart."""
    address = coord_process.address
    async with (
        coord.connect(address, session_timeout=LONG) as client,
        coord.connect(address, session_timeout=LONG) as other,
    ):
        with anyio.fail_after(60):
            queue = Queue(client, "/r/queue")
            for i in range(6):
                await queue.put(f"{i}".encode())
            got = [await queue.get() for _ in range(3)]
            counter = Counter(client, "/r/counter")
            for _ in range(3):
                await counter.add(1)
            async with (
                Group(client, "/r/group").join("m1", b"one"),
                ServiceRegistry(client, root="/r/services").register(
                    "www", "10.0.0.1:80", instance_id="i1"
                ),
                Semaphore(client, "/r/sem", leases=1) as sem,
                ReadWriteLock(client, "/r/rw").read_lock() as read,
                ConfigWatcher(other, "/r/config") as watcher,
            ):
                assert await watcher.__anext__() is None
                session = client.session_id
                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait_state, client, ConnectionState.RECONNECTED)
                    tg.start_soon(wait_state, other, ConnectionState.RECONNECTED)
                    await anyio.wait_all_tasks_blocked()
                    coord_process.kill()
                    await anyio.to_thread.run_sync(coord_process.start)
                assert client.session_id == session
                await client.create("/r/config", b"after")
                assert await watcher.__anext__() == b"after"
                assert sem.is_held and read.is_held
                assert await Group(other, "/r/group").members() == {"m1": b"one"}
                found = await ServiceRegistry(other, root="/r/services").discover("www")
                assert [i.id for i in found] == ["i1"]
                assert await Counter(other, "/r/counter").add(1) == 4
                got += [await Queue(other, "/r/queue").get() for _ in range(3)]
                assert await Queue(other, "/r/queue").get_nowait() is None
        assert sorted(got) == [f"{i}".encode() for i in range(6)]
        # only the queue's claim witnesses, kept for their grace period
        assert all("/r/queue/_taken/" in node for node in await other.ephemerals("/r"))

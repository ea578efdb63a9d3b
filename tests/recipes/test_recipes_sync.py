"""Every recipe through the sync facade (``with`` and blocking iteration on a SyncClient),
against coord and Apache ZooKeeper, with the client's event loop on asyncio and on trio."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import coord
from coord import SyncClient
from coord.client._testing import expire_session
from coord.recipes import (
    Barrier,
    ConfigWatcher,
    Counter,
    DoubleBarrier,
    Election,
    Group,
    LeadershipLost,
    Lease,
    LeaseExpired,
    Lock,
    LockingQueue,
    LockLost,
    Partitioner,
    PriorityQueue,
    Queue,
    ReadWriteLock,
    Semaphore,
    ServiceRegistry,
)

WAIT = 10.0  # seconds: the bound of every blocking step


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    """The anyio backend of the SyncClient's event loop thread."""
    return str(request.param)


@pytest.fixture
def sync(target: Any, backend: str) -> Iterator[SyncClient]:
    with coord.connect_sync(target.address, backend=backend) as client:
        yield client


@pytest.fixture
def sync2(target: Any, backend: str) -> Iterator[SyncClient]:
    with coord.connect_sync(target.address, backend=backend) as client:
        yield client


def run_threads(*targets: Any) -> None:
    """Run each callable in a thread; re-raise the first error."""
    errors: list[BaseException] = []

    def wrap(target: Any) -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    if errors:
        raise errors[0]


# --- holds ------------------------------------------------------------------------------------


def test_Lock_with_excludes_and_reports_expiry(
    sync: SyncClient, sync2: SyncClient, root: str
) -> None:
    """``with Lock(sync, path)`` holds (another client's try_acquire fails); a session
    expiry during the body is reported as LockLost when the body ends."""
    path = f"{root}/lock"
    with Lock(sync, path) as lock:
        assert lock.is_held and lock.fencing_token > 0
        assert sync2.run(Lock(sync2, path).try_acquire) is False
    assert sync.ephemerals(root, timeout=WAIT) == []
    with pytest.raises(LockLost), Lock(sync, path):
        sync.run(expire_session, sync.client, timeout=WAIT)
    with Lock(sync2, path) as other:  # free again
        assert other.is_held


def test_ReadWriteLock_with_read_write_and_upgrade(
    sync: SyncClient, sync2: SyncClient, root: str
) -> None:
    """Two readers share; a writer is alone; a read lock upgrades in place."""
    path = f"{root}/rw"
    with ReadWriteLock(sync, path).read_lock() as read:
        with ReadWriteLock(sync2, path).read_lock() as other_read:
            assert read.is_held and other_read.is_held
            assert sync2.run(ReadWriteLock(sync2, path).write_lock().try_acquire) is False
        with read.upgrade() as write:
            assert write.is_held and write.fencing_token > read.fencing_token
    with ReadWriteLock(sync2, path).write_lock() as write:
        assert sync.run(ReadWriteLock(sync, path).read_lock().try_acquire) is False
        assert write.is_held
    assert sync.ephemerals(root, timeout=WAIT) == []


def test_Semaphore_with_admits_n_holders(sync: SyncClient, sync2: SyncClient, root: str) -> None:
    """Two leases: two holders at once, the third try_acquire fails."""
    path = f"{root}/sem"
    with Semaphore(sync, path, leases=2), Semaphore(sync2, path, leases=2) as second:
        assert second.is_held
        assert sync.run(Semaphore(sync, path, leases=2).try_acquire) is False
    assert sync.ephemerals(root, timeout=WAIT) == []


def test_Lease_with_holds_until_the_deadline(sync: SyncClient, root: str) -> None:
    """A sync lease reports its remaining time; a body that outlives the deadline gets
    LeaseExpired when it ends, and the node is gone."""
    path = f"{root}/lease"
    with Lease(sync, path, duration=30) as lease:
        assert lease.is_held and 25 < lease.remaining <= 30
        assert lease.fencing_token > 0
    with pytest.raises(LeaseExpired), Lease(sync, path, duration=0.2) as short:
        while short.remaining > 0:
            time.sleep(0.05)
        assert not short.is_held
    assert sync.ephemerals(root, timeout=WAIT) == []


def test_Election_with_leads_resigns_and_reports_expiry(
    sync: SyncClient, sync2: SyncClient, root: str
) -> None:
    """``with election.leadership()``: leads, is observed; resign hands over to the next
    candidate (a thread of another client); an expiry is LeadershipLost at the end."""
    path = f"{root}/election"
    first = Election(sync, path, data=b"a")
    second_led = threading.Event()

    def second() -> None:
        with Election(sync2, path, data=b"b").leadership():
            assert sync2.run(Election(sync2, path).leader) == b"b"
            second_led.set()

    with first.leadership():
        assert first.is_leader
        assert sync.run(first.leader) == b"a"
        thread = threading.Thread(target=second)
        thread.start()
        sync.run(first.resign)
        assert not first.is_leader
        assert second_led.wait(WAIT)
    thread.join(WAIT)
    with pytest.raises(LeadershipLost), Election(sync, path, data=b"a").leadership():
        sync.run(expire_session, sync.client, timeout=WAIT)


def test_DoubleBarrier_with_enters_and_leaves_together(
    sync: SyncClient, sync2: SyncClient, root: str
) -> None:
    """Two members in two threads: neither is inside before both entered."""
    path = f"{root}/db"
    inside: list[int] = []
    # Neither leaves before both looked: a member that leaves removes its node at once.
    both_looked = threading.Barrier(2, timeout=WAIT)

    def member(client: SyncClient, index: int) -> None:
        with DoubleBarrier(client, path, 2, identifier=f"m{index}"):
            inside.append(index)
            assert client.run(DoubleBarrier(client, path, 2)._members) == ["m0", "m1"]
            both_looked.wait()

    run_threads(lambda: member(sync, 0), lambda: member(sync2, 1))
    assert sorted(inside) == [0, 1]


def test_Partitioner_with_shares_and_rebalances(
    sync: SyncClient, sync2: SyncClient, root: str
) -> None:
    """Alone a member owns everything; with a second member the items are shared."""
    path, items = f"{root}/parts", range(6)
    with Partitioner(sync, path, items, identifier="w1") as mine:
        assert mine.next_assignment(timeout=WAIT) == frozenset(items)
        with Partitioner(sync2, path, items, identifier="w2") as theirs:
            other = theirs.next_assignment(timeout=WAIT)
            share = mine.next_assignment(timeout=WAIT)
            assert share | other == frozenset(items) and not share & other
            assert len(share) == len(other) == 3
    assert sync.children(path, timeout=WAIT) == []


# --- membership and watchers ------------------------------------------------------------------


def test_Group_with_join_and_blocking_watch(sync: SyncClient, sync2: SyncClient, root: str) -> None:
    """``with group.join(...)`` is a member while the body runs; ``group.watch()`` iterates
    the membership, blocking."""
    path = f"{root}/party"
    with Group(sync2, path).watch() as snapshots:
        assert snapshots.next_snapshot(timeout=WAIT) == {}
        with Group(sync, path).join("a", b"data-a") as member:
            assert snapshots.next_snapshot(timeout=WAIT) == {"a": b"data-a"}
            sync.run(member.update, b"new")
            assert next(snapshots) == {"a": b"new"}
        assert snapshots.next_snapshot(timeout=WAIT) == {}
    assert sync.run(Group(sync, path).members) == {}


def test_ServiceRegistry_with_register_and_blocking_watch(
    sync: SyncClient, sync2: SyncClient, root: str
) -> None:
    """``with registry.register(...)`` advertises the instance; ``watch`` follows it."""
    registry = ServiceRegistry(sync2, root=f"{root}/services")
    with registry.watch("www") as instances:
        assert instances.next_snapshot(timeout=WAIT) == []
        with ServiceRegistry(sync, root=f"{root}/services").register(
            "www", "10.0.0.7:80", {"weight": 2}
        ) as instance:
            (seen,) = instances.next_snapshot(timeout=WAIT)
            assert seen == instance and seen.metadata == {"weight": 2}
            assert sync2.run(registry.discover, "www") == [instance]
        assert instances.next_snapshot(timeout=WAIT) == []


def test_ConfigWatcher_with_and_blocking_iteration(
    sync: SyncClient, sync2: SyncClient, root: str
) -> None:
    """A sync watcher yields the current value, then every change; a timeout is a
    TimeoutError; closing ends the iteration."""
    path = f"{root}/config"
    with ConfigWatcher(sync, path) as watcher:
        assert watcher.next_snapshot(timeout=WAIT) is None
        with pytest.raises(TimeoutError):
            watcher.next_snapshot(timeout=0.2)
        sync2.create(path, b"v1", makepath=True, timeout=WAIT)
        assert watcher.next_snapshot(timeout=WAIT) == b"v1"
        sync2.set(path, b"v2", timeout=WAIT)
        assert next(watcher) == b"v2"
    with pytest.raises(StopIteration):
        next(watcher)
    with ConfigWatcher(sync, root, recursive=True) as tree:
        assert next(iter(tree)) == {root: b"", path: b"v2"}


# --- data recipes (methods through sync.run) --------------------------------------------------


def test_Counter_Barrier_and_queues_through_run(
    sync: SyncClient, sync2: SyncClient, root: str
) -> None:
    """The recipes that are no scope are used through ``sync.run``; LockingQueue items
    are acknowledged by ``with item:``."""
    counter = Counter(sync, f"{root}/counter")
    run_threads(*[lambda: [sync.run(counter.add, 1) for _ in range(5)]] * 2)
    assert sync2.run(Counter(sync2, f"{root}/counter").value) == 10

    barrier = Barrier(sync, f"{root}/barrier")
    assert sync.run(barrier.create)
    passed = threading.Event()

    def waiter() -> None:
        sync2.run(Barrier(sync2, f"{root}/barrier").wait, timeout=WAIT)
        passed.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not passed.wait(0.2)
    assert sync.run(barrier.remove)
    assert passed.wait(WAIT)
    thread.join(WAIT)

    queue = Queue(sync, f"{root}/q")
    for data in (b"1", b"2"):
        sync.run(queue.put, data)
    assert [sync2.run(Queue(sync2, f"{root}/q").get, timeout=WAIT) for _ in "12"] == [b"1", b"2"]

    pq = PriorityQueue(sync, f"{root}/pq")
    sync.run(pq.put, b"low", 5)
    sync.run(pq.put, b"high", 1)
    assert sync.run(pq.get, timeout=WAIT) == b"high"

    lq = LockingQueue(sync, f"{root}/lq")
    sync.run(lq.put, b"job")
    with sync.run(lq.take, timeout=WAIT) as item:
        assert item.data == b"job"
        assert sync2.run(LockingQueue(sync2, f"{root}/lq").take_nowait) is None
    assert sync.run(lq.qsize) == 0


def test_sync_forms_need_a_SyncClient(target: Any, root: str) -> None:
    """``with`` on a recipe built on an async client is a clear TypeError."""

    async def check() -> None:
        async with coord.connect(target.address) as client:
            for scope in (
                Lock(client, f"{root}/l"),
                Lease(client, f"{root}/l", duration=1),
                Election(client, f"{root}/e").leadership(),
                Group(client, f"{root}/g").join("x"),
                ConfigWatcher(client, f"{root}/c"),
                Partitioner(client, f"{root}/p", [1], identifier="x"),
            ):
                with pytest.raises(TypeError, match="async with"), scope:
                    pass

    anyio.run(check)

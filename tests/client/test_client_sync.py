"""The sync facade, from threads: same operations, timeouts, callbacks on their own thread,
blocking watch iterators -- against coord and ZooKeeper, with an asyncio or trio loop."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import coord
from coord import ConnectionState, EventType, NoNodeError
from coord.client import SetResult, WatchedEvent
from coord.testing import SyncTcpProxy


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_SyncClient_operations_and_transactions(target: Any, root: str, backend: str) -> None:
    with coord.connect_sync(target.address, session_timeout=5, backend=backend) as zk:
        assert zk.state is ConnectionState.CONNECTED and zk.session_id
        assert zk.create(root, b"a", timeout=5) == root
        assert zk.get(root)[0] == b"a"
        assert zk.set(root, b"b", version=0).version == 1
        zk.create(f"{root}/x/y", makepath=True)
        assert zk.children(root) == ["x"]
        assert zk.children_with_stat(root)[1].num_children == 1
        assert zk.all_children_number(root) == 2
        assert zk.exists(f"{root}/nope") is None
        results = zk.transaction().check(root, 1).set(root, b"c").commit(timeout=5)
        assert isinstance(results[1], SetResult)
        acl, _ = zk.get_acl(root)
        zk.set_acl(root, acl)
        zk.sync()
        assert zk.whoami()
        assert zk.multi_read(coord.client.GetData(root))[0][0] == b"c"  # type: ignore[index]
        with pytest.raises(NoNodeError):
            zk.get(f"{root}/nope")
        zk.delete(root, recursive=True)
    assert zk.state.value == "closed"
    with pytest.raises(coord.ClientClosedError):
        zk.get("/")


def test_SyncClient_watch_callbacks_run_on_a_dedicated_thread(target: Any, root: str) -> None:
    """One-shot watch callbacks and state listeners run on the client's callback thread,
    which may call the client."""
    fired: queue.Queue[tuple[WatchedEvent, str, bytes]] = queue.Queue()
    with coord.connect_sync(target.address, session_timeout=5) as zk:
        zk.create(root, b"0")

        def on_change(event: WatchedEvent) -> None:
            data = zk.get(root)[0]  # calling the client from a callback is fine
            fired.put((event, threading.current_thread().name, data))

        zk.get(root, watch=on_change)
        zk.exists(f"{root}/child", watch=on_change)
        zk.children(root, watch=on_change)
        zk.set(root, b"1")
        event, thread, data = fired.get(timeout=5)
        assert event.type is EventType.NODE_DATA_CHANGED and data == b"1"
        assert thread.startswith("coord-callbacks") and thread != threading.current_thread().name
        zk.create(f"{root}/child")
        kinds = {fired.get(timeout=5)[0].type, fired.get(timeout=5)[0].type}
        assert kinds == {EventType.NODE_CREATED, EventType.NODE_CHILDREN_CHANGED}
        zk.delete(root, recursive=True)


def test_SyncClient_watch_streams_are_blocking_iterators(target: Any, root: str) -> None:
    with coord.connect_sync(target.address, session_timeout=5) as zk:
        zk.create(root)
        with zk.watch_children(root) as events:
            zk.create(f"{root}/a")
            assert events.next_event(timeout=5).type is EventType.NODE_CHILDREN_CHANGED
            zk.delete(f"{root}/a")
            for event in events:
                assert event.type is EventType.NODE_CHILDREN_CHANGED
                break
            with pytest.raises(TimeoutError):
                events.next_event(timeout=0.2)
        with pytest.raises(StopIteration):
            next(events)
        zk.delete(root)


def test_SyncClient_timeout_raises_TimeoutError(target: Any, root: str) -> None:
    """timeout= bounds a call even while the connection is stalled."""
    with (
        SyncTcpProxy(target.host, target.port) as proxy,
        coord.connect_sync(proxy.address, session_timeout=5) as zk,
    ):
        zk.create(root, ephemeral=True)
        proxy.stall()
        with pytest.raises(TimeoutError):
            zk.get(root, timeout=0.2)
        proxy.resume()
        assert zk.exists(root, timeout=5) is not None


def test_SyncClient_is_safe_from_many_threads(target: Any, root: str) -> None:
    states: queue.Queue[ConnectionState] = queue.Queue()
    with coord.connect_sync(target.address, session_timeout=5) as zk:
        zk.add_listener(states.put)
        zk.create(root)
        with ThreadPoolExecutor(8) as pool:
            paths = list(pool.map(lambda i: zk.create(f"{root}/n{i}", b"x"), range(40)))
        assert sorted(paths) == sorted(f"{root}/{n}" for n in zk.children(root))
        assert len(paths) == 40
        zk.delete(root, recursive=True)
    assert states.get(timeout=5) is ConnectionState.CLOSED

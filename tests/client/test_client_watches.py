"""Watches: one-shot watches, and watch streams both with persistent watches and with the
one-shot emulation used for servers without addWatch -- against coord and ZooKeeper."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import coord
from coord import EventType, NoNodeError
from coord.client import OneShotWatch, WatchedEvent, WatchStream

pytestmark = pytest.mark.anyio

CREATED = EventType.NODE_CREATED
DELETED = EventType.NODE_DELETED
CHANGED = EventType.NODE_DATA_CHANGED
CHILDREN = EventType.NODE_CHILDREN_CHANGED


def client(target: Any, **kwargs: Any) -> coord.Client:
    return coord.connect(target.address, session_timeout=5, **kwargs)


async def next_event(stream: WatchStream) -> WatchedEvent:
    with anyio.fail_after(5):
        return await stream.__anext__()


async def no_event(stream: WatchStream, wait: float = 0.3) -> None:
    with anyio.move_on_after(wait):
        event = await stream.__anext__()
        raise AssertionError(f"unexpected event {event}")


async def test_OneShotWatch_fires_once_on_the_next_change(target: Any, root: str) -> None:
    """get/exists/children with watch=True return a watch fired by the next change."""
    async with client(target) as zk:
        stat, created = await zk.exists(root, watch=True)
        assert stat is None and isinstance(created, OneShotWatch)
        await zk.create(root, b"0")
        assert (await created.wait()).type is CREATED
        _, _, changed = await zk.get(root, watch=True)
        _, child = await zk.children(root, watch=True)
        await zk.set(root, b"1")
        await zk.set(root, b"2")
        event = await changed.wait()
        assert (event.type, event.path) == (CHANGED, root)
        assert changed.fired and changed.event is event
        assert not child.fired
        await zk.create(f"{root}/c")
        assert (await child.wait()).type is CHILDREN
        _, _, deleted = await zk.children_with_stat(root, watch=True)
        await zk.delete(root, recursive=True)
        assert (await deleted.wait()).type in (CHILDREN, DELETED)


async def test_OneShotWatch_is_not_set_when_the_read_fails(target: Any, root: str) -> None:
    """A get of a missing node raises and leaves no watch behind."""
    async with client(target) as zk:
        with pytest.raises(NoNodeError):
            await zk.get(root, watch=True)
        assert zk._core.registry.is_empty()


async def test_OneShotWatch_callbacks_run_when_fired(target: Any, root: str) -> None:
    async with client(target) as zk:
        await zk.create(root)
        _, _, watch = await zk.get(root, watch=True)
        seen: list[WatchedEvent] = []
        watch.add_callback(seen.append)
        await zk.delete(root)
        await watch.wait()
        assert [e.type for e in seen] == [DELETED]


@pytest.fixture(params=["persistent", "emulated"])
def watch_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def prepare(zk: coord.Client, watch_kind: str) -> None:
    if watch_kind == "emulated":
        zk._persistent_supported = False  # as after a server answered Unimplemented


async def test_WatchStream_watch_yields_every_change_of_one_node(
    target: Any, root: str, watch_kind: str
) -> None:
    """watch(path): created, data changed, deleted -- and not its children's changes."""
    async with client(target) as zk:
        prepare(zk, watch_kind)
        async with zk.watch(root) as events:
            assert events.persistent is (watch_kind == "persistent")
            await zk.create(root, b"0")
            assert (await next_event(events)).type is CREATED
            await zk.create(f"{root}/child")
            await zk.set(root, b"1")
            event = await next_event(events)
            assert (event.type, event.path) == (CHANGED, root)
            await zk.delete(root, recursive=True)
            assert (await next_event(events)).type is DELETED
            await no_event(events)


async def test_WatchStream_watch_children_yields_child_changes(
    target: Any, root: str, watch_kind: str
) -> None:
    """watch_children(path): children changes, not the node's data changes."""
    async with client(target) as zk:
        prepare(zk, watch_kind)
        await zk.create(root)
        async with zk.watch_children(root) as events:
            await zk.set(root, b"ignored")
            await zk.create(f"{root}/a")
            assert (await next_event(events)).type is CHILDREN
            await zk.delete(f"{root}/a")
            assert (await next_event(events)).type is CHILDREN
            await zk.delete(root)
            assert (await next_event(events)).type is DELETED
            await no_event(events)


async def test_WatchStream_watch_tree_yields_descendants_changes(
    target: Any, root: str, watch_kind: str
) -> None:
    """watch_tree(path): creations, changes and deletions anywhere below the path."""
    async with client(target) as zk:
        prepare(zk, watch_kind)
        await zk.create(root)
        async with zk.watch_tree(root) as events:
            await zk.create(f"{root}/a", b"1")
            event = await next_event(events)
            assert (event.type, event.path) == (CREATED, f"{root}/a")
            await zk.create(f"{root}/a/b", b"2")
            event = await next_event(events)
            assert (event.type, event.path) == (CREATED, f"{root}/a/b")
            await zk.set(f"{root}/a/b", b"3")
            event = await next_event(events)
            assert (event.type, event.path) == (CHANGED, f"{root}/a/b")
            await zk.delete(f"{root}/a/b")
            event = await next_event(events)
            assert (event.type, event.path) == (DELETED, f"{root}/a/b")
        await zk.delete(root, recursive=True)


async def test_WatchStream_closing_removes_the_watch(target: Any, root: str) -> None:
    """After aclose the stream ends and the client holds no watcher for it."""
    async with client(target) as zk:
        await zk.create(root)
        events = zk.watch(root)
        await events.start()
        await events.aclose()
        assert zk._core.registry.is_empty()
        await zk.set(root, b"x")
        assert [e async for e in events] == []
        await zk.delete(root)


async def test_WatchStream_iterating_without_a_context_registers_lazily(
    target: Any, root: str
) -> None:
    async with client(target) as zk:
        await zk.create(root)
        got: list[WatchedEvent] = []
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async for event in zk.watch(root):
                    got.append(event)
                    return

            tg.start_soon(consume)
            with anyio.fail_after(5):
                while zk._core.registry.is_empty():  # noqa: ASYNC110 - registered lazily
                    await anyio.sleep(0.01)
            await zk.set(root, b"x")
        assert [e.type for e in got] == [CHANGED]
        await zk.delete(root)


async def test_WatchStream_ends_when_the_client_closes(target: Any, root: str) -> None:
    async with client(target) as zk:
        events = zk.watch(root)
        await events.start()
    assert [e async for e in events] == []


async def test_WatchStream_survives_a_one_shot_watch_on_the_same_path(
    target: Any, root: str
) -> None:
    """A get(watch=True) on a path with a persistent watch leaves the stream intact
    (ZooKeeper < 3.9.2 keeps one mode per path and connection: ZOOKEEPER-4466)."""
    async with client(target) as zk:
        await zk.create(root, b"0")
        async with zk.watch(root) as events:
            for i in range(3):
                _, _, once = await zk.get(root, watch=True)
                await zk.set(root, str(i).encode())
                assert (await once.wait()).type is CHANGED
                assert (await next_event(events)).type is CHANGED
        await zk.delete(root)


async def test_WatchStream_persistent_falls_back_on_unimplemented(
    coord_server: Any, root: str
) -> None:
    """When addWatch is not implemented the stream emulates it with one-shot watches."""
    async with coord.connect(coord_server.address) as zk:
        real = zk._add_persistent_watch

        async def unimplemented(*args: Any) -> None:
            raise coord.UnimplementedError("addWatch")

        zk._add_persistent_watch = unimplemented  # type: ignore[method-assign,assignment]
        async with zk.watch(root) as events:
            assert not events.persistent
            await zk.create(root)
            assert (await next_event(events)).type is CREATED
        assert zk._persistent_supported is False
        zk._add_persistent_watch = real  # type: ignore[method-assign]
        await zk.delete(root)

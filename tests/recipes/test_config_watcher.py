"""ConfigWatcher against coord and Apache ZooKeeper, under asyncio and trio."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import coord
from coord.client._testing import drop_connection, expire_session
from coord.recipes import ConfigWatcher, Snapshot

pytestmark = pytest.mark.anyio


async def test_ConfigWatcher_one_node_follows_creation_changes_and_deletion(
    target: Any, root: str
) -> None:
    """A missing node reads None; creation, each change and deletion yield a snapshot."""
    path = f"{root}/config"
    async with coord.connect(target.address) as client:
        await client.ensure_path(root)
        with anyio.fail_after(20):
            async with ConfigWatcher(client, path) as watcher:
                assert watcher.current is None
                assert await watcher.__anext__() is None
                await client.create(path, b"v1")
                assert await watcher.__anext__() == b"v1"
                await client.set(path, b"v2")
                assert await watcher.__anext__() == b"v2"
                assert watcher.current == b"v2"
                await client.delete(path)
                assert await watcher.__anext__() is None


async def test_ConfigWatcher_recursive_follows_the_subtree(target: Any, root: str) -> None:
    """A subtree snapshot maps every node's path to its data, created or not yet."""
    path = f"{root}/app"
    async with coord.connect(target.address) as client:
        await client.ensure_path(root)
        with anyio.fail_after(20):
            async with ConfigWatcher(client, path, recursive=True) as watcher:
                assert await watcher.__anext__() == {}
                await client.create(path, b"top")
                assert await watcher.__anext__() == {path: b"top"}
                await client.create(f"{path}/db", b"pg")
                assert await watcher.__anext__() == {path: b"top", f"{path}/db": b"pg"}
                await client.create(f"{path}/db/host", b"h1")
                expected = {path: b"top", f"{path}/db": b"pg", f"{path}/db/host": b"h1"}
                assert await watcher.__anext__() == expected
                await client.set(f"{path}/db/host", b"h2")
                expected[f"{path}/db/host"] = b"h2"
                assert await watcher.__anext__() == expected
                await client.delete(f"{path}/db", recursive=True)
                snapshot = await watcher.__anext__()
                while snapshot != {path: b"top"}:  # the two deletes may come one by one
                    snapshot = await watcher.__anext__()
                await client.delete(path)
                assert await watcher.__anext__() == {}


async def test_ConfigWatcher_recursive_reads_an_existing_tree(target: Any, root: str) -> None:
    """The first snapshot of a subtree holds every node that exists already."""
    async with coord.connect(target.address) as client:
        await client.create(f"{root}/a/b/c", b"c", makepath=True)
        await client.set(f"{root}/a", b"a")
        with anyio.fail_after(20):
            async with ConfigWatcher(client, f"{root}/a", recursive=True) as watcher:
                assert await watcher.__anext__() == {
                    f"{root}/a": b"a",
                    f"{root}/a/b": b"",
                    f"{root}/a/b/c": b"c",
                }


async def test_ConfigWatcher_misses_no_change_across_a_reconnect(target: Any, root: str) -> None:
    """Changes made while the watcher was disconnected show in the next snapshot."""
    path = f"{root}/app"
    async with coord.connect(target.address) as client, coord.connect(target.address) as other:
        await client.create(f"{path}/x", b"1", makepath=True)
        with anyio.fail_after(20):
            async with (
                ConfigWatcher(client, path, recursive=True) as tree,
                ConfigWatcher(client, f"{path}/x") as node,
            ):
                first = await tree.__anext__()
                assert isinstance(first, dict) and first[f"{path}/x"] == b"1"
                assert await node.__anext__() == b"1"
                await drop_connection(client)
                await other.set(f"{path}/x", b"2")
                await other.create(f"{path}/y/z", b"z", makepath=True)
                assert await node.__anext__() == b"2"
                expected = {path: b"", f"{path}/x": b"2", f"{path}/y": b"", f"{path}/y/z": b"z"}
                snapshot = await tree.__anext__()
                while snapshot != expected:
                    snapshot = await tree.__anext__()


async def test_ConfigWatcher_run_calls_back_on_each_change(target: Any, root: str) -> None:
    """run(callback) reports the first snapshot through tg.start, then every change."""
    path = f"{root}/flag"
    seen: list[Snapshot] = []
    changed = anyio.Event()

    def callback(snapshot: Snapshot) -> None:
        seen.append(snapshot)
        if snapshot == b"on":
            changed.set()

    async with coord.connect(target.address) as client:
        await client.ensure_path(root)
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                assert await tg.start(ConfigWatcher(client, path).run, callback) is None
                await client.create(path, b"on")
                await changed.wait()
                tg.cancel_scope.cancel()
    assert seen == [None, b"on"]


async def test_ConfigWatcher_raises_session_expired(target: Any, root: str) -> None:
    """Iteration raises SessionExpiredError once the session is lost."""
    async with coord.connect(target.address) as client:
        with anyio.fail_after(20):
            async with ConfigWatcher(client, f"{root}/x") as watcher:
                assert await watcher.__anext__() is None
                await expire_session(client)
                with pytest.raises(coord.SessionExpiredError):
                    await watcher.__anext__()

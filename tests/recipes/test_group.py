"""Group membership against coord and Apache ZooKeeper, under asyncio and trio."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import coord
from coord.client._testing import drop_connection, expire_session
from coord.recipes import Group

pytestmark = pytest.mark.anyio


async def test_Group_join_and_leave_show_in_members(target: Any, root: str) -> None:
    """A member is listed with its data while its join() block runs, and not after."""
    async with coord.connect(target.address) as a, coord.connect(target.address) as b:
        group = Group(a, f"{root}/party")
        assert await group.members() == {}
        async with Group(b, f"{root}/party").join("b", b"data-b"):
            async with group.join("a", b"data-a") as member:
                assert await group.members() == {"a": b"data-a", "b": b"data-b"}
                await member.update(b"new")
                assert (await group.members())["a"] == b"new"
            assert await group.members() == {"b": b"data-b"}
        assert await group.members() == {}


async def test_Group_join_twice_under_one_id_fails(target: Any, root: str) -> None:
    """A member id is unique: a second session joining under it gets NodeExistsError."""
    async with (
        coord.connect(target.address) as a,
        coord.connect(target.address) as b,
        Group(a, f"{root}/party").join("x"),
    ):
        with pytest.raises(coord.NodeExistsError):
            async with Group(b, f"{root}/party").join("x"):
                pass


async def test_Group_watch_yields_every_membership_change(target: Any, root: str) -> None:
    """watch() yields the current members, then a snapshot after each join and leave."""
    path = f"{root}/party"
    async with coord.connect(target.address) as watcher, coord.connect(target.address) as m:
        with anyio.fail_after(20):
            async with Group(watcher, path).watch() as snapshots:
                assert await snapshots.__anext__() == {}
                async with Group(m, path).join("m1", b"1"):
                    assert await snapshots.__anext__() == {"m1": b"1"}
                    async with Group(m, path).join("m2", b"2"):
                        assert await snapshots.__anext__() == {"m1": b"1", "m2": b"2"}
                    assert await snapshots.__anext__() == {"m1": b"1"}
                assert await snapshots.__anext__() == {}


async def test_Group_watch_catches_up_after_reconnect(target: Any, root: str) -> None:
    """A join made while the watcher was disconnected is reported after it reconnects."""
    path = f"{root}/party"
    async with coord.connect(target.address) as watcher, coord.connect(target.address) as m:
        with anyio.fail_after(20):
            async with Group(watcher, path).watch() as snapshots:
                assert await snapshots.__anext__() == {}
                await m.ensure_path(path)
                await drop_connection(watcher)
                async with Group(m, path).join("m1", b"1"):
                    assert await snapshots.__anext__() == {"m1": b"1"}


async def test_Group_member_leaves_on_session_expiry(target: Any, root: str) -> None:
    """The servers delete the member of an expired session; the watcher sees it leave."""
    path = f"{root}/party"
    async with coord.connect(target.address) as watcher, coord.connect(target.address) as m:
        with anyio.fail_after(20):
            async with Group(watcher, path).watch() as snapshots:
                assert await snapshots.__anext__() == {}
                async with Group(m, path).join("m1"):
                    assert await snapshots.__anext__() == {"m1": b""}
                    await expire_session(m)
                    assert await snapshots.__anext__() == {}

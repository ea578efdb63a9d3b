"""Partitioner: the pure partition function (no server), then members sharing items against
coord and Apache ZooKeeper under asyncio and trio, rebalancing, and the release on a
suspension past the safe bound."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import coord
from coord.client import ConnectionState
from coord.recipes._partitioner import Partitioner, partition
from coord.testing import TcpProxy

ITEMS = [f"item-{i}" for i in range(10)]


# --- the pure function ------------------------------------------------------------------------


def check_partition(table: dict[str, frozenset[Any]], members: set[str], items: set[Any]) -> None:
    assert set(table) == members
    union: set[Any] = set()
    for a, b in itertools.combinations(table.values(), 2):
        assert not a & b, "an item has two owners"
    for share in table.values():
        union |= share
    assert union == (items if members else set())
    if members:
        sizes = [len(share) for share in table.values()]
        assert max(sizes) - min(sizes) <= 1, "unbalanced"


def test_partition_three_members_ten_items() -> None:
    """Union is all items, pairwise disjoint, sizes 4/3/3, round-robin over sorted items."""
    table = partition(["c", "a", "b"], ITEMS)
    check_partition(table, {"a", "b", "c"}, set(ITEMS))
    assert table["a"] == frozenset(sorted(ITEMS, key=repr)[0::3])


@given(
    st.sets(st.text(min_size=1, max_size=5), max_size=8),
    st.sets(st.integers(), max_size=40),
    st.randoms(use_true_random=False),
)
def test_partition_is_a_pure_function_of_the_sets(
    members: set[str], items: set[int], rnd: Any
) -> None:
    """Any member order and item order give the same table; the table is a partition."""
    table = partition(sorted(members), sorted(items))
    shuffled_members, shuffled_items = list(members), list(items)
    rnd.shuffle(shuffled_members)
    rnd.shuffle(shuffled_items)
    assert partition(shuffled_members, shuffled_items) == table
    check_partition(table, members, set(items))


def test_partition_rejects_ambiguous_keys() -> None:
    """Two distinct items with one sort key would make members disagree: refused."""
    with pytest.raises(ValueError, match="sort key"):
        partition(["a"], [1, 2], key=lambda item: 0)


# --- against servers -------------------------------------------------------------------------


class Board:
    """The latest assignment of each member; ``wait_until`` waits for a condition on it."""

    def __init__(self) -> None:
        self.shares: dict[str, frozenset[str]] = {}
        self._changed = anyio.Event()

    def update(self, member: str, share: frozenset[str]) -> None:
        self.shares[member] = share
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_until(self, predicate: Callable[[dict[str, frozenset[str]]], bool]) -> None:
        with anyio.fail_after(20):
            while not predicate(self.shares):
                await self._changed.wait()


def covers(members: set[str]) -> Callable[[dict[str, frozenset[str]]], bool]:
    """The named members' shares are exactly partition(members, ITEMS)."""
    expected = partition(members, ITEMS)
    return lambda shares: all(shares.get(m) == expected[m] for m in members)


@pytest.mark.anyio
async def test_Partitioner_three_members_share_and_rebalance(target: Any, root: str) -> None:
    """3 members over 10 items: the union is all items, pairwise disjoint; when one leaves,
    the other two take its items over (again a partition of all items)."""
    board = Board()
    path = f"{root}/parts"

    async def member(name: str, scope: anyio.CancelScope) -> None:
        async with (
            coord.connect(target.address) as client,
            Partitioner(client, path, ITEMS, identifier=name) as partitioner,
        ):
            with scope:  # cancelled: stop iterating, then leave the group
                async for share in partitioner:
                    board.update(name, share)

    scopes = {name: anyio.CancelScope() for name in ("m1", "m2", "m3")}
    async with anyio.create_task_group() as tg:
        for name, scope in scopes.items():
            tg.start_soon(member, name, scope)
        await board.wait_until(covers({"m1", "m2", "m3"}))
        check_partition({m: board.shares[m] for m in scopes}, set(scopes), set(ITEMS))

        scopes["m2"].cancel()  # m2 leaves (its node is deleted on exit)
        await board.wait_until(covers({"m1", "m3"}))
        check_partition({m: board.shares[m] for m in ("m1", "m3")}, {"m1", "m3"}, set(ITEMS))

        async with coord.connect(target.address) as observer:
            assert sorted(await observer.children(path)) == ["m1", "m3"]
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_Partitioner_alone_owns_everything_and_leaves_no_node(target: Any, root: str) -> None:
    """A single member owns every item; leaving the block deletes its member node."""
    async with coord.connect(target.address) as client:
        async with Partitioner(client, f"{root}/p", ITEMS, identifier="solo") as partitioner:
            with anyio.fail_after(10):
                assert await partitioner.__anext__() == frozenset(ITEMS)
            assert partitioner.members == ["solo"]
        assert await client.children(f"{root}/p") == []


@pytest.mark.anyio
async def test_Partitioner_releases_on_suspension_past_safe_bound(target: Any, root: str) -> None:
    """Suspended past the safe bound: an empty assignment is yielded before the session can
    expire (so nobody else owns the items yet); after the reconnection the same items are
    yielded again."""
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(proxy.address, session_timeout=4) as client,
    ):
        timeout = client.session_timeout
        async with Partitioner(client, f"{root}/p", ITEMS, identifier="w") as partitioner:
            with anyio.fail_after(10):
                assert await partitioner.__anext__() == frozenset(ITEMS)
            stalled_at = anyio.current_time()
            proxy.stall()
            with anyio.fail_after(timeout * 2):
                assert await partitioner.__anext__() == frozenset()
            released_after = anyio.current_time() - stalled_at
            assert released_after < timeout, "released only after the session could expire"
            # Drop the held connections (never forward them), then let the client back in.
            await proxy.cut()
            proxy.resume()
            with anyio.fail_after(timeout * 2):
                assert await partitioner.__anext__() == frozenset(ITEMS)
            assert client.state is ConnectionState.RECONNECTED

"""Election against coord and Apache ZooKeeper, under asyncio and trio."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import coord
from coord.client._testing import expire_session
from coord.recipes import Election, LeadershipLost

pytestmark = pytest.mark.anyio


async def test_Election_one_leader_at_a_time_and_takeover_on_close(target: Any, root: str) -> None:
    """Leaders follow one another; the next leads once the leader's client closes."""
    leaders = 0
    terms: list[bytes] = []
    path = f"{root}/election"

    async def candidate(name: bytes) -> None:
        nonlocal leaders
        async with coord.connect(target.address) as client:
            election = Election(client, path, data=name)
            with pytest.raises(LeadershipLost):
                async with election.leadership():
                    leaders += 1
                    assert leaders == 1 and election.is_leader
                    assert await election.leader() == name
                    terms.append(name)
                    leaders -= 1
                    await client.close()  # step down the hard way
                    await anyio.sleep_forever()

    with anyio.fail_after(30):
        async with coord.connect(target.address) as observer, anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(candidate, b"c%d" % i)
            assert (await Election(observer, path).wait_leader()).startswith(b"c")
    assert sorted(terms) == [b"c0", b"c1", b"c2", b"c3"]


async def test_Election_resign_exits_cleanly_and_hands_over(target: Any, root: str) -> None:
    """resign() inside the body cancels it without error; the other candidate leads."""
    path = f"{root}/election"
    async with coord.connect(target.address) as a, coord.connect(target.address) as b:
        first, second = Election(a, path, data=b"a"), Election(b, path, data=b"b")
        with anyio.fail_after(20):
            async with first.leadership():
                assert await second.leader() == b"a"
                await first.resign()
                await anyio.sleep_forever()
            assert not first.is_leader
            async with second.leadership():
                assert await first.leader() == b"b"


async def test_Election_session_expiry_raises_leadership_lost(target: Any, root: str) -> None:
    """Session expiry while leading: the body is cancelled, LeadershipLost raised."""
    path = f"{root}/election"
    async with coord.connect(target.address) as a:
        election = Election(a, path, data=b"a")
        with anyio.fail_after(20), pytest.raises(LeadershipLost):
            async with election.leadership():
                await expire_session(a)
                await anyio.sleep_forever()
    async with coord.connect(target.address) as b:
        assert await Election(b, path).leader() is None

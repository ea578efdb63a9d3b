"""Lock and Election under faults with real servers (coord and Apache ZooKeeper, asyncio
and trio): a short cut keeps the hold; a stall past the safe bound cancels the body before
the session can expire and nobody else holds until it has; a durable coord server
restarted under a holder keeps the session and the hold."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest

import coord
from coord.client import Client, ConnectionState, EventType
from coord.recipes import Election, LeadershipLost, Lock, LockLost
from coord.recipes._contender import SUSPENDED_FRACTION
from coord.testing import TcpProxy

pytestmark = pytest.mark.anyio

SESSION = 3.0  # seconds: short, so expiry tests stay quick


def check_intervals(intervals: list[tuple[float, float, int]]) -> None:
    """Hold intervals never overlap and fencing tokens strictly increase with time."""
    ordered = sorted(intervals)
    for (_, end, token), (start, _, next_token) in itertools.pairwise(ordered):
        assert end <= start, "two holders at once"
        assert token < next_token, "fencing token did not increase"


def check_gave_up_in_time(gave_up: float, last_contact: float) -> None:
    """The holder gave up at the safe bound: 2/3 of the session timeout after it last
    heard from the server (give or take scheduling), well before the session can expire."""
    bound = last_contact + SUSPENDED_FRACTION * SESSION
    assert gave_up >= bound - 0.05, "gave up before the safe bound"
    assert gave_up - bound < 0.5, f"gave up {gave_up - bound:.2f} s after the safe bound"
    assert gave_up - last_contact < SESSION


async def wait_state(client: Client, wanted: ConnectionState) -> None:
    with anyio.fail_after(20):
        async for state in client.states():
            if state is wanted:
                return
    raise AssertionError(f"the client never reached {wanted}")


# --- a short cut --------------------------------------------------------------------------------


async def test_Lock_short_cut_keeps_the_hold(target: Any, root: str) -> None:
    """A connection cut shorter than the safe bound: SUSPENDED then RECONNECTED, the body
    is not cancelled, no LockLost, the same node still held by the same session."""
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(proxy.address, session_timeout=10) as client,
    ):
        session = client.session_id
        async with Lock(client, f"{root}/lock") as lock:
            node, token = lock.node, lock.fencing_token
            assert node is not None
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_state, client, ConnectionState.RECONNECTED)
                await anyio.wait_all_tasks_blocked()
                assert await proxy.cut() == 1
            assert lock.is_held and lock.node == node and lock.fencing_token == token
            stat = await client.exists(node)
            assert stat is not None and stat.ephemeral_owner == session
        assert not lock.is_held


async def test_Election_short_cut_keeps_leadership(target: Any, root: str) -> None:
    """A short cut while leading: leadership continues, no LeadershipLost."""
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(proxy.address, session_timeout=10) as client,
    ):
        election = Election(client, f"{root}/election", data=b"me")
        async with election.leadership():
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_state, client, ConnectionState.RECONNECTED)
                await anyio.wait_all_tasks_blocked()
                await proxy.cut()
            assert election.is_leader
            assert await election.leader() == b"me"


# --- a stall past the safe bound ------------------------------------------------------------------


async def test_Lock_stall_past_safe_bound_hands_over_only_after_expiry(
    target: Any, root: str
) -> None:
    """A silent partition of the holder: its body is cancelled with LockLost before its
    session can expire; the waiting contender acquires only after the servers deleted the
    holder's node (its session expired). Hold intervals never overlap; tokens increase."""
    intervals: list[tuple[float, float, int]] = []
    path = f"{root}/lock"
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(target.address, session_timeout=10) as other,
    ):
        entered = anyio.Event()
        node_gone_at: list[float] = []
        lost_at: list[float] = []
        holders: list[Client] = []
        contact = 0.0

        async def holder() -> None:
            async with coord.connect(proxy.address, session_timeout=SESSION) as client:
                holders.append(client)
                with pytest.raises(LockLost):
                    async with Lock(client, path) as lock:
                        start, token = anyio.current_time(), lock.fencing_token
                        assert lock.node is not None
                        _, gone = await other.exists(lock.node, watch=True)

                        async def record_gone() -> None:
                            event = await gone.wait()
                            assert event.type is EventType.NODE_DELETED
                            node_gone_at.append(anyio.current_time())

                        tg.start_soon(record_gone)
                        entered.set()
                        try:
                            await anyio.sleep_forever()
                        finally:
                            lost_at.append(anyio.current_time())
                            intervals.append((start, lost_at[0], token))
                # Cut the held connections so the proxy never forwards them later.
                await proxy.cut()

        async def contender() -> None:
            await entered.wait()
            async with Lock(other, path) as lock:
                intervals.append((anyio.current_time(), anyio.current_time(), lock.fencing_token))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(holder)
                await entered.wait()
                tg.start_soon(contender)
                await anyio.wait_all_tasks_blocked()
                proxy.stall()
                contact = holders[0].last_contact
        assert len(intervals) == 2
        assert lost_at[0] <= node_gone_at[0], "the servers expired the session first"
        assert intervals[1][0] >= node_gone_at[0], "handed over before the expiry"
        check_intervals(intervals)
        check_gave_up_in_time(lost_at[0], contact)


async def test_Election_stall_past_safe_bound_new_leader_only_after_expiry(
    target: Any, root: str
) -> None:
    """A partitioned leader stops leading (LeadershipLost) before its session can expire;
    the next candidate leads only after that: never two leaders at once."""
    path = f"{root}/election"
    terms: list[tuple[float, float, str]] = []
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(target.address, session_timeout=10) as other,
    ):
        leading = anyio.Event()
        leaders: list[Client] = []
        contact = 0.0

        async def first() -> None:
            async with coord.connect(proxy.address, session_timeout=SESSION) as client:
                leaders.append(client)
                with pytest.raises(LeadershipLost):
                    async with Election(client, path, data=b"a").leadership():
                        start = anyio.current_time()
                        leading.set()
                        try:
                            await anyio.sleep_forever()
                        finally:
                            terms.append((start, anyio.current_time(), "a"))
                await proxy.cut()

        async def second() -> None:
            await leading.wait()
            async with Election(other, path, data=b"b").leadership():
                now = anyio.current_time()
                terms.append((now, now, "b"))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await leading.wait()
                tg.start_soon(second)
                await anyio.wait_all_tasks_blocked()
                proxy.stall()
                contact = leaders[0].last_contact
        assert [who for *_, who in sorted(terms)] == ["a", "b"]
        (_, a_end, _), (b_start, _, _) = sorted(terms)
        assert a_end <= b_start, "two leaders at once"
        check_gave_up_in_time(a_end, contact)


# --- a durable coord server restarted under the holder ------------------------------------------


async def test_Lock_survives_a_durable_server_restart(coord_process: Any) -> None:
    """SIGKILL and restart of a durable coord server on the same port while holding: the
    client reconnects within the safe bound, the session survives, the hold is kept (no
    LockLost, same node, same owner)."""
    address = f"127.0.0.1:{coord_process.port}"
    async with coord.connect(address, session_timeout=10) as client:
        session = client.session_id
        async with Lock(client, "/locks/restart") as lock:
            node = lock.node
            assert node is not None
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_state, client, ConnectionState.RECONNECTED)
                await anyio.wait_all_tasks_blocked()
                coord_process.kill()
                await anyio.to_thread.run_sync(coord_process.start)
            assert client.session_id == session
            assert lock.is_held and lock.node == node
            stat = await client.exists(node)
            assert stat is not None and stat.ephemeral_owner == session
        assert await client.children("/locks/restart") == []


async def test_Election_survives_a_durable_server_restart(coord_process: Any) -> None:
    """The same for leadership: a restart within the safe bound keeps the leader."""
    address = f"127.0.0.1:{coord_process.port}"
    async with coord.connect(address, session_timeout=10) as client:
        election = Election(client, "/election/restart", data=b"me")
        async with election.leadership():
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_state, client, ConnectionState.RECONNECTED)
                await anyio.wait_all_tasks_blocked()
                coord_process.kill()
                await anyio.to_thread.run_sync(coord_process.start)
            assert election.is_leader
            assert await election.leader() == b"me"

"""Connection loss and session expiry through a real TCP proxy: state transitions, no
watch event lost across a reconnect, no duplicate effect from a retried operation."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute

import coord
from coord import ConnectionState, EventType, SessionExpiredError
from coord.client import WatchedEvent, WatchStream
from coord.testing import TcpProxy

pytestmark = pytest.mark.anyio

CHANGED = EventType.NODE_DATA_CHANGED
CHILDREN = EventType.NODE_CHILDREN_CHANGED


async def wait_state(states: AsyncIterator[ConnectionState], wanted: ConnectionState) -> None:
    with anyio.fail_after(10):
        async for state in states:
            if state is wanted:
                return
    raise AssertionError(f"never reached {wanted}")


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll a condition nothing signals (bytes handed to the kernel), bounded."""
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - no event exists for this
            await anyio.sleep(0.005)


async def next_event(stream: WatchStream) -> WatchedEvent:
    with anyio.fail_after(10):
        return await stream.__anext__()


async def test_Client_cut_connection_suspends_then_reconnects_same_session(
    target: Any, root: str
) -> None:
    """A cut link gives SUSPENDED then RECONNECTED; the session and its ephemerals live."""
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(proxy.address, session_timeout=5) as zk,
    ):
        states = zk.states()
        assert await states.__anext__() is ConnectionState.CONNECTED
        session = zk.session_id
        ephemeral = await zk.create(root, b"mine", ephemeral=True)
        assert await proxy.cut() == 1
        await wait_state(states, ConnectionState.SUSPENDED)
        await wait_state(states, ConnectionState.RECONNECTED)
        assert zk.session_id == session
        stat = await zk.exists(ephemeral)
        assert stat is not None and stat.ephemeral_owner == session
        await zk.delete(ephemeral)


async def test_Client_operations_wait_for_the_reconnection(target: Any, root: str) -> None:
    """An operation issued while SUSPENDED completes once the link is back."""
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(proxy.address, session_timeout=5) as zk,
    ):
        states = zk.states()
        await zk.create(root, b"x")
        proxy.refuse()
        await proxy.cut()
        await wait_state(states, ConnectionState.SUSPENDED)
        result: list[bytes] = []
        async with anyio.create_task_group() as tg:

            async def read() -> None:
                result.append((await zk.get(root))[0])

            tg.start_soon(read)
            await anyio.sleep(0.05)
            assert result == []
            proxy.accept()
        assert result == [b"x"]
        await zk.delete(root)


async def test_Client_stall_past_session_timeout_is_lost(target: Any, root: str) -> None:
    """A partition longer than the session timeout ends in LOST: operations, watches and
    waiters get SessionExpiredError, the state stays LOST, the ephemerals are gone."""
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(target.address, session_timeout=5) as observer,
    ):
        async with coord.connect(proxy.address, session_timeout=1.0) as zk:
            states = zk.states()
            ephemeral = await zk.create(root, ephemeral=True)
            _, gone = await observer.exists(ephemeral, watch=True)
            _, _, once = await zk.get(ephemeral, watch=True)
            stream = zk.watch(ephemeral)
            await stream.start()
            proxy.stall()
            await wait_state(states, ConnectionState.SUSPENDED)
            await wait_state(states, ConnectionState.LOST)
            # (The proxy is not resumed: its held connections would reach the server
            # already reset by the client, which crashes coord's TCP accept loop.)
            assert zk.state is ConnectionState.LOST
            with pytest.raises(SessionExpiredError):
                await zk.get("/")
            with pytest.raises(SessionExpiredError):
                await once.wait()
            with pytest.raises(SessionExpiredError):
                await next_event(stream)
            with pytest.raises(SessionExpiredError):
                await zk.wait_connected()
        assert zk.state.value == "closed"  # closing after LOST ends in CLOSED
        with anyio.fail_after(10):
            assert (await gone.wait()).type is EventType.NODE_DELETED


async def test_Client_pings_and_detects_a_silent_server_from_the_handshake_on(
    coord_session_server: Any,
) -> None:
    """The timer follows the handshake: the first ping goes out T/3 after it and a silent
    server is noticed 2/3 T after the last contact -- not only once the handshake's own,
    longer timeout (T / number of hosts) has run out, which left a fresh connection
    without pings or dead-peer detection for a whole session timeout."""
    server = coord_session_server
    async with (
        TcpProxy(server.host, server.port) as proxy,
        coord.connect(proxy.address, session_timeout=3) as zk,
    ):
        states = zk.states()
        assert await states.__anext__() is ConnectionState.CONNECTED
        handshake = zk.last_contact
        await anyio.sleep(1.6)  # the first ping is due 1.0 s after the handshake
        assert zk.last_contact - handshake >= 0.9, "no ping answered within T/2"
        proxy.stall()
        last = zk.last_contact
        await wait_state(states, ConnectionState.SUSPENDED)
        noticed = anyio.current_time() - last
        assert 2.0 * 0.95 <= noticed < 2.6, f"silence noticed after {noticed:.2f} s, not 2/3 T"
        await proxy.cut()


@pytest.fixture(params=["persistent", "emulated"])
def watch_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_Client_no_watch_event_lost_across_a_reconnect(
    target: Any, root: str, watch_kind: str
) -> None:
    """Changes made while the link is down fire every kind of watch after reconnecting."""
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(target.address, session_timeout=5) as direct,
        coord.connect(proxy.address, session_timeout=5) as zk,
    ):
        if watch_kind == "emulated":
            zk._persistent_supported = False
        await direct.create(root, b"0")
        await direct.create(f"{root}/old")
        states = zk.states()
        _, _, data_once = await zk.get(root, watch=True)
        _, child_once = await zk.children(root, watch=True)
        _, created_once = await zk.exists(f"{root}/new", watch=True)
        async with (
            zk.watch(root) as node,
            zk.watch_children(root) as kids,
            zk.watch_tree(root) as tree,
        ):
            proxy.refuse()
            await proxy.cut()
            await wait_state(states, ConnectionState.SUSPENDED)
            await direct.set(root, b"1")
            await direct.create(f"{root}/new")
            proxy.accept()
            await wait_state(states, ConnectionState.RECONNECTED)
            with anyio.fail_after(10):
                assert (await data_once.wait()).type is CHANGED
                assert (await child_once.wait()).type is CHILDREN
                assert (await created_once.wait()).type is EventType.NODE_CREATED
            assert (await next_event(node)).type is CHANGED
            assert (await next_event(kids)).type is CHILDREN
            # The tree stream reports the new node, or (persistent watches, which the
            # server cannot replay below the root) an EventType.NONE "re-read" event.
            wanted = {(EventType.NONE, root), (EventType.NODE_CREATED, f"{root}/new")}
            seen: list[tuple[EventType, str]] = []
            while not wanted & set(seen):
                event = await next_event(tree)
                seen.append((event.type, event.path))
            # And the watches are live again afterwards.
            await direct.set(root, b"2")
            assert (await next_event(node)).type is CHANGED
        await direct.delete(root, recursive=True)


# --- retried operations have one effect ----------------------------------------------------


class ReplyDropper:
    """A TCP proxy that can swallow everything the server sends (requests still pass),
    so a request is applied while its reply is lost; ``cut`` then resets the link."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.drop = False
        self._scopes: set[anyio.CancelScope] = set()
        self._stack = contextlib.AsyncExitStack()
        self.address = ""

    async def __aenter__(self) -> ReplyDropper:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        await self._stack.enter_async_context(listener)
        port = listener.extra(SocketAttribute.local_port)
        self.address = f"127.0.0.1:{port}"
        tg = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.callback(tg.cancel_scope.cancel)
        tg.start_soon(listener.serve, self._handle)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        scope = anyio.CancelScope()
        self._scopes.add(scope)
        try:
            with scope:
                upstream = await anyio.connect_tcp(*self._target)
                async with upstream, anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, client, upstream, False)
                    tg.start_soon(self._pump, upstream, client, True)
        finally:
            self._scopes.discard(scope)
            with contextlib.suppress(Exception):
                raw = client.extra(SocketAttribute.raw_socket)
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await client.aclose()

    async def _pump(self, source: Any, sink: Any, replies: bool) -> None:
        with contextlib.suppress(Exception):
            async for data in source:
                if not (replies and self.drop):
                    await sink.send(data)

    def cut(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()


Op = Callable[[coord.Client, str], Awaitable[Any]]


async def _create_sequential(zk: coord.Client, root: str) -> Any:
    return await zk.create(f"{root}/job-", b"j", sequential=True, ephemeral=True)


async def _create_ephemeral(zk: coord.Client, root: str) -> Any:
    return await zk.create(f"{root}/eph", b"e", ephemeral=True)


async def _create_persistent(zk: coord.Client, root: str) -> Any:
    return await zk.create_with_stat(f"{root}/node", b"p")


async def _set_versioned(zk: coord.Client, root: str) -> Any:
    return await zk.set(root, b"new", version=0)


async def _delete(zk: coord.Client, root: str) -> Any:
    return await zk.delete(f"{root}/victim")


@pytest.mark.parametrize(
    "operation",
    [_create_sequential, _create_ephemeral, _create_persistent, _set_versioned, _delete],
    ids=lambda op: op.__name__.strip("_"),
)
async def test_Client_retry_after_a_lost_reply_has_one_effect(
    target: Any, root: str, operation: Op
) -> None:
    """The server applies the request, the reply is lost with the connection: the retry
    finds the effect instead of repeating it or failing (NodeExists, BadVersion, NoNode)."""
    async with (
        coord.connect(target.address, session_timeout=5) as direct,
        ReplyDropper(target.host, target.port) as proxy,
        coord.connect(proxy.address, session_timeout=5) as zk,
    ):
        await direct.create(root)
        await direct.create(f"{root}/victim")
        _, applied = await direct.children(root, watch=True)
        _, _, set_applied = await direct.get(root, watch=True)
        results: list[Any] = []
        async with anyio.create_task_group() as tg:
            proxy.drop = True

            async def run() -> None:
                results.append(await operation(zk, root))

            tg.start_soon(run)
            with anyio.fail_after(10):
                if operation is _set_versioned:
                    await set_applied.wait()
                else:
                    await applied.wait()
            proxy.drop = False
            proxy.cut()
        children = sorted(await direct.children(root))
        if operation is _create_sequential:
            (name,) = [c for c in children if c != "victim"]
            assert results == [f"{root}/{name}"]
        elif operation is _create_ephemeral:
            assert results == [f"{root}/eph"] and "eph" in children
        elif operation is _create_persistent:
            assert results[0][0] == f"{root}/node" and "node" in children
        elif operation is _set_versioned:
            assert results[0].version == 1
            assert (await direct.get(root))[0] == b"new"
        else:
            assert results == [None] and children == []
        await direct.delete(root, recursive=True)


async def test_Client_sequential_create_lost_before_the_server_is_retried_once(
    target: Any, root: str
) -> None:
    """A protected create cut off before it reached the server (stall, then cut) is
    retried, and exactly one node exists."""
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(proxy.address, session_timeout=5) as zk,
    ):
        await zk.create(root)
        proxy.stall()
        results: list[str] = []
        async with anyio.create_task_group() as tg:

            async def create() -> None:
                results.append(await zk.create(f"{root}/item-", b"x", sequential=True))

            tg.start_soon(create)
            await wait_until(lambda: zk._core.pending > 0)
            await proxy.cut()
            proxy.resume()
        children = await zk.children(root)
        assert len(children) == 1 and results == [f"{root}/{children[0]}"]
        await zk.delete(root, recursive=True)


async def test_Client_unprotected_sequential_create_is_not_retried(target: Any, root: str) -> None:
    """Without protection a sequential create's lost reply surfaces as ConnectionLoss."""
    async with (
        TcpProxy(target.host, target.port) as proxy,
        coord.connect(proxy.address, session_timeout=5) as zk,
    ):
        await zk.create(root)
        proxy.stall()
        async with anyio.create_task_group() as tg:

            async def create() -> None:
                with pytest.raises(coord.ConnectionLossError):
                    await zk.create(f"{root}/item-", sequential=True, protected=False)

            tg.start_soon(create)
            await wait_until(lambda: zk._core.pending > 0)
            await proxy.cut()
            proxy.resume()
        await zk.delete(root, recursive=True)


async def test_drop_connection_and_expire_session_helpers(target: Any, root: str) -> None:
    """coord.client._testing: drop a client's connection; expire its session."""
    from coord.client._testing import drop_connection, expire_session

    async with coord.connect(target.address, session_timeout=5) as zk:
        states = zk.states()
        await zk.create(root, ephemeral=True)
        await drop_connection(zk)
        await wait_state(states, ConnectionState.SUSPENDED)
        await wait_state(states, ConnectionState.RECONNECTED)
        await expire_session(zk)
        await wait_state(states, ConnectionState.LOST)
    async with coord.connect(target.address, session_timeout=5) as other:
        assert await other.exists(root) is None

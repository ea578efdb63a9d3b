"""TcpProxy / SyncTcpProxy: forwarding and the faults they inject (loopback only)."""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream
from kazoo.client import KazooClient, KazooState

from coord.testing import SyncTcpProxy, TcpProxy, ZooKeeperProcess, require_zookeeper

LOOPBACK = "127.0.0.1"
# Receiving on a connection that was cut, refused or reset raises one of these.
CLOSED = (anyio.EndOfStream, anyio.BrokenResourceError)
# How long "nothing arrives" is observed for; only used for negative checks.
QUIET = 0.2
Accepted = MemoryObjectReceiveStream[anyio.abc.SocketStream]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def upstream() -> AsyncIterator[tuple[int, Accepted]]:
    """A loopback server handing each accepted connection to the test."""
    send, receive = anyio.create_memory_object_stream[anyio.abc.SocketStream](16)
    async with (
        await anyio.create_tcp_listener(local_host=LOOPBACK, local_port=0) as multi,
        anyio.create_task_group() as tg,
    ):
        (listener,) = multi.listeners
        assert isinstance(listener, anyio.abc.SocketListener)

        async def serve() -> None:
            while True:
                await send.send(await listener.accept())

        tg.start_soon(serve)
        yield listener.extra(SocketAttribute.local_port), receive
        tg.cancel_scope.cancel()


async def receive_exactly(stream: anyio.abc.SocketStream, n: int) -> bytes:
    return await BufferedByteReceiveStream(stream).receive_exactly(n)


async def receive_all(stream: anyio.abc.SocketStream) -> bytes:
    chunks = []
    while True:
        try:
            chunks.append(await stream.receive())
        except anyio.EndOfStream:
            return b"".join(chunks)


async def assert_nothing_arrives(stream: anyio.abc.SocketStream) -> None:
    with anyio.move_on_after(QUIET) as scope:
        data = await stream.receive()
        pytest.fail(f"received {data!r} while stalled")
    assert scope.cancelled_caught


@pytest.mark.anyio
async def test_TcpProxy_forwards_both_directions_and_half_close() -> None:
    """Bytes flow both ways unchanged; a client's EOF reaches the server, which may answer."""
    async with upstream() as (port, accepted), TcpProxy(LOOPBACK, port) as proxy:
        assert proxy.address == f"{LOOPBACK}:{proxy.port}"
        async with (
            await anyio.connect_tcp(LOOPBACK, proxy.port) as client,
            await accepted.receive() as server,
        ):
            await client.send(b"ping")
            assert await receive_exactly(server, 4) == b"ping"
            await server.send(b"pong")
            assert await receive_exactly(client, 4) == b"pong"
            await client.send_eof()
            assert await receive_all(server) == b""
            await server.send(b"after eof")
            assert await receive_exactly(client, 9) == b"after eof"
        assert proxy.accepted_count == 1


@pytest.mark.anyio
async def test_TcpProxy_cut_closes_both_sides_and_later_connections_work() -> None:
    """cut() closes every open connection on both sides; new connections are unaffected."""
    async with upstream() as (port, accepted), TcpProxy(LOOPBACK, port) as proxy:
        async with (
            await anyio.connect_tcp(LOOPBACK, proxy.port) as client,
            await accepted.receive() as server,
        ):
            await client.send(b"x")
            assert await receive_exactly(server, 1) == b"x"
            assert proxy.connection_count == 1

            assert await proxy.cut() == 1

            assert proxy.connection_count == 0
            with pytest.raises(CLOSED):
                await client.receive()
            with pytest.raises(CLOSED):
                await server.receive()

        async with (
            await anyio.connect_tcp(LOOPBACK, proxy.port) as client,
            await accepted.receive() as server,
        ):
            await client.send(b"again")
            assert await receive_exactly(server, 5) == b"again"


@pytest.mark.anyio
async def test_TcpProxy_stall_holds_bytes_and_eof_until_resume_without_loss() -> None:
    """While stalled nothing is forwarded either way; resume delivers everything in order."""
    async with (
        upstream() as (port, accepted),
        TcpProxy(LOOPBACK, port) as proxy,
        await anyio.connect_tcp(LOOPBACK, proxy.port) as client,
        await accepted.receive() as server,
    ):
        proxy.stall()
        assert proxy.stalled
        await client.send(b"one ")
        await client.send(b"two")
        await client.send_eof()
        await server.send(b"back")
        await assert_nothing_arrives(server)
        await assert_nothing_arrives(client)

        proxy.resume()

        assert await receive_all(server) == b"one two"
        assert await receive_exactly(client, 4) == b"back"


@pytest.mark.anyio
async def test_TcpProxy_stall_holds_new_connections_before_upstream() -> None:
    """A connection accepted during a stall reaches the target only after resume."""
    async with upstream() as (port, accepted), TcpProxy(LOOPBACK, port) as proxy:
        proxy.stall()
        async with await anyio.connect_tcp(LOOPBACK, proxy.port) as client:
            await client.send(b"early")
            with anyio.move_on_after(QUIET) as scope:
                await accepted.receive()
            assert scope.cancelled_caught, "upstream connected during a stall"

            proxy.resume()

            async with await accepted.receive() as server:
                assert await receive_exactly(server, 5) == b"early"


@pytest.mark.anyio
async def test_TcpProxy_refuse_closes_new_connections_only_until_accept() -> None:
    """While refusing, new connections are closed at once; open ones keep forwarding."""
    async with (
        upstream() as (port, accepted),
        TcpProxy(LOOPBACK, port) as proxy,
        await anyio.connect_tcp(LOOPBACK, proxy.port) as open_client,
        await accepted.receive() as open_server,
    ):
        proxy.refuse()
        assert proxy.refusing
        async with await anyio.connect_tcp(LOOPBACK, proxy.port) as refused:
            with pytest.raises(CLOSED):
                await refused.receive()

        await open_client.send(b"still")
        assert await receive_exactly(open_server, 5) == b"still"

        proxy.accept()
        async with (
            await anyio.connect_tcp(LOOPBACK, proxy.port) as client,
            await accepted.receive() as server,
        ):
            await client.send(b"ok")
            assert await receive_exactly(server, 2) == b"ok"


@pytest.mark.anyio
async def test_TcpProxy_unreachable_target_closes_client() -> None:
    """When the target refuses, the proxy closes the client connection."""
    with socket.socket() as placeholder:
        placeholder.bind((LOOPBACK, 0))
        dead_port = placeholder.getsockname()[1]
    async with (
        TcpProxy(LOOPBACK, dead_port) as proxy,
        await anyio.connect_tcp(LOOPBACK, proxy.port) as client,
    ):
        with pytest.raises(CLOSED):
            await client.receive()


def test_SyncTcpProxy_forwards_and_cuts_from_sync_code() -> None:
    """The blocking facade forwards plain sockets and cut() closes them."""
    with (
        socket.create_server((LOOPBACK, 0)) as listener,
        SyncTcpProxy(LOOPBACK, listener.getsockname()[1]) as proxy,
    ):
        listener.settimeout(10)
        with socket.create_connection((LOOPBACK, proxy.port), timeout=10) as client:
            server, _ = listener.accept()
            with server:
                server.settimeout(10)
                client.sendall(b"hello")
                assert server.recv(5) == b"hello"
                assert proxy.connection_count == 1

                assert proxy.cut() == 1

                assert proxy.connection_count == 0
                for sock in (client, server):
                    with suppress(ConnectionResetError):
                        assert sock.recv(1) == b""
        assert proxy.accepted_count == 1


# -- against the real Apache ZooKeeper, with kazoo ---------------------------------------------


@pytest.fixture(scope="module")
def fast_zookeeper() -> Iterator[ZooKeeperProcess]:
    """Our own server, so the timing below does not depend on shared fixtures."""
    require_zookeeper()
    # tickTime 500 ms makes the minimum session timeout 1 s, so expiry tests stay short.
    with ZooKeeperProcess(tick_time=500) as zk:
        yield zk


def kazoo_through(proxy: SyncTcpProxy, session_timeout: float) -> KazooClient:
    return KazooClient(
        hosts=proxy.address,
        timeout=session_timeout,
        connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.2},
    )


def states_until(states: queue.Queue[str], final: str, timeout: float = 15.0) -> list[str]:
    seen: list[str] = []
    while not seen or seen[-1] != final:
        seen.append(states.get(timeout=timeout))
    return seen


@pytest.mark.zookeeper
def test_TcpProxy_cut_kazoo_reconnects_with_the_same_session(
    fast_zookeeper: ZooKeeperProcess,
) -> None:
    """A cut connection is a disconnect, not an expiry: kazoo resumes the same session."""
    with SyncTcpProxy(LOOPBACK, fast_zookeeper.port) as proxy:
        client = kazoo_through(proxy, session_timeout=4.0)
        states: queue.Queue[str] = queue.Queue()
        client.start(timeout=10)
        try:
            client.add_listener(states.put)
            session_id, _ = client.client_id
            client.create("/cut-ephemeral", ephemeral=True)

            assert proxy.cut() == 1

            assert states_until(states, KazooState.CONNECTED) == [
                KazooState.SUSPENDED,
                KazooState.CONNECTED,
            ]
            assert client.client_id[0] == session_id
            assert client.exists("/cut-ephemeral") is not None
            assert proxy.accepted_count >= 2
        finally:
            client.stop()
            client.close()


@pytest.mark.zookeeper
def test_TcpProxy_stall_beyond_session_timeout_expires_the_session(
    fast_zookeeper: ZooKeeperProcess,
) -> None:
    """A partition longer than the session timeout expires the session on the server; once
    the partition heals, the client learns it (LOST) and its ephemeral node is gone."""
    observer = KazooClient(hosts=fast_zookeeper.address)
    observer.start(timeout=10)
    try:
        with SyncTcpProxy(LOOPBACK, fast_zookeeper.port) as proxy:
            client = kazoo_through(proxy, session_timeout=1.0)
            states: queue.Queue[str] = queue.Queue()
            client.start(timeout=10)
            try:
                client.add_listener(states.put)
                client.create("/stall-ephemeral", ephemeral=True)
                expired = threading.Event()
                assert observer.exists("/stall-ephemeral", watch=lambda event: expired.set())

                proxy.stall()
                assert expired.wait(15), "the server did not expire the partitioned session"
                proxy.resume()

                assert states_until(states, KazooState.LOST) == [
                    KazooState.SUSPENDED,
                    KazooState.LOST,
                ]
                assert observer.exists("/stall-ephemeral") is None
            finally:
                client.stop()
                client.close()
    finally:
        observer.stop()
        observer.close()

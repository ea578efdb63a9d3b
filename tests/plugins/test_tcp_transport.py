"""The built-in tcp transport: binds port 0, reports it, hands each connection over."""

from __future__ import annotations

import logging
import socket

import anyio
import anyio.abc
import pytest

from coord.plugins.builtin.tcp import TcpTransport
from coord.server._acl import PeerInfo
from coord.server._config import ServerConfig
from coord.server._transport import Transport

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


CONFIG = ServerConfig(host="127.0.0.1", port=0)


async def test_TcpTransport_reports_bound_port_and_calls_handler_with_peer() -> None:
    """port 0: the real address comes back through task_status; the handler gets the peer."""
    transport = TcpTransport()
    assert isinstance(transport, Transport)
    peers: list[PeerInfo] = []
    nodelay: list[int] = []

    async def echo(stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
        peers.append(peer)
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        nodelay.append(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        await stream.send(await stream.receive())

    async with anyio.create_task_group() as tg:
        addresses = await tg.start(transport.serve, CONFIG, echo)
        assert len(addresses) == 1
        host, port = addresses[0]
        assert host == "127.0.0.1" and port > 0
        with anyio.fail_after(5):
            async with await anyio.connect_tcp(host, port) as client:
                await client.send(b"ping")
                assert await client.receive() == b"ping"
                local_port = client.extra(anyio.abc.SocketAttribute.local_port)
        tg.cancel_scope.cancel()

    assert peers == [PeerInfo("127.0.0.1", local_port)]
    assert nodelay and nodelay[0] != 0, "accepted sockets must have TCP_NODELAY"


async def test_TcpTransport_serves_connections_concurrently_and_closes_after_handler() -> None:
    """Each connection runs in its own task; the stream closes when the handler returns."""
    transport = TcpTransport()
    both_in = anyio.Event()
    inside = 0

    async def handler(stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_in.set()
        await both_in.wait()

    async with anyio.create_task_group() as tg:
        [(host, port)] = await tg.start(transport.serve, CONFIG, handler)
        with anyio.fail_after(5):
            async with (
                await anyio.connect_tcp(host, port) as first,
                await anyio.connect_tcp(host, port) as second,
            ):
                await both_in.wait()
                for client in (first, second):
                    with pytest.raises(anyio.EndOfStream):
                        await client.receive()
        tg.cancel_scope.cancel()


async def test_TcpTransport_handler_error_ends_only_that_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = TcpTransport()
    calls = 0

    async def handler(stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("handler bug")
        await stream.send(b"ok")

    with caplog.at_level(logging.ERROR, logger="coord.server"):
        async with anyio.create_task_group() as tg:
            [(host, port)] = await tg.start(transport.serve, CONFIG, handler)
            with anyio.fail_after(5):
                async with await anyio.connect_tcp(host, port) as client:
                    with pytest.raises(anyio.EndOfStream):
                        await client.receive()
                async with await anyio.connect_tcp(host, port) as client:
                    assert await client.receive() == b"ok"
            tg.cancel_scope.cancel()
    [record] = [r for r in caplog.records if r.getMessage().startswith("connection from")]
    assert record.exc_info is not None and "handler bug" in str(record.exc_info[1])


async def test_TcpTransport_bind_failure_raises_before_started() -> None:
    transport = TcpTransport()

    async def handler(stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
        pass

    async with anyio.create_task_group() as tg:
        [(host, port)] = await tg.start(transport.serve, CONFIG, handler)
        with pytest.raises(OSError):
            await tg.start(transport.serve, ServerConfig(host=host, port=port), handler)
        tg.cancel_scope.cancel()

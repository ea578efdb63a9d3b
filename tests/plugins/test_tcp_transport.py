"""The built-in tcp transport: binds port 0, reports it, hands each connection over."""

from __future__ import annotations

import functools
import logging
import socket

import anyio
import anyio.abc
import pytest

from coord.plugins.builtin.tcp import TcpTransport, accept_loop
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


class _GoneStream:
    """An accepted stream whose peer reset before its address could be read."""

    closed = False

    def extra(self, attribute: object) -> object:
        raise anyio.TypedAttributeLookupError("the socket is already closed")

    async def aclose(self) -> None:
        self.closed = True

    async def __aenter__(self) -> _GoneStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _OneGoneThenBlock:
    """A listener that hands out one vanished connection, then waits forever."""

    def __init__(self) -> None:
        self.gone = _GoneStream()
        self.accepted = 0
        self.asked_again = anyio.Event()

    async def accept(self) -> _GoneStream:
        self.accepted += 1
        if self.accepted == 1:
            return self.gone
        self.asked_again.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


@pytest.mark.anyio
async def test_TcpTransport_peer_gone_before_accept_completes_keeps_listening() -> None:
    """A connection reset before its address is read is dropped; the listener goes on."""
    listener = _OneGoneThenBlock()

    async def handler(stream: object, peer: object) -> None:
        raise AssertionError("no handler for a vanished peer")

    async with anyio.create_task_group() as tg:
        serve_one = functools.partial(TcpTransport().serve_connection, handler=handler)
        tg.start_soon(accept_loop, listener, serve_one, tg, "tcp")  # type: ignore[arg-type]
        with anyio.fail_after(5):
            await listener.asked_again.wait()
        tg.cancel_scope.cancel()
    assert listener.gone.closed

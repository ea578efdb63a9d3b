"""The contract every transport must keep, as a reusable pytest suite.

A transport's tests subclass :class:`TransportConformance` (the class name must start with
``Test``) and provide a ``transport`` fixture; a transport that is not plain TCP also
overrides ``connect`` (how a client opens a byte stream to it) and ``server_config``::

    from coord.testing import TransportConformance

    class TestMyTransport(TransportConformance):
        @pytest.fixture
        def transport(self):
            return MyTransport()

        @pytest.fixture
        def connect(self):                    # default: anyio.connect_tcp
            async def connect(host, port):
                return await anyio.connect_tcp(host, port, ssl_context=CLIENT_CONTEXT)
            return connect

The suite runs the transport's ``serve`` in a task group with small handlers and checks the
:class:`~coord.server._transport.Transport` contract: it reports the bound addresses
(the real port for port 0) through ``task_status``; every connection gets its own handler
call with a byte stream and a :class:`~coord.server._acl.PeerInfo` naming the client's
address and port; bytes flow both ways unchanged; the stream is closed when the handler
returns (the client sees end-of-stream) and the handler sees end-of-stream when the client
closes; a half-closed client (``send_eof``) still gets its answer (when
``supports_half_close``); many connections are served concurrently; a handler that raises
ends only its own connection; binding an address in use raises ``OSError`` before
``started``; cancelling ``serve`` closes the listener and every connection.

The suite is async (anyio; ``anyio_backend`` defaults to ``"asyncio"``).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import anyio
import anyio.abc
import pytest

from coord.server._acl import PeerInfo
from coord.server._transport import Transport

__all__ = ["TransportConformance"]

Handler = Callable[[anyio.abc.ByteStream, PeerInfo], Awaitable[None]]
Connect = Callable[[str, int], Awaitable[anyio.abc.ByteStream]]

#: Generous bound for anything that should happen at once.
WAIT = 10.0


async def _read_all(stream: anyio.abc.ByteStream) -> bytes:
    out = bytearray()
    try:
        while True:
            out += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        return bytes(out)


async def _read_exactly(stream: anyio.abc.ByteStream, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += await stream.receive()
    return bytes(out)


async def _echo(stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
    try:
        while True:
            data = await stream.receive()
            await stream.send(data)
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return


class TransportConformance:
    """The transport contract; subclass it with a ``transport`` fixture (module docs).

    Attributes:
        supports_half_close: whether a client's ``send_eof`` leaves the other direction
            open (TCP: yes; TLS 1.3 over anyio: no).
        connections: how many concurrent connections the "many" test opens.
    """

    supports_half_close: ClassVar[bool] = True
    connections: ClassVar[int] = 50

    @pytest.fixture
    def anyio_backend(self) -> str:
        """The async backend the suite runs on; override to parametrise."""
        return "asyncio"

    @pytest.fixture
    def transport(self) -> Transport:
        """The transport under test (override)."""
        raise NotImplementedError("subclass TransportConformance with a transport fixture")

    @pytest.fixture
    def server_config(self) -> dict[str, Any]:
        """ServerConfig overrides (host and port default to 127.0.0.1 and 0)."""
        return {}

    @pytest.fixture
    def connect(self) -> Connect:
        """How a client connects: plain TCP unless overridden."""

        async def connect(host: str, port: int) -> anyio.abc.ByteStream:
            return await anyio.connect_tcp(host, port)

        return connect

    @pytest.fixture
    def serving(
        self, transport: Transport, server_config: dict[str, Any], anyio_backend: str
    ) -> Callable[[Handler], Any]:
        """``async with serving(handler) as (host, port):`` runs ``serve`` meanwhile."""
        from coord.server._config import ServerConfig

        values = {"host": "127.0.0.1", "port": 0, "storage": "memory", **server_config}
        config = ServerConfig(**values)

        @asynccontextmanager
        async def run(handler: Handler) -> AsyncIterator[tuple[str, int]]:
            async with anyio.create_task_group() as tg:
                addresses = await tg.start(transport.serve, config, handler)
                assert isinstance(addresses, list) and addresses, addresses
                host, port = addresses[0]
                try:
                    yield host, port
                finally:
                    tg.cancel_scope.cancel()

        return run

    # --- tests -------------------------------------------------------------------------

    def test_transport_implements_the_protocol(self, transport: Transport) -> None:
        assert isinstance(transport, Transport)
        assert isinstance(transport.name, str) and transport.name

    @pytest.mark.anyio
    async def test_accept_reports_the_bound_port_and_echoes(
        self, serving: Callable[[Handler], Any], connect: Connect
    ) -> None:
        async with serving(_echo) as (host, port):
            assert port != 0, "port 0 must be reported as the real bound port"
            with anyio.fail_after(WAIT):
                stream = await connect(host, port)
                async with stream:
                    payload = bytes(range(256)) * 64
                    await stream.send(payload)
                    assert await _read_exactly(stream, len(payload)) == payload

    @pytest.mark.anyio
    async def test_peer_info_names_the_client(
        self, serving: Callable[[Handler], Any], connect: Connect
    ) -> None:
        seen: list[PeerInfo] = []

        async def record(stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
            seen.append(peer)
            await stream.send(b"ok")

        async with serving(record) as (host, port):
            with anyio.fail_after(WAIT):
                stream = await connect(host, port)
                async with stream:
                    assert await _read_exactly(stream, 2) == b"ok"
                    local = stream.extra(anyio.abc.SocketAttribute.local_address, None)
        (peer,) = seen
        assert isinstance(peer, PeerInfo)
        assert peer.host == "127.0.0.1"
        if local is not None:
            assert peer.port == local[1]

    @pytest.mark.anyio
    async def test_handler_return_closes_the_connection(
        self, serving: Callable[[Handler], Any], connect: Connect
    ) -> None:
        async def greet(stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
            await stream.send(b"bye")

        async with serving(greet) as (host, port):
            with anyio.fail_after(WAIT):
                stream = await connect(host, port)
                async with stream:
                    assert await _read_all(stream) == b"bye"

    @pytest.mark.anyio
    async def test_client_close_is_end_of_stream_for_the_handler(
        self, serving: Callable[[Handler], Any], connect: Connect
    ) -> None:
        ended = anyio.Event()
        received = bytearray()

        async def drain(stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
            received.extend(await _read_all(stream))
            ended.set()

        async with serving(drain) as (host, port):
            with anyio.fail_after(WAIT):
                stream = await connect(host, port)
                await stream.send(b"last words")
                await stream.aclose()
                await ended.wait()
        assert bytes(received) == b"last words"

    @pytest.mark.anyio
    async def test_half_close_still_gets_the_answer(
        self, serving: Callable[[Handler], Any], connect: Connect
    ) -> None:
        if not self.supports_half_close:
            pytest.skip("the transport does not support half-close")

        async def count(stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
            data = await _read_all(stream)
            await stream.send(str(len(data)).encode())

        async with serving(count) as (host, port):
            with anyio.fail_after(WAIT):
                stream = await connect(host, port)
                async with stream:
                    await stream.send(b"x" * 1000)
                    await stream.send_eof()
                    assert await _read_all(stream) == b"1000"

    @pytest.mark.anyio
    async def test_many_concurrent_connections(
        self, serving: Callable[[Handler], Any], connect: Connect
    ) -> None:
        active = 0
        peak = 0

        async def hold(stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            try:
                await _echo(stream, peer)
            finally:
                active -= 1

        async with serving(hold) as (host, port):
            streams = []
            with anyio.fail_after(WAIT * 3):
                for _ in range(self.connections):
                    streams.append(await connect(host, port))
                for n, stream in enumerate(streams):
                    await stream.send(b"%d;" % n)
                for n, stream in enumerate(streams):
                    expected = b"%d;" % n
                    assert await _read_exactly(stream, len(expected)) == expected
                assert peak == self.connections
                for stream in streams:
                    await stream.aclose()

    @pytest.mark.anyio
    async def test_failing_handler_ends_only_its_connection(
        self, serving: Callable[[Handler], Any], connect: Connect
    ) -> None:
        calls = 0

        async def flaky(stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("handler failure (expected by the test)")
            await _echo(stream, peer)

        async with serving(flaky) as (host, port):
            with anyio.fail_after(WAIT):
                first = await connect(host, port)
                async with first:
                    assert await _read_all(first) == b""
                second = await connect(host, port)
                async with second:
                    await second.send(b"still serving")
                    assert await _read_exactly(second, 13) == b"still serving"

    @pytest.mark.anyio
    async def test_address_in_use_raises_oserror(
        self, transport: Transport, server_config: dict[str, Any]
    ) -> None:
        from coord.server._config import ServerConfig

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            config = ServerConfig(
                **{"host": "127.0.0.1", "storage": "memory", **server_config, "port": port}
            )
            raised: list[BaseException] = []
            with anyio.fail_after(WAIT):
                try:
                    async with anyio.create_task_group() as tg:
                        await tg.start(transport.serve, config, _echo)
                        tg.cancel_scope.cancel()
                except* OSError as group:
                    raised.extend(group.exceptions)
            assert raised, "serve on an address in use must raise OSError"

    @pytest.mark.anyio
    async def test_cancel_closes_listener_and_connections(
        self, serving: Callable[[Handler], Any], connect: Connect
    ) -> None:
        with anyio.fail_after(WAIT):
            async with serving(_echo) as (host, port):
                stream = await connect(host, port)
                await stream.send(b"x")
                assert await _read_exactly(stream, 1) == b"x"
            # serve was cancelled: the open connection ends, new ones are refused
            async with stream:
                assert await _read_all(stream) == b""
            with pytest.raises(OSError):
                await (await connect(host, port)).aclose()

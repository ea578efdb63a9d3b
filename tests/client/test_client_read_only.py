"""Read-only mode against a real coord server behind a proxy that plays a read-only server:
it sets ``readOnly`` in the handshake reply and answers ``isro`` with ``ro``."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import pytest

import coord
from coord.protocol import NotReadOnlyError

pytestmark = pytest.mark.anyio


async def _pump(src: anyio.abc.ByteStream, dst: anyio.abc.ByteStream, flip_handshake: bool) -> None:
    buffer = b""
    with contextlib.suppress(
        anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError
    ):
        while True:
            data = await src.receive()
            if flip_handshake:
                buffer += data
                if len(buffer) < 4 or len(buffer) < 4 + struct.unpack(">i", buffer[:4])[0]:
                    continue
                end = 4 + struct.unpack(">i", buffer[:4])[0]
                data = buffer[: end - 1] + b"\x01" + buffer[end:]  # readOnly = true
                flip_handshake = False
            await dst.send(data)
    with contextlib.suppress(Exception):
        await dst.aclose()


@contextlib.asynccontextmanager
async def read_only_server(host: str, port: int) -> AsyncIterator[str]:
    """A fake read-only server in front of ``host:port``; yields its address."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

    async def handle(client: anyio.abc.SocketStream) -> None:
        async with client:
            first = await client.receive()
            if first.startswith(b"isro"):
                await client.send(b"ro")
                return
            async with await anyio.connect_tcp(host, port) as upstream:
                await upstream.send(first)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_pump, client, upstream, False)
                    await _pump(upstream, client, flip_handshake=True)
                    tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        port_ = listener.extra(anyio.abc.SocketAttribute.local_port)
        try:
            yield f"127.0.0.1:{port_}"
        finally:
            tg.cancel_scope.cancel()


async def test_Client_read_only_rejects_writes_then_moves_to_read_write_server(
    coord_session_server: Any, root: str
) -> None:
    """On a read-only server: reads work, writes fail locally with NotReadOnlyError; the
    client finds the read-write server (isro) and moves the session there."""
    direct = coord_session_server.address
    async with coord.connect(direct) as setup:
        await setup.create(root, b"before")
    ro_server = read_only_server(coord_session_server.host, coord_session_server.port)
    async with ro_server as ro:
        client = coord.connect(
            f"{ro},{direct}",
            read_only=True,
            zones={ro: "near", direct: "far"},
            zone="near",
            probe_interval=0.3,
        )
        async with client as zk:
            assert zk.server == ro and zk.read_only
            session = zk.session_id
            assert (await zk.get(root))[0] == b"before"
            with pytest.raises(NotReadOnlyError):
                await zk.set(root, b"after")
            with pytest.raises(NotReadOnlyError):
                await zk.create(root + "/child")
            with anyio.fail_after(10):
                while zk.server != direct:  # noqa: ASYNC110 - polled on purpose
                    await anyio.sleep(0.02)
            assert not zk.read_only and zk.session_id == session
            await zk.set(root, b"after")
            # The read-only server of the client's own zone does not lure it back.
            await anyio.sleep(1.0)
            assert zk.server == direct
            await zk.delete(root)


async def test_Client_without_read_only_flag_sends_readOnly_false(
    coord_session_server: Any,
) -> None:
    """A client that did not ask for read-only mode is never on a read-only server."""
    async with coord.connect(coord_session_server.address) as zk:
        assert not zk.read_only
        assert not zk._core.can_be_read_only

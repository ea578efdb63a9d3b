"""An in-process byte stream pair: how the HTTP API gateway talks ZooKeeper to its server.

The gateway's sessions are ordinary coord clients whose "socket" is one end of a pair of
anyio memory object streams; the server's transport handler gets the other end, exactly as
it gets an accepted TCP connection. Chunks cross as they were sent (the receiving end keeps
the rest of a chunk longer than ``max_bytes`` for the next ``receive``); each direction
holds at most :data:`_BUFFERED_CHUNKS` unread chunks, so a slow reader slows its writer.
"""

from __future__ import annotations

from typing import Final

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["MemoryByteStream", "memory_stream_pair"]

_BUFFERED_CHUNKS: Final = 64


class MemoryByteStream(anyio.abc.ByteStream):
    """One end of an in-process byte stream (see :func:`memory_stream_pair`)."""

    def __init__(
        self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]
    ) -> None:
        self._send = send
        self._receive = receive
        self._pending = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """The next bytes the other end sent.

        Raises:
            anyio.EndOfStream: the other end closed (or sent EOF) and everything was read.
            anyio.ClosedResourceError: this end was closed.
        """
        if not self._pending:
            self._pending = await self._receive.receive()
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def send(self, item: bytes) -> None:
        """Send ``item`` to the other end.

        Raises:
            anyio.BrokenResourceError: the other end is closed.
            anyio.ClosedResourceError: this end was closed.
        """
        if item:
            await self._send.send(bytes(item))

    async def send_eof(self) -> None:
        """No more data from this end: the other end's ``receive`` ends after the rest."""
        await self._send.aclose()

    async def aclose(self) -> None:
        """Close both directions of this end."""
        await self._send.aclose()
        await self._receive.aclose()


def memory_stream_pair() -> tuple[MemoryByteStream, MemoryByteStream]:
    """Two connected in-process byte streams: what one end sends, the other receives."""
    a_send, b_receive = anyio.create_memory_object_stream[bytes](_BUFFERED_CHUNKS)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](_BUFFERED_CHUNKS)
    return MemoryByteStream(a_send, a_receive), MemoryByteStream(b_send, b_receive)

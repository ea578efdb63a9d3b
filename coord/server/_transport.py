"""What a transport plugin provides: a :class:`Transport` that accepts connections and hands
each one, as a byte stream, to the server's :data:`ConnectionHandler`.

A transport owns listening and accepting only; framing, the handshake, connection limits and
timeouts are the server's, so every transport behaves the same. Transports are registered
through the ``coord_transports`` hook (:mod:`coord.plugins.hookspecs`); the built-in ``tcp``
transport lives in :mod:`coord.plugins.builtin.tcp`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

from ._acl import PeerInfo

if TYPE_CHECKING:
    from anyio.abc import ByteStream, TaskStatus

    from ._config import ServerConfig

__all__ = ["ConnectionHandler", "Transport"]

#: Serves one accepted connection until it ends: ``await handler(stream, peer)``.
ConnectionHandler: TypeAlias = Callable[["ByteStream", PeerInfo], Awaitable[None]]


@runtime_checkable
class Transport(Protocol):
    """A named way of accepting client connections (what ``coord_transports`` returns)."""

    #: The transport's name (``"tcp"``, ``"tls"``, ...), unique among the loaded transports.
    name: str

    async def serve(
        self,
        config: ServerConfig,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[list[tuple[str, int]]],
    ) -> None:
        """Listen per ``config`` and serve connections until cancelled.

        Started with ``addresses = await task_group.start(transport.serve, config,
        handler)``: once listening, it calls ``task_status.started(addresses)`` with every
        bound ``(host, port)`` (the real port when ``config.port`` is 0). Each accepted
        connection gets its own task running ``await handler(stream, peer)``; the stream
        is closed when the handler returns. An exception from a handler is logged and ends
        that connection only; transient accept errors (out of file descriptors) are logged
        and retried. Cancelling ``serve`` closes the listeners and cancels every
        connection's handler.

        Args:
            config: the server's configuration (``host``, ``port`` and anything the
                transport itself reads).
            handler: what to run for each connection.
            task_status: receives the bound addresses.

        Raises:
            OSError: the address cannot be bound (before ``task_status.started``).
        """
        ...

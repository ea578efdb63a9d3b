"""Built-in plugin: the ``tcp`` transport, ZooKeeper's plain client port.

Accepted sockets have ``TCP_NODELAY`` set (anyio does it on accept, on both the asyncio and
the trio backend), which request/response traffic of small frames needs. Accept errors that
mean "out of resources" (``EMFILE`` and friends) are logged and retried after a pause
instead of stopping the server, as trio's ``serve_listeners`` does.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from coord.plugins.hookspecs import hookimpl
from coord.server._acl import PeerInfo

if TYPE_CHECKING:
    from coord.server._config import ServerConfig
    from coord.server._transport import ConnectionHandler, Transport

__all__ = ["TcpTransport", "accept_loop", "coord_transports", "remote_peer", "serve_tcp"]

log = logging.getLogger("coord.server")

#: accept() failures that mean the process or system is out of resources: wait, retry.
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
#: accept() failures that concern only the connection being accepted: retry at once.
_CONNECTION_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
_RESOURCE_RETRY_DELAY = 0.1


def _host_port(address: Any) -> tuple[str, int]:
    """``(host, port)`` of a socket address, IPv4-mapped IPv6 addresses as IPv4."""
    host, port = str(address[0]), int(address[1])
    try:
        mapped = ipaddress.ip_address(host)
    except ValueError:
        return host, port
    if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
        return str(mapped.ipv4_mapped), port
    return host, port


async def serve_tcp(
    host: str,
    port: int,
    serve_one: Callable[[anyio.abc.SocketStream], Coroutine[Any, Any, None]],
    *,
    name: str = "tcp",
    task_status: anyio.abc.TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``host``:``port`` and run ``serve_one(stream)`` in a task of its own for
    each accepted connection, until cancelled (which cancels those tasks too).

    The accept loop shared by every TCP listener of the server (the client port, the TLS
    port, the admin endpoint, the HTTP API): it reports the bound addresses through
    ``task_status``, retries at once after accept errors that concern only the connection
    being accepted, and logs and retries after a pause those that mean the process is out of
    resources. ``serve_one`` owns the stream (closes it).

    Raises:
        OSError: the address cannot be bound.
    """
    listener = await anyio.create_tcp_listener(
        local_host=host or None, local_port=port, reuse_port=False
    )

    async with listener, anyio.create_task_group() as tg:
        addresses = [
            _host_port(sub.extra(SocketAttribute.local_address)) for sub in listener.listeners
        ]
        for sub in listener.listeners:
            tg.start_soon(accept_loop, cast(anyio.abc.SocketListener, sub), serve_one, tg, name)
        task_status.started(addresses)


async def accept_loop(
    listener: anyio.abc.SocketListener,
    serve_one: Callable[[anyio.abc.SocketStream], Coroutine[Any, Any, None]],
    tg: anyio.abc.TaskGroup,
    name: str,
) -> None:
    """Accept connections on ``listener`` forever, each served by ``serve_one`` in ``tg``."""
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno in _CONNECTION_ERRNOS:
                continue
            if exc.errno in _RESOURCE_ERRNOS:
                log.error("%s: accept failed: %s; retrying shortly", name, exc)
                await anyio.sleep(_RESOURCE_RETRY_DELAY)
                continue
            raise
        tg.start_soon(serve_one, stream)


def remote_peer(stream: anyio.abc.SocketStream) -> PeerInfo | None:
    """The client's address, or None when it is already gone."""
    try:
        return PeerInfo(*_host_port(stream.extra(SocketAttribute.remote_address)))
    except (OSError, anyio.TypedAttributeLookupError):
        return None


class TcpTransport:
    """Serves the client port on ``config.host``:``config.port`` over plain TCP."""

    name = "tcp"

    async def serve(
        self,
        config: ServerConfig,
        handler: ConnectionHandler,
        *,
        task_status: anyio.abc.TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen and run ``handler`` per connection until cancelled.

        ``config.host`` may be an address, a name, or ``""`` for every interface.

        Raises:
            OSError: the address cannot be bound.
        """
        serve_one = functools.partial(self.serve_connection, handler=handler)
        await serve_tcp(config.host, config.port, serve_one, task_status=task_status)

    async def serve_connection(
        self, stream: anyio.abc.SocketStream, *, handler: ConnectionHandler
    ) -> None:
        """Serve one accepted connection with ``handler``, then close it; a connection whose
        peer is already gone is just closed."""
        async with stream:
            peer = remote_peer(stream)
            if peer is None:
                return
            try:
                await handler(stream, peer)
            except Exception:
                log.exception("connection from %s:%d failed", peer.host, peer.port)


@hookimpl
def coord_transports() -> list[Transport]:
    """The ``tcp`` transport."""
    return [TcpTransport()]

"""Built-in plugin: the ``tcp`` transport, ZooKeeper's plain client port.

Accepted sockets have ``TCP_NODELAY`` set (anyio does it on accept, on both the asyncio and
the trio backend), which request/response traffic of small frames needs. Accept errors that
mean "out of resources" (``EMFILE`` and friends) are logged and retried after a pause
instead of stopping the server, as trio's ``serve_listeners`` does.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from coord.plugins.hookspecs import hookimpl
from coord.server._acl import PeerInfo

if TYPE_CHECKING:
    from coord.server._config import ServerConfig
    from coord.server._transport import ConnectionHandler, Transport

__all__ = ["TcpTransport", "coord_transports"]

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
        listener = await anyio.create_tcp_listener(
            local_host=config.host or None, local_port=config.port, reuse_port=False
        )
        async with listener, anyio.create_task_group() as tg:
            addresses = [
                _host_port(sub.extra(SocketAttribute.local_address)) for sub in listener.listeners
            ]
            for sub in listener.listeners:
                tg.start_soon(self._accept_loop, cast(anyio.abc.SocketListener, sub), handler, tg)
            task_status.started(addresses)

    async def _accept_loop(
        self,
        listener: anyio.abc.SocketListener,
        handler: ConnectionHandler,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno in _CONNECTION_ERRNOS:
                    continue
                if exc.errno in _RESOURCE_ERRNOS:
                    log.error("accept failed: %s; retrying shortly", exc)
                    await anyio.sleep(_RESOURCE_RETRY_DELAY)
                    continue
                raise
            try:
                peer = PeerInfo(*_host_port(stream.extra(SocketAttribute.remote_address)))
            except (OSError, anyio.TypedAttributeLookupError):  # the peer is already gone
                await stream.aclose()
                continue
            tg.start_soon(_serve_connection, stream, peer, handler, name=f"coord tcp {peer}")


async def _serve_connection(
    stream: anyio.abc.SocketStream, peer: PeerInfo, handler: ConnectionHandler
) -> None:
    async with stream:
        try:
            await handler(stream, peer)
        except Exception:
            log.exception("connection from %s:%d failed", peer.host, peer.port)


@hookimpl
def coord_transports() -> list[Transport]:
    """The ``tcp`` transport."""
    return [TcpTransport()]

"""Fault helpers for tests of code that uses the client: drop a connection, expire a session.

They work against coord and Apache ZooKeeper alike. (``coord.testing`` is owned by the
server side; these live with the client and can be re-exported from there.)

* :func:`drop_connection` aborts the client's current TCP connection, as a network
  failure would: the client goes ``SUSPENDED`` and then ``RECONNECTED`` with its session.
* :func:`expire_session` ends the client's session on the server the way Curator's
  ``KillSession`` and kazoo's tests do: a second connection re-attaches the session with
  its id and password and closes it. The server deletes the ephemeral nodes; the client
  learns it on its next contact and goes ``LOST``.
"""

from __future__ import annotations

import anyio

from coord.protocol import CloseSessionRequest, OpCode

from ._client import Client
from ._core import ClientCore, Connected, Reply, SessionExpired
from ._paths import HostPort
from ._types import ConnectionState

__all__ = ["drop_connection", "expire_session"]


async def drop_connection(client: Client) -> None:
    """Abort ``client``'s current connection; it reconnects by itself.

    Does nothing if the client is not connected.
    """
    client._drop_connection()
    await anyio.lowlevel.checkpoint()


async def expire_session(client: Client, *, wait: bool = True) -> None:
    """Expire ``client``'s session on the server.

    Args:
        client: a connected client.
        wait: wait until the client reports ``LOST``.

    Raises:
        RuntimeError: the client has no session.
    """
    if not client.session_id:
        raise RuntimeError("the client has no session")
    server = client.server
    if server is not None:
        host, _, port = server.rpartition(":")
        target = HostPort(host.strip("[]"), int(port))
    else:
        target = client._hosts[0]
    core: ClientCore[object] = ClientCore(max(1, round(client.session_timeout * 1000)))
    core.session_id = client.session_id
    core.passwd = client.session_password
    timeout = max(client.session_timeout, 1.0)
    with anyio.fail_after(timeout * 2):
        async with await anyio.connect_tcp(target.host, target.port) as stream:
            await stream.send(core.connect(anyio.current_time(), timeout))
            closing = False
            while True:
                data = await stream.receive()
                for event in core.receive_data(data, anyio.current_time()):
                    if isinstance(event, SessionExpired):
                        closing = True
                        break
                    if isinstance(event, Connected):
                        _, request = core.request(
                            OpCode.CLOSE_SESSION, CloseSessionRequest(), anyio.current_time()
                        )
                        await stream.send(core.data_to_send() + request)
                    elif isinstance(event, Reply) and event.op == OpCode.CLOSE_SESSION:
                        closing = True
                        break
                if closing:
                    break
    client._drop_connection()
    if wait:
        with anyio.fail_after(timeout * 4):
            async for state in client.states():
                if state in (ConnectionState.LOST, ConnectionState.CLOSED):
                    break

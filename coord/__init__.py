"""coord: a coordination service in the family of Apache ZooKeeper, and its SDK.

``coord.connect`` (async, asyncio or trio) and ``coord.connect_sync`` (threads) open a
client; see ``docs/client.md``. The client names are loaded on first use, so importing
``coord.protocol`` (the sans-IO codec) does not import anyio or sockets.
"""

from typing import TYPE_CHECKING

from coord.protocol._errors import *  # noqa: F403
from coord.protocol._errors import __all__ as _errors_all

if TYPE_CHECKING:
    from coord.client import (
        ACL,
        Client,
        ClientClosedError,
        ConnectionState,
        EventType,
        Id,
        Perm,
        RetryPolicy,
        Stat,
        SyncClient,
        TransactionFailed,
        WatchedEvent,
        connect,
        connect_sync,
    )

__version__ = "0.1.0"

_CLIENT_NAMES = (
    "ACL",
    "Client",
    "ClientClosedError",
    "ConnectionState",
    "EventType",
    "Id",
    "Perm",
    "RetryPolicy",
    "Stat",
    "SyncClient",
    "TransactionFailed",
    "WatchedEvent",
    "connect",
    "connect_sync",
)

__all__ = [
    "ACL",
    "Client",
    "ClientClosedError",
    "ConnectionState",
    "EventType",
    "Id",
    "Perm",
    "RetryPolicy",
    "Stat",
    "SyncClient",
    "TransactionFailed",
    "WatchedEvent",
    "__version__",
    "connect",
    "connect_sync",
    *_errors_all,
]


def __getattr__(name: str) -> object:
    if name in _CLIENT_NAMES:
        import coord.client

        value = getattr(coord.client, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

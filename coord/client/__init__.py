"""coord's client SDK: an async-first ZooKeeper client on anyio, and its sync facade.

``async with coord.connect("host:2181") as client`` under asyncio or trio;
``with coord.connect_sync("host:2181") as client`` from threads. See ``docs/client.md``.
"""

from coord.client._client import Client, connect
from coord.client._retry import RetryPolicy
from coord.client._sync import SyncClient, SyncTransaction, SyncWatchStream, connect_sync
from coord.client._tls import TlsOptions
from coord.client._transaction import GetChildren, GetData, ReadOp, ReadResult, Transaction
from coord.client._types import (
    ANYONE_ID_UNSAFE,
    AUTH_IDS,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    CheckResult,
    ClientClosedError,
    ConnectionState,
    CreateResult,
    DeleteResult,
    OpResult,
    SetResult,
    TransactionFailed,
    WatchedEvent,
    digest_acl,
    digest_id,
)
from coord.client._watch import OneShotWatch, WatchStream
from coord.protocol import ACL, ClientInfo, EventType, Id, KeeperState, Perm, Stat

__all__ = [
    "ACL",
    "ANYONE_ID_UNSAFE",
    "AUTH_IDS",
    "CREATOR_ALL_ACL",
    "OPEN_ACL_UNSAFE",
    "READ_ACL_UNSAFE",
    "CheckResult",
    "Client",
    "ClientClosedError",
    "ClientInfo",
    "ConnectionState",
    "CreateResult",
    "DeleteResult",
    "EventType",
    "GetChildren",
    "GetData",
    "Id",
    "KeeperState",
    "OneShotWatch",
    "OpResult",
    "Perm",
    "ReadOp",
    "ReadResult",
    "RetryPolicy",
    "SetResult",
    "Stat",
    "SyncClient",
    "SyncTransaction",
    "SyncWatchStream",
    "TlsOptions",
    "Transaction",
    "TransactionFailed",
    "WatchStream",
    "WatchedEvent",
    "connect",
    "connect_sync",
    "digest_acl",
    "digest_id",
]

"""Public value types of the client: states, watch events, results, errors, ACL helpers."""

from __future__ import annotations

import base64
import enum
import hashlib
from dataclasses import dataclass
from typing import TypeAlias

from coord.protocol import ACL, CoordError, EventType, Id, KeeperState, Perm, Stat

__all__ = [
    "ANYONE_ID_UNSAFE",
    "AUTH_IDS",
    "CREATOR_ALL_ACL",
    "OPEN_ACL_UNSAFE",
    "READ_ACL_UNSAFE",
    "CheckResult",
    "ClientClosedError",
    "ConnectionState",
    "CreateResult",
    "DeleteResult",
    "OpResult",
    "SetResult",
    "TransactionFailed",
    "WatchedEvent",
    "digest_acl",
    "digest_id",
]


class ConnectionState(enum.Enum):
    """The state of a client's session and connection (Curator's model).

    ``CONNECTED`` -- the session was just established (once per client).
    ``SUSPENDED`` -- the connection was lost; the client is reconnecting and the session
    may still be alive. Operations wait; ephemeral nodes still exist on the servers, but
    what the client holds (a lock, leadership) should be treated as uncertain.
    ``RECONNECTED`` -- the same session is back on a connection; watches were re-set.
    ``LOST`` -- the session expired (the server said so, or the client was out of contact
    for the whole session timeout): ephemeral nodes and watches are gone. Final: the client
    does not create a new session by itself; open a new client.
    ``CLOSED`` -- the client was closed. Final.
    """

    CONNECTED = "connected"
    SUSPENDED = "suspended"
    RECONNECTED = "reconnected"
    LOST = "lost"
    CLOSED = "closed"

    @property
    def is_connected(self) -> bool:
        """CONNECTED or RECONNECTED."""
        return self in (ConnectionState.CONNECTED, ConnectionState.RECONNECTED)

    @property
    def is_final(self) -> bool:
        """LOST or CLOSED: the client will never be connected again."""
        return self in (ConnectionState.LOST, ConnectionState.CLOSED)


@dataclass(frozen=True, slots=True)
class WatchedEvent:
    """A watch notification.

    Attributes:
        type: what happened (:class:`~coord.protocol.EventType`). ``EventType.NONE`` is
            only yielded by :meth:`~coord.Client.watch_tree` after a reconnect, when
            changes below the path may have been made while the client was away: re-read
            what you cache.
        path: the node concerned, relative to the client's chroot.
        zxid: the zxid of the change when the server tells it (ZooKeeper 3.6+ and coord
            do for live events), else -1.
        state: the connection state the server reported with the event.
    """

    type: EventType
    path: str
    zxid: int = -1
    state: KeeperState = KeeperState.SYNC_CONNECTED


class ClientClosedError(CoordError):
    """The client is closed (raised by the SDK for operations after ``close``)."""


# --- transaction results -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateResult:
    """A create in a transaction: the created path (sequence suffix included) and Stat.

    ``stat`` is ``None`` for persistent and ephemeral nodes: ZooKeeper's multi answers
    creates with the path only, and containers and TTL nodes with their Stat too.
    """

    path: str
    stat: Stat | None


@dataclass(frozen=True, slots=True)
class SetResult:
    """A set in a transaction: the node's new Stat."""

    stat: Stat


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """A delete in a transaction."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A version check in a transaction."""


OpResult: TypeAlias = CreateResult | SetResult | DeleteResult | CheckResult


class TransactionFailed(CoordError):
    """A transaction was not applied: one op failed, so none took effect.

    Raised by :meth:`~coord.client.Transaction.commit`.

    Attributes:
        results: one entry per op, in order: the :class:`CoordError` of the op that failed
            (e.g. :class:`~coord.BadVersionError`), :class:`~coord.RolledBackError` for ops
            before it, :class:`~coord.RuntimeInconsistencyError` for ops after it.
        index: the position of the op that failed.
        error: that op's error (also the ``__cause__``).
    """

    def __init__(self, results: tuple[CoordError, ...], index: int) -> None:
        self.results = results
        self.index = index
        self.error = results[index]
        super().__init__(
            f"transaction failed at op {index}: {type(self.error).__name__}",
            path=self.error.path,
        )


# --- ACLs ------------------------------------------------------------------------------------

ANYONE_ID_UNSAFE = Id("world", "anyone")
#: The ``auth`` scheme's id: "every identity the creating session authenticated as".
AUTH_IDS = Id("auth", "")
#: Everyone may do everything (ZooKeeper's ``OPEN_ACL_UNSAFE``; the default ACL).
OPEN_ACL_UNSAFE: tuple[ACL, ...] = (ACL(Perm.ALL, ANYONE_ID_UNSAFE),)
#: Everything for the creator's authenticated identities (needs credentials).
CREATOR_ALL_ACL: tuple[ACL, ...] = (ACL(Perm.ALL, AUTH_IDS),)
#: Everyone may read.
READ_ACL_UNSAFE: tuple[ACL, ...] = (ACL(Perm.READ, ANYONE_ID_UNSAFE),)


def digest_id(user: str, password: str) -> Id:
    """The ``digest`` scheme id of ``user:password``: ``user:base64(sha1(user:password))``.

    Use it in ACLs; authenticate with ``add_auth("digest", b"user:password")``.
    """
    digest = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return Id("digest", f"{user}:{base64.b64encode(digest).decode()}")


def digest_acl(user: str, password: str, perms: int = Perm.ALL) -> ACL:
    """An ACL entry granting ``perms`` to the digest identity ``user:password``."""
    return ACL(int(perms), digest_id(user, password))

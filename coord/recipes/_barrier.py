"""Barrier and DoubleBarrier: wait until a node is gone; enter and leave together.

Theory of operation
-------------------
**Barrier** (ZooKeeper recipe "Barriers"): the barrier is up while its node exists.
``wait`` sets an ``exists`` watch; if the node exists it waits for the watch and checks
again. One watch per waiter, all fired by the one deletion that lowers the barrier.

**DoubleBarrier** (ZooKeeper recipe "Double Barriers"): ``parties`` members enter and
leave together. Entering: set an ``exists`` watch on ``<path>/ready``, create the
member's ephemeral node ``<path>/<identifier>``, list the members; the one that sees
``parties`` of them creates ``ready``; every other waits for the watch on ``ready`` (it
was set *before* the member's node was created, so the creation cannot be missed).
Leaving: list the members (sorted by name); the lowest waits for the highest to go;
every other deletes its node and waits for the lowest to go; then list again. The last
member deletes ``ready`` and then its node, so ``ready`` is gone when anyone returns
from leaving and the path can be used for the next round (entrants of the next round
must not arrive before the last member of this round left).

Failure semantics
-----------------
* disconnect: waits go on across the suspension; watches are re-set by the client on
  reconnection, so the deletion of the barrier node or the creation of ``ready`` is not
  missed.
* reconnect: nothing happens (same session, the member node is intact).
* session expiry: the member node is deleted by the server. While entering or leaving,
  the next check raises ``SessionExpiredError``. Inside the body nothing is cancelled
  (a barrier is not held): the other members see one member fewer, and those leaving
  stop waiting for it. Expiry while *entering* can leave the others waiting for a
  member that will not come: bound the wait with ``anyio.fail_after``.
* cancellation of ``enter``/``leave`` (``anyio.fail_after``): the member node is deleted
  (shielded, bounded by the session timeout).

With a :class:`~coord.client.SyncClient`: ``with DoubleBarrier(sync, path, n):`` (the
same semantics, the body in the caller's thread); Barrier's methods through ``sync.run``
(``sync.run(barrier.wait, timeout=30)``).
"""

from __future__ import annotations

import contextlib
import uuid
from types import TracebackType
from typing import Self

import anyio

from coord.client import Client, EventType, SyncClient
from coord.client._paths import join_path
from coord.protocol import NodeExistsError, NoNodeError, SessionExpiredError
from coord.recipes._contender import async_client

__all__ = ["Barrier", "DoubleBarrier"]

_READY = "ready"


class Barrier:
    """A barrier that is up while its node exists.

    ``await barrier.create()`` raises it, ``await barrier.remove()`` lowers it, and
    ``await barrier.wait()`` returns once it is down (at once if it is down).

    Args:
        client: an async :class:`~coord.client.Client` (with a ``SyncClient``, call the
            methods through ``sync_client.run``).
        path: the barrier node.
    """

    def __init__(self, client: Client | SyncClient, path: str) -> None:
        self._client = async_client(client)
        self.path = path

    def __repr__(self) -> str:
        return f"<Barrier {self.path!r}>"

    async def create(self) -> bool:
        """Raise the barrier (create its node and missing ancestors).

        Returns:
            False if it was already up.
        """
        try:
            await self._client.create(self.path, makepath=True)
        except NodeExistsError:
            return False
        return True

    async def remove(self) -> bool:
        """Lower the barrier, releasing every waiter.

        Returns:
            False if it was already down.
        """
        try:
            await self._client.delete(self.path)
        except NoNodeError:
            return False
        return True

    async def wait(self) -> None:
        """Wait until the barrier is down (its node does not exist).

        Raises:
            SessionExpiredError: the session was lost while waiting.
        """
        while True:
            stat, watch = await self._client.exists(self.path, watch=True)
            if stat is None:
                return
            await watch.wait()  # deleted, or a session event: check again


class DoubleBarrier:
    """``parties`` members enter together and leave together.

    ``async with DoubleBarrier(client, "/barriers/step", 5):`` -- entering waits until 5
    members have joined, leaving waits until all of them have left. One instance is one
    member.  With a :class:`~coord.client.SyncClient` use ``with``.

    Args:
        client: an async :class:`~coord.client.Client` or a ``SyncClient``.
        path: the barrier's node (created with its ancestors).
        parties: how many members enter together.
        identifier: the member node's name (default: a random UUID); unique per member.
        data: stored in the member node.
    """

    def __init__(
        self,
        client: Client | SyncClient,
        path: str,
        parties: int,
        *,
        identifier: str | None = None,
        data: bytes = b"",
    ) -> None:
        if parties < 1:
            raise ValueError("parties must be at least 1")
        self._sync = client if isinstance(client, SyncClient) else None
        self._client = async_client(client)
        self.path = path
        self.parties = parties
        self.identifier = identifier or uuid.uuid4().hex
        if self.identifier == _READY or "/" in self.identifier:
            raise ValueError(f"invalid identifier {self.identifier!r}")
        self.data = data
        self.participating = False

    def __repr__(self) -> str:
        return f"<DoubleBarrier {self.path!r} {self.identifier!r} of {self.parties}>"

    @property
    def _node(self) -> str:
        return join_path(self.path, self.identifier)

    async def _members(self) -> list[str]:
        return sorted(n for n in await self._client.children(self.path) if n != _READY)

    async def enter(self) -> None:
        """Join, and wait until ``parties`` members have joined.

        Raises:
            SessionExpiredError: the session was lost meanwhile.
            NodeExistsError: a member with this identifier is already in.
        """
        ready = join_path(self.path, _READY)
        try:
            await self._client.ensure_path(self.path)
            stat, watch = await self._client.exists(ready, watch=True)
            await self._client.create(self._node, self.data, ephemeral=True)
            self.participating = True
            if stat is not None:
                return
            if len(await self._members()) >= self.parties:
                with contextlib.suppress(NodeExistsError):
                    await self._client.create(ready)
                return
            event = await watch.wait()
            if event.type is EventType.NONE:
                await self._check_member()
        except BaseException:
            await self._abandon()
            raise

    async def _check_member(self) -> None:
        if await self._client.exists(self._node) is None:
            raise SessionExpiredError("the member node is gone", path=self._node)

    async def leave(self) -> None:
        """Leave, and wait until every member has left."""
        try:
            await self._leave()
        except BaseException:
            await self._abandon()
            raise
        self.participating = False

    async def _leave(self) -> None:
        me = self.identifier
        while True:
            members = await self._members()
            if not members:
                return
            if members == [me]:
                with contextlib.suppress(NoNodeError):
                    await self._client.delete(join_path(self.path, _READY))
                with contextlib.suppress(NoNodeError):
                    await self._client.delete(self._node)
                return
            if me == members[0]:
                watched = members[-1]
            else:
                if me in members:
                    with contextlib.suppress(NoNodeError):
                        await self._client.delete(self._node)
                watched = members[0]
            stat, watch = await self._client.exists(join_path(self.path, watched), watch=True)
            if stat is not None:
                await watch.wait()

    async def _abandon(self) -> None:
        if not self.participating:
            return
        self.participating = False
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(self._client.session_timeout),
            contextlib.suppress(Exception),
        ):
            await self._client.delete(self._node)

    async def __aenter__(self) -> Self:
        await self.enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, Exception):
            await self._abandon()  # cancelled: do not wait for the others
            return
        await self.leave()

    def __enter__(self) -> Self:
        self._require_sync().run(self.enter)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._require_sync().run(self.leave)

    def _require_sync(self) -> SyncClient:
        if self._sync is None:
            raise TypeError("use 'async with' with an async client ('with' needs a SyncClient)")
        return self._sync

"""Lock: a fair, herd-free exclusive lock whose holding is a scope.

Theory of operation
-------------------
The ZooKeeper "Locks" recipe: each contender creates a protected ephemeral-sequential
node under the lock path; the lowest sequence holds the lock; every other contender
watches only its immediate predecessor (:mod:`coord.recipes._ordering`). Arrival order is
the order of service (fair).

The fencing token is the holder node's ``czxid``: the zxid of the transaction that created
it. Zxids are global and strictly increasing, and successive holders' nodes were created
in the order they hold the lock, so tokens strictly increase across holders -- also when
the lock's parent (a container node) was deleted and re-created meanwhile, which would
restart a sequence number at 0. Pass it to the external resource, which rejects requests
carrying a token smaller than the largest it has seen.

Failure semantics (see :mod:`coord.recipes._contender` for the reasoning):

* disconnect (``SUSPENDED``) while holding: the body keeps running until the safe bound
  (last contact + 2/3 of the session timeout); past it, the body is cancelled and
  ``LockLost`` raised, even if the connection then comes back.
* reconnect before the bound: nothing happens; the node and the hold are intact.
* session expiry (``LOST``) or the client closed while holding: the body is cancelled and
  ``LockLost`` raised. Another contender gets the lock only once the servers deleted our
  node, i.e. after the expiry.
* while waiting: operations wait for a reconnection; if the session is lost,
  ``acquire`` raises ``SessionExpiredError``.
* cancelled acquisition (``anyio.fail_after`` ...): the node is found by its protection
  prefix and deleted, shielded; if the connection is suspended at that moment the cleanup
  waits for the reconnection for at most the session timeout, after which the session
  has expired and the servers deleted the node.

With a :class:`~coord.client.SyncClient`: ``with Lock(sync, path) as lock:``; the body
runs in the caller's thread and cannot be cancelled, so it should check ``lock.is_held``;
a loss is reported as ``LockLost`` when the body ends.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

import anyio

from coord.client import Client, SyncClient
from coord.recipes._contender import Contender, Guard, async_client
from coord.recipes._errors import LockLost
from coord.recipes._ordering import Kind

__all__ = ["Lock"]

_PREFIX = "lock-"


class Lock:
    """A fair exclusive lock: ``async with Lock(client, "/locks/db") as lock: ...``.

    Not re-entrant; one instance is one contender (ownership belongs to the instance,
    not to a task or thread). With a :class:`~coord.client.SyncClient`, use
    ``with Lock(sync_client, path):``; the body runs in the caller's thread and cannot
    be interrupted, so a loss is reported as ``LockLost`` when the body ends.

    Args:
        client: an async :class:`~coord.client.Client` (or a ``SyncClient`` for ``with``).
        path: the lock node; created (as a container when the server supports it) with
            its missing ancestors.
        identifier: data stored in the contender node (who holds it, for operators).
    """

    def __init__(self, client: Client | SyncClient, path: str, *, identifier: bytes = b"") -> None:
        self._sync = client if isinstance(client, SyncClient) else None
        self._client = async_client(client)
        self.path = path
        self.identifier = identifier
        self._contender: Contender | None = None
        self._guard: Guard | None = None
        self._scope: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        state = "held" if self.is_held else "not held"
        return f"<Lock {self.path!r} {state}>"

    @property
    def is_held(self) -> bool:
        """Whether this instance holds the lock (and has not detected its loss)."""
        return self._guard is not None and not self._guard.lost

    @property
    def node(self) -> str | None:
        """The path of this contender's node while it holds the lock."""
        return self._contender.node if self._guard is not None and self._contender else None

    @property
    def fencing_token(self) -> int:
        """The holder node's czxid: strictly increasing across successive holders.

        Raises:
            RuntimeError: the lock is not held.
        """
        if self._guard is None or self._contender is None:
            raise RuntimeError("the lock is not held")
        return self._contender.czxid

    def _new_contender(self) -> Contender:
        if self._contender is not None:
            raise RuntimeError("this Lock instance already holds or is acquiring the lock")
        self._contender = Contender(
            self._client, self.path, _PREFIX, self.identifier, Kind.EXCLUSIVE
        )
        return self._contender

    def _held(self, contender: Contender) -> None:
        assert contender.node is not None
        guard = Guard(self._client)
        guard.start(contender.node)
        self._guard = guard

    async def _guard_node(self, contender: Contender) -> None:
        assert contender.node is not None and self._guard is not None
        stat, watch = await self._client.exists(contender.node, watch=True)
        if stat is None:
            self._guard.watch_node_gone()
        else:
            watch.add_callback(self._guard.watch_node)

    async def acquire(self) -> None:
        """Wait until this instance holds the lock.

        Raises:
            SessionExpiredError: the session was lost while waiting.
            RuntimeError: this instance already holds the lock.
        """
        contender = self._new_contender()
        try:
            await contender.create()
            await contender.wait_turn()
            self._held(contender)
            await self._guard_node(contender)
        except BaseException:
            await self._abandon()
            raise

    async def try_acquire(self) -> bool:
        """Take the lock if it is free, without waiting.

        Returns:
            Whether the lock is now held (if not, no node is left behind).
        """
        contender = self._new_contender()
        try:
            await contender.create()
            decision = await contender.check()
            if not decision.holds:
                await self._abandon()
                return False
            self._held(contender)
            await self._guard_node(contender)
        except BaseException:
            await self._abandon()
            raise
        return True

    async def _abandon(self) -> None:
        contender, self._contender = self._contender, None
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.stop()
        if contender is not None:
            await contender.remove()

    async def release(self) -> bool:
        """Release the lock (delete the node; shielded from cancellation).

        Returns:
            Whether the lock was still safely held until now (False: it had been lost).

        Raises:
            CoordError: the node could not be deleted for another reason than the session
                being gone; the lock is then still held and ``release`` may be retried.
        """
        contender, guard = self._contender, self._guard
        if contender is None:
            return False
        lost = False
        if guard is not None:
            guard.stop()
            lost = guard.lost
        await contender.remove(strict=True)
        self._contender = self._guard = None
        return not lost

    async def __aenter__(self) -> Self:
        await self.acquire()
        assert self._guard is not None
        scope = anyio.CancelScope()
        scope.__enter__()
        self._scope = scope
        self._guard.attach(scope)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        scope, self._scope = self._scope, None
        assert scope is not None
        swallowed = bool(scope.__exit__(exc_type, exc, tb))
        guard = self._guard
        try:
            held = await self.release()
        except Exception:
            if not scope.cancel_called:
                raise
            held = False
        reason = guard.reason if guard is not None else ""
        lost = not held or scope.cancel_called
        if lost and (exc is None or swallowed or not _is_cancellation(exc)):
            raise LockLost(f"lock {self.path} lost: {reason or 'unknown reason'}") from exc
        return swallowed

    # --- the sync facade ------------------------------------------------------------------

    def __enter__(self) -> Self:
        sync = self._require_sync()
        sync.run(self.acquire)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sync = self._require_sync()
        guard = self._guard
        held = sync.run(self.release)
        reason = guard.reason if guard is not None else ""
        if not held:
            raise LockLost(f"lock {self.path} lost: {reason or 'unknown reason'}") from exc

    def _require_sync(self) -> SyncClient:
        if self._sync is None:
            raise TypeError("use 'async with' with an async client ('with' needs a SyncClient)")
        return self._sync


def _is_cancellation(exc: BaseException) -> bool:
    return isinstance(exc, anyio.get_cancelled_exc_class())

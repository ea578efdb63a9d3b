"""Lease: hold a named resource for at most ``duration`` seconds.

Theory of operation
-------------------
A :class:`~coord.recipes.Lock` plus a deadline: once the lock is held, the body runs in a
cancel scope whose deadline is ``acquired_at + duration`` (anyio's clock, so no task and
no timer thread). :meth:`Lease.wait_expiring` sleeps until ``deadline - margin``: the
notification before the end. At the deadline the body is cancelled, the node deleted
(shielded, as Lock's release) and :class:`LeaseExpired` raised. The hold is also bounded
by the session exactly as Lock's: suspension past the safe bound, session expiry or the
node's deletion cancel the body and raise ``LockLost`` -- whichever comes first.

Failure semantics (those of :class:`~coord.recipes.Lock`): a disconnect shorter than the
safe bound (last contact + 2/3 of the session timeout) changes nothing; past it, or on
session expiry, the body is cancelled and ``LockLost`` raised; a reconnection after the
bound does not restore the lease. Others acquire only once the node is deleted: at the
deadline, at the end of the body, or when the servers expire the session.

With a :class:`~coord.client.SyncClient`, ``with Lease(sync, path, duration=30) as
lease:`` runs the body in the caller's thread, which cannot be interrupted: the body
should watch :attr:`Lease.remaining`; when it ends, ``LockLost`` is raised if the lock was
lost meanwhile, else :class:`LeaseExpired` if it outlived the deadline (the node is
deleted when the body ends, so others wait until then).

The duration is measured on the holder's clock from the moment it learnt it holds; others
see the node gone when it is deleted (or, if the holder vanished, when its session
expires), so the bound is on the holder's own view. For an external resource, pass
``lease.fencing_token`` along, as with Lock.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Self

import anyio

from coord.client import Client, SyncClient
from coord.protocol import CoordError
from coord.recipes._errors import LockLost
from coord.recipes._facade import require_sync, sync_client
from coord.recipes._lock import Lock

__all__ = ["Lease", "LeaseExpired"]


class LeaseExpired(CoordError):
    """The lease's duration ran out while its body was running.

    Raised by ``async with Lease(...)`` after the body was cancelled at the deadline and
    the lease node deleted.
    """


class Lease:
    """``async with Lease(client, "/leases/job", duration=30) as lease:`` -- at most 30 s.

    Args:
        client: an async Client, or a SyncClient for ``with``.
        path: the lease's lock node.
        duration: the longest hold, in seconds, from acquisition.
        identifier: data stored in the lock node.

    Raises:
        ValueError: ``duration`` is not positive.
    """

    def __init__(
        self, client: Client | SyncClient, path: str, duration: float, *, identifier: bytes = b""
    ) -> None:
        if not duration > 0:
            raise ValueError("duration must be positive")
        self.duration = duration
        self._sync = sync_client(client)
        self.lock = Lock(client, path, identifier=identifier)
        self.deadline = math.inf
        self._scope: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        return f"<Lease {self.lock.path!r} duration={self.duration}>"

    def _now(self) -> float:
        """anyio's clock (the event loop's, when called from a SyncClient's caller)."""
        if self._sync is not None:
            try:
                return anyio.current_time()
            except Exception:  # not in an event loop: the caller's thread
                return self._sync.run(_current_time)
        return anyio.current_time()

    @property
    def is_held(self) -> bool:
        """Whether the lease is held (not yet ended, lost or expired)."""
        return self.lock.is_held and self._now() < self.deadline

    @property
    def fencing_token(self) -> int:
        """The lock's fencing token (see :attr:`Lock.fencing_token`)."""
        return self.lock.fencing_token

    @property
    def remaining(self) -> float:
        """Seconds left until the deadline (``inf`` before acquisition)."""
        return max(0.0, self.deadline - self._now())

    async def wait_expiring(self, margin: float = 0.0) -> None:
        """Wait until ``margin`` seconds before the deadline (the notification).

        Raises:
            RuntimeError: the lease is not held.
        """
        if self.deadline == math.inf:
            raise RuntimeError("the lease is not held")
        await anyio.sleep_until(self.deadline - margin)

    async def __aenter__(self) -> Self:
        await self.lock.__aenter__()
        self.deadline = anyio.current_time() + self.duration
        scope = anyio.CancelScope(deadline=self.deadline)
        scope.__enter__()
        self._scope = scope
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
        expired = scope.cancelled_caught
        self.deadline = math.inf
        if swallowed:
            await self.lock.__aexit__(None, None, None)
        else:
            if await self.lock.__aexit__(exc_type, exc, tb):
                return True
        if expired:
            raise LeaseExpired(f"lease {self.lock.path} expired after {self.duration} s")
        return swallowed

    # --- the sync facade ------------------------------------------------------------------

    def __enter__(self) -> Self:
        sync = require_sync(self._sync)

        async def acquire() -> None:
            await self.lock.acquire()
            self.deadline = anyio.current_time() + self.duration

        sync.run(acquire)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sync = require_sync(self._sync)
        guard = self.lock._guard
        held = sync.run(self.lock.release)
        expired = sync.run(_current_time) >= self.deadline
        self.deadline = math.inf
        if not held:
            reason = (guard.reason if guard is not None else "") or "unknown reason"
            raise LockLost(f"lease {self.lock.path} lost: {reason}") from exc
        if expired and exc is None:
            raise LeaseExpired(f"lease {self.lock.path} outlived its {self.duration} s")


async def _current_time() -> float:
    return anyio.current_time()

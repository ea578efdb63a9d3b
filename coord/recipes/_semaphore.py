"""Semaphore: at most ``leases`` holders at once, fair and work-conserving.

Theory of operation
-------------------
Contenders are the protected ephemeral-sequential nodes of :mod:`coord.recipes._ordering`;
:func:`~coord.recipes._ordering.decide` with ``Kind.SEMAPHORE`` says whether one holds a
lease (fewer than ``leases`` contenders precede it). Leases may be released in any order,
so "the node ``leases`` places ahead" (the pure function's watch) is not enough to keep
every lease busy. Instead (:func:`semaphore_watch`):

* the **first waiter** (exactly ``leases`` contenders ahead) watches the *children list*:
  any deletion ahead of it -- in any order -- wakes it, and it enters at once;
* every **later waiter** watches its *immediate predecessor* with ``exists``, which fires
  on deletion *and* on a data change. A contender sets its node's data when it starts to
  hold, so when the first waiter enters, its successor wakes and becomes the first waiter.
  If the predecessor already holds when the watch is set (data version > 0), the waiter
  re-evaluates at once.

A release wakes the first waiter only (plus the one that takes its place when it enters):
no herd, and no lease idles while someone waits.

Failure semantics: a lease is a :class:`~coord.recipes.Lock` hold underneath. Disconnect
(``SUSPENDED``): the body runs on until the safe bound (last contact + 2/3 of the session
timeout), then is cancelled and ``LockLost`` raised. Reconnect before it: nothing happens.
Session expiry or client closed: body cancelled, ``LockLost``; the lease frees up for
others when the servers delete the node (at expiry). A cancelled acquisition leaves no
node behind. Never more than ``leases`` holders that believe they hold after the session
timeout has passed. With a :class:`~coord.client.SyncClient`: ``with Semaphore(sync, path,
leases=n):``, as ``with Lock(...)`` (a loss is reported when the body ends).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from coord.client import Client, SyncClient
from coord.client._paths import join_path
from coord.protocol import SessionExpiredError
from coord.recipes._contender import Contender
from coord.recipes._lock import Lock
from coord.recipes._ordering import Decision, Kind, decide, sort_contenders

__all__ = ["HELD_DATA_PREFIX", "Semaphore", "SemaphoreWatch", "semaphore_watch"]

HELD_DATA_PREFIX = b"\x00held\x00"
"""Prefix of a contender node's data once it holds a lease (wakes its successor)."""
_PREFIX = "lease-"


@dataclass(frozen=True, slots=True)
class SemaphoreWatch:
    """The answer of :func:`semaphore_watch`.

    Attributes:
        holds: the contender holds a lease.
        children: not holding, and the first waiter: watch the children list.
        node: not holding, not first: watch this node (the immediate predecessor) with
            ``exists`` (deletion or data change).
    """

    holds: bool
    children: bool = False
    node: str | None = None


def semaphore_watch(children: Iterable[str], mine: str, leases: int) -> SemaphoreWatch:
    """Whether ``mine`` holds one of ``leases`` leases, and if not what to watch.

    Raises:
        ValueError: ``mine`` is not among the contenders, or ``leases`` < 1.
    """
    names = list(children)
    decision = decide(names, mine, Kind.SEMAPHORE, leases=leases)
    if decision.holds:
        return SemaphoreWatch(True)
    if decision.position == leases:
        return SemaphoreWatch(False, children=True)
    return SemaphoreWatch(False, node=sort_contenders(names)[decision.position - 1])


class _SemaphoreContender(Contender):
    async def _watch(self) -> SemaphoreWatch:
        children = await self.client.children(self.path)
        try:
            return semaphore_watch(children, self.name, self.leases)
        except ValueError:
            raise SessionExpiredError("the contender node is gone", path=self.node) from None

    async def check(self) -> Decision:
        answer = await self._watch()
        if answer.holds:
            await self._mark()
        return Decision(answer.holds, answer.node, 0)

    async def _mark(self) -> None:
        assert self.node is not None
        await self.client.set(self.node, HELD_DATA_PREFIX + self.data)

    async def wait_turn(self) -> None:
        while True:
            answer = await self._watch()
            if answer.holds:
                await self._mark()
                return
            if answer.children:
                names, changed = await self.client.children(self.path, watch=True)
                try:
                    still = semaphore_watch(names, self.name, self.leases)
                except ValueError:
                    continue  # _watch raises on the next round
                if not still.holds and still.children:
                    await changed.wait()
                continue
            assert answer.node is not None
            stat, watch = await self.client.exists(join_path(self.path, answer.node), watch=True)
            if stat is not None and stat.version == 0:
                await watch.wait()


class Semaphore(Lock):
    """At most ``leases`` holders at once: ``async with Semaphore(client, path, leases=3):``.

    A fair (first come, first served), work-conserving counting semaphore. Each instance
    is one contender (like :class:`~coord.recipes.Lock`, whose API it shares: ``acquire``,
    ``try_acquire``, ``release``, ``is_held``, ``with`` through a SyncClient). Losing the
    lease while holding raises ``LockLost`` (see the module docstring for the failure
    semantics). All contenders of one path must agree on ``leases``.

    Args:
        client: an async Client, or a SyncClient for ``with``.
        path: the semaphore node (created as a container when supported).
        leases: how many may hold at once (at least 1).
        identifier: data stored in the contender node.

    Raises:
        ValueError: ``leases`` < 1.
    """

    def __init__(
        self, client: Client | SyncClient, path: str, *, leases: int, identifier: bytes = b""
    ) -> None:
        if leases < 1:
            raise ValueError("leases must be at least 1")
        super().__init__(client, path, identifier=identifier)
        self.leases = leases

    def __repr__(self) -> str:
        state = "holding" if self.is_held else "not holding"
        return f"<Semaphore {self.path!r} leases={self.leases} {state}>"

    def _new_contender(self) -> Contender:
        if self._contender is not None:
            raise RuntimeError("this Semaphore instance already holds or is acquiring a lease")
        self._contender = _SemaphoreContender(
            self._client, self.path, _PREFIX, self.identifier, Kind.SEMAPHORE, leases=self.leases
        )
        return self._contender

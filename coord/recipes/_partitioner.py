"""Partitioner: share a set of items among the members of a group (kazoo's ``SetPartitioner``).

Theory of operation
-------------------
Each participant joins a :class:`~coord.recipes.Group` (an ephemeral node
``<path>/<identifier>``). The assignment is a pure function of the sorted member list and
the sorted items, :func:`partition`: the *i*-th item (in sorted order) goes to the
``i mod n``-th member (in sorted order) -- kazoo's default partition function. Every
member computes the same table from the same children list, so no coordination beyond
the membership is needed: the union of the assignments is all items and they are
pairwise disjoint.

``async for assignment in partitioner`` yields this member's items for the current
membership, then a new set after every membership change that changes it. It watches the
group's children with one-shot watches (re-set on every read; they survive reconnects).

Rebalancing is not a barrier: when membership changes, members learn it at slightly
different moments, so for the short time between two members' notifications an item may
be in the old owner's last set and the new owner's new set. Work that must never run
twice at once should also take a :class:`~coord.recipes.Lock` per item (or use fencing
tokens); the partitioner's guarantee is about sessions, below.

Failure semantics:

* disconnect (``SUSPENDED``): the current assignment is kept until the *safe bound*
  (last contact + 2/3 of the session timeout, as for :class:`~coord.recipes.Lock`); past
  it, an empty assignment is yielded (this member releases everything), because by the
  time the servers may expire the session and give its items to others, this member
  must have stopped. So two members never both believe they own an item after the
  session timeout has passed.
* reconnect: the membership is read again and the assignment yielded again (also when it
  is the same as before a release past the safe bound).
* session expiry (``LOST``) or client closed: an empty assignment is yielded if the last
  one was not empty, then iteration raises :class:`~coord.SessionExpiredError` (closed:
  ends). Connect again and create a new Partitioner.

With a :class:`~coord.client.SyncClient`: ``with Partitioner(sync, ...) as p: for mine in
p:`` (blocking; :meth:`Partitioner.next_assignment` takes a ``timeout``), same semantics.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import anyio

from coord.client import Client, ClientClosedError, ConnectionState, SyncClient, WatchedEvent
from coord.protocol import NoNodeError, SessionExpiredError
from coord.recipes._contender import SUSPENDED_FRACTION, async_client
from coord.recipes._facade import SyncContext, SyncIterator, sync_client
from coord.recipes._group import Group, Membership

__all__ = ["Partitioner", "partition"]

T = TypeVar("T", bound=Hashable)


def partition(
    members: Iterable[str], items: Iterable[T], *, key: Any = repr
) -> dict[str, frozenset[T]]:
    """Share ``items`` among ``members``: a pure, deterministic function of both sets.

    Items are sorted by ``key(item)`` and members by name; item *i* goes to member
    ``i mod len(members)``. Every member gets an entry (possibly empty).

    Args:
        members: the member identifiers (order does not matter; duplicates are ignored).
        items: the items (order does not matter; duplicates are ignored).
        key: the sort key of items; must be injective on ``items`` (default ``repr``).

    Returns:
        member -> its items; the values' union is ``set(items)``, pairwise disjoint.

    Raises:
        ValueError: two distinct items have the same key (the order would depend on
            iteration order, so members could disagree).
    """
    ordered_members = sorted(set(members))
    unique = set(items)
    ordered_items = sorted(unique, key=key)
    keys = [key(item) for item in ordered_items]
    if len(set(keys)) != len(keys):
        raise ValueError("two distinct items have the same sort key")
    result: dict[str, frozenset[T]] = {}
    n = len(ordered_members)
    for index, member in enumerate(ordered_members):
        result[member] = frozenset(ordered_items[index::n])
    return result


class Partitioner(SyncContext, SyncIterator, Generic[T]):
    """This member's share of ``items``, rebalanced as members of ``path`` come and go.

    ::

        async with Partitioner(client, "/partitions/jobs", jobs, identifier="w1") as p:
            async for mine in p:
                restart_workers(mine)

    Use it as an async context manager (join on entry, leave on exit); iterating without
    one joins on the first ``__anext__`` and leaves on :meth:`aclose`.

    Args:
        client: an async :class:`~coord.client.Client`, or a SyncClient for ``with`` and
            blocking iteration.
        path: the group node (created, persistent, on the first join).
        items: the items to share; every member must pass the same set.
        identifier: this member's unique id in the group (a node name: no ``/``).
        key: the items' sort key (see :func:`partition`).
    """

    def __init__(
        self,
        client: Client | SyncClient,
        path: str,
        items: Iterable[T],
        *,
        identifier: str,
        key: Any = repr,
    ) -> None:
        self._sync = sync_client(client)
        self._client = async_client(client)
        self.path = path
        self.items: frozenset[T] = frozenset(items)
        self.identifier = identifier
        self._key = key
        partition([identifier], self.items, key=key)  # validate the keys early
        self._group = Group(self._client, path)
        self._membership: Membership | None = None
        self._wake: anyio.Event | None = None
        self._stale = True  # the children must be read (again)
        self._final: ConnectionState | None = None
        self._last: frozenset[T] | None = None
        self._members: list[str] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"<Partitioner {self.path!r} {self.identifier!r}>"

    @property
    def assignment(self) -> frozenset[T]:
        """The assignment last yielded (empty before the first)."""
        return self._last or frozenset()

    @property
    def members(self) -> list[str]:
        """The sorted member list the last assignment was computed from."""
        return list(self._members)

    # --- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._join()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _join(self) -> None:
        if self._membership is not None:
            return
        if self._closed:
            raise RuntimeError("this Partitioner was closed")
        self._wake = anyio.Event()
        self._client.add_listener(self._on_state)
        membership = self._group.join(self.identifier)
        try:
            await membership.__aenter__()
        except BaseException:
            self._client.remove_listener(self._on_state)
            raise
        self._membership = membership

    async def aclose(self) -> None:
        """Leave the group (shielded); iteration ends."""
        self._closed = True
        self._client.remove_listener(self._on_state)
        membership, self._membership = self._membership, None
        if membership is not None:
            await membership.__aexit__(None, None, None)

    # --- events -----------------------------------------------------------------------------

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _on_watch(self, event: WatchedEvent) -> None:
        self._stale = True
        self._poke()

    def _on_state(self, state: ConnectionState) -> None:
        if state.is_final:
            self._final = state
        elif state.is_connected:
            self._stale = True  # re-read and yield again (after a release, the same set)
        self._poke()

    def _safe_deadline(self) -> float:
        """Until when the current assignment may be trusted: last contact + 2/3 timeout.

        Computed from the last contact rather than from the ``SUSPENDED`` event, so a
        silent partition is caught even before the client notices it.
        """
        if self._final is not None:
            return -math.inf
        timeout = self._client.session_timeout
        return self._client.last_contact + SUSPENDED_FRACTION * timeout

    # --- iteration --------------------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    def __next__(self) -> frozenset[T]:
        return self.next_assignment()

    def next_assignment(self, timeout: float | None = None) -> frozenset[T]:
        """The next assignment, blocking (SyncClient only).

        Raises:
            StopIteration: closed.
            SessionExpiredError: the session was lost (after an empty assignment).
            TimeoutError: ``timeout`` seconds passed first.
        """
        result: frozenset[T] = self._next_blocking(timeout)
        return result

    async def __anext__(self) -> frozenset[T]:
        if self._closed:
            raise StopAsyncIteration
        await self._join()
        while True:
            now = anyio.current_time()
            if self._safe_deadline() <= now:
                if self._last:  # release first
                    self._stale = True  # once safe again, read and yield again
                    return self._emit(frozenset(), [])
                if self._final is ConnectionState.LOST:
                    raise SessionExpiredError("the partitioner's session was lost", path=self.path)
                if self._final is not None:
                    raise StopAsyncIteration
                # Released; wait for the reconnection (or re-check the last contact).
                await self._wait_event(now + self._client.session_timeout / 3)
                continue
            if self._stale:
                members = await self._read_members()
                if members is None:
                    continue  # the read gave way to the safe bound or a final state
                mine = partition(members, self.items, key=self._key).get(
                    self.identifier, frozenset()
                )
                if mine != self._last:
                    return self._emit(mine, members)
                self._members = members
                continue
            await self._wait_event(self._safe_deadline())

    def _emit(self, assignment: frozenset[T], members: Sequence[str]) -> frozenset[T]:
        self._last = assignment
        self._members = sorted(members)
        return assignment

    async def _wait_event(self, deadline: float) -> None:
        assert self._wake is not None
        with anyio.CancelScope(deadline=deadline):
            await self._wake.wait()
        self._wake = anyio.Event()

    async def _read_members(self) -> list[str] | None:
        """The member list with a watch set, or None if the read gave way to the bound."""
        self._stale = False
        with anyio.CancelScope(deadline=self._safe_deadline()) as scope:
            try:
                names, watch = await self._client.children(self.path, watch=True)
            except NoNodeError:
                names = []
                stat, watch = await self._client.exists(self.path, watch=True)
                if stat is not None:
                    self._stale = True  # created meanwhile
            except (SessionExpiredError, ClientClosedError):
                self._stale = True
                self._final = self._final or (
                    ConnectionState.LOST
                    if self._client.state is not ConnectionState.CLOSED
                    else ConnectionState.CLOSED
                )
                return None
            watch.add_callback(self._on_watch)
            if self.identifier not in names:
                return []  # not (or no longer) a member: own nothing
            return sorted(names)
        if scope.cancelled_caught:
            self._stale = True
        return None

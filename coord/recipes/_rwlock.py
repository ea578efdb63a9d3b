"""ReadWriteLock: shared reads, exclusive writes, and an atomic read-to-write upgrade.

Theory of operation
-------------------
Plain reads and writes are the ZooKeeper "Shared Locks" recipe on
:func:`coord.recipes._ordering.decide`: read nodes (``read-``) hold when no non-read node
precedes them, write nodes (``write-``) when they are first. A plain :class:`Lock` on the
same path is a writer too (its ``lock-`` nodes are non-read nodes).

**Upgrade.** A reader ``R`` (sequence ``r``) upgrades by creating, while keeping ``R``, an
*upgrade node* ``W`` named ``upgrade-<r:010d>-<seq>`` (a non-read node, so every later
contender queues behind it). ``W`` may not wait for what waits for ``R``: writers queued
after ``R`` (they wait for ``R`` -- a deadlock) and readers queued behind them. So ``W``
waits only for the readers that *hold*, and holding readers say so: a reader, once
:func:`decide` lets it in, sets its node's data to :data:`HELD_MARK` and then lists the
children again; if an upgrade node exists it takes the mark back and waits for that node
to go (it never held). An upgrader creates ``W`` and then reads the marks. This is
Dekker's protocol on ZooKeeper's total order of writes: either the reader's mark is
ordered before ``W``'s creation, and the upgrader sees the mark and waits for that reader;
or after it, and the reader sees ``W`` and backs off. Unmarked readers are never waited
for, so nothing waits for something that waits for ``R``.

**Two upgraders** ``W1 < W2`` whose read nodes both hold would each wait for the other's
read node. The later one sees the earlier's upgrade node when it lists the children after
creating its own (creation is totally ordered), so the rule is: *if the read node of an
earlier upgrade node is among my obstacles, I lose*: :class:`UpgradeConflict` is raised,
``W2`` deleted, the read lock kept. The earlier upgrader gets the write lock once the
loser leaves its read lock (release it and retry, typically).

Failure semantics: every hold (read, write, upgrade) is a :class:`~coord.recipes.Lock`
underneath -- the same protected nodes, cancellation-safe acquisition, and
``fencing_token`` (the node's czxid):

* disconnect (``SUSPENDED``) while holding: the body runs on until the safe bound (last
  contact + 2/3 of the session timeout), then is cancelled and ``LockLost`` raised;
* reconnect before the bound: nothing happens (same session, same nodes);
* session expiry or client closed: the body is cancelled and ``LockLost`` raised; a
  waiting writer gets in only once the servers deleted the readers' nodes (at expiry),
  so a writer never holds beside a reader that still believes it holds once the session
  timeout has passed;
* while waiting: operations wait for the reconnection; expiry raises
  ``SessionExpiredError``; a cancelled acquisition leaves no node behind.

An upgraded hold is lost if either its read or its upgrade node is lost (same session, so
both go together on expiry). With a SyncClient, ``with rw.read_lock():`` and the others
work as ``with Lock(...)`` (a loss is reported when the body ends).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from coord.client import Client, SyncClient
from coord.client._paths import join_path
from coord.protocol import CoordError, NoNodeError, SessionExpiredError
from coord.recipes._contender import Contender
from coord.recipes._lock import Lock
from coord.recipes._ordering import (
    READ_PREFIX,
    WRITE_PREFIX,
    Decision,
    Kind,
    _base_name,
    is_reader,
    sequence_of,
    sort_contenders,
)

__all__ = [
    "HELD_MARK",
    "ReadWriteLock",
    "UpgradeConflict",
    "UpgradeDecision",
    "decide_upgrade",
    "upgrade_nodes",
]

UPGRADE_PREFIX = "upgrade-"
HELD_MARK = b"\x00held\x00"
"""Prefix of a read node's data while the reader holds (see the theory of operation)."""


class UpgradeConflict(CoordError):
    """Another reader is upgrading to write first; upgrading too would deadlock.

    Raised by ``async with read.upgrade()`` (and ``with`` through a SyncClient) in the
    later of two concurrent upgraders. The read lock is still held; release it to let the
    other upgrader in, then retry.
    """


def upgrade_nodes(children: Sequence[str]) -> dict[str, int]:
    """The upgrade nodes among ``children``: name -> sequence of the read node it upgrades."""
    found: dict[str, int] = {}
    for name in children:
        base = _base_name(name)
        if base.startswith(UPGRADE_PREFIX) and sequence_of(name) is not None:
            read_seq = base[len(UPGRADE_PREFIX) :].split("-", 1)[0]
            if read_seq.isdigit():
                found[name] = int(read_seq)
    return found


@dataclass(frozen=True, slots=True)
class UpgradeDecision:
    """The answer of :func:`decide_upgrade`.

    Attributes:
        holds: the upgrader holds the write lock.
        watch: if not, the held read node to wait for (its deletion or unmarking).
        conflict: an earlier upgrader's read node is among the obstacles: give up.
    """

    holds: bool
    watch: str | None
    conflict: bool = False


def decide_upgrade(held: Mapping[str, bool], read: str, write: str) -> UpgradeDecision:
    """Whether the upgrade node ``write`` (of read node ``read``) holds the write lock.

    Args:
        held: every child name -> whether it is a read node marked as holding.
        read: the upgrader's read node name.
        write: its upgrade node name.

    Raises:
        ValueError: ``read`` or ``write`` is not among the children.
    """
    order = sort_contenders(held)
    if read not in order or write not in order:
        raise ValueError("the upgrader's nodes are gone")
    position = order.index(write)
    obstacles = [n for n in order[:position] if n != read and is_reader(n) and held[n]]
    if not obstacles:
        return UpgradeDecision(True, None)
    obstacle_seqs = {sequence_of(n) for n in obstacles}
    for name, read_seq in upgrade_nodes(order[:position]).items():
        if read_seq in obstacle_seqs and name != write:
            return UpgradeDecision(False, None, conflict=True)
    return UpgradeDecision(False, obstacles[-1])


class _ReadContender(Contender):
    """A read node that marks itself when it holds and backs off for upgraders."""

    async def check(self) -> Decision:
        decision = await super().check()
        if not decision.holds:
            return decision
        assert self.node is not None
        await self.client.set(self.node, HELD_MARK + self.data)
        children = await self.client.children(self.path)
        pending = sorted(upgrade_nodes(children), key=lambda n: sequence_of(n) or 0)
        if self.name not in children:
            return await super().check()  # raises: our node is gone
        if pending:
            await self.client.set(self.node, self.data)
            return Decision(False, pending[0], decision.position)
        return decision


class _UpgradeContender(Contender):
    """The upgrade node of a held read node."""

    def __init__(self, client: Client, path: str, read_node: str, data: bytes) -> None:
        self.read_name = read_node.rsplit("/", 1)[1]
        read_seq = sequence_of(self.read_name)
        super().__init__(client, path, f"{UPGRADE_PREFIX}{read_seq:010d}-", data, Kind.WRITE)

    async def _decide(self) -> UpgradeDecision:
        assert self.node is not None
        children = sort_contenders(await self.client.children(self.path))
        held: dict[str, bool] = {}
        for name in children:
            held[name] = False
            if is_reader(name) and name != self.read_name:
                try:
                    data, _ = await self.client.get(join_path(self.path, name))
                except NoNodeError:
                    del held[name]
                    continue
                held[name] = data.startswith(HELD_MARK)
        try:
            decision = decide_upgrade(held, self.read_name, self.name)
        except ValueError:
            raise SessionExpiredError("the upgrader's node is gone", path=self.node) from None
        if decision.conflict:
            raise UpgradeConflict(f"another reader of {self.path} is upgrading first")
        return decision

    async def check(self) -> Decision:
        decision = await self._decide()
        return Decision(decision.holds, decision.watch, 0)

    async def wait_turn(self) -> None:
        while True:
            decision = await self._decide()
            if decision.holds:
                return
            assert decision.watch is not None
            try:
                data, _, watch = await self.client.get(
                    join_path(self.path, decision.watch), watch=True
                )
            except NoNodeError:
                continue
            if data.startswith(HELD_MARK):
                await watch.wait()


class _RWHold(Lock):
    """One hold of a ReadWriteLock: a Lock whose contender is a read/write/upgrade node."""

    def __init__(
        self,
        client: Client | SyncClient,
        path: str,
        identifier: bytes,
        kind: Kind,
        *,
        upgrading: _RWHold | None = None,
    ) -> None:
        super().__init__(client, path, identifier=identifier)
        self._kind = kind
        self._upgrading = upgrading

    def __repr__(self) -> str:
        what = "upgrade" if self._upgrading else self._kind.value
        return f"<ReadWriteLock {self.path!r} {what} {'held' if self.is_held else 'not held'}>"

    def _new_contender(self) -> Contender:
        if self._contender is not None:
            raise RuntimeError("this hold is already held or being acquired")
        contender: Contender
        if self._upgrading is not None:
            read_node = self._upgrading.node
            if read_node is None or not self._upgrading.is_held:
                raise RuntimeError("upgrade() needs the read lock to be held")
            contender = _UpgradeContender(self._client, self.path, read_node, self.identifier)
        elif self._kind is Kind.READ:
            contender = _ReadContender(
                self._client, self.path, READ_PREFIX, self.identifier, Kind.READ
            )
        else:
            contender = Contender(
                self._client, self.path, WRITE_PREFIX, self.identifier, Kind.WRITE
            )
        self._contender = contender
        return contender

    def upgrade(self) -> _RWHold:
        """The write lock, taken atomically while keeping this read lock.

        Use as ``async with read.upgrade() as write:`` inside the read lock's block (or
        ``with`` through a SyncClient). No writer gets in between: the read lock is kept
        until the upgrade is held, and kept after it ends.

        Raises (on entering):
            UpgradeConflict: another reader is upgrading first (this one would deadlock
                with it); the read lock is still held.
            RuntimeError: this is not a held read lock.
        """
        if self._kind is not Kind.READ or self._upgrading is not None:
            raise RuntimeError("only a read lock can be upgraded")
        client = self._sync if self._sync is not None else self._client
        return _RWHold(client, self.path, self.identifier, Kind.WRITE, upgrading=self)


class ReadWriteLock:
    """A fair read-write lock with an atomic, deadlock-free upgrade from read to write.

    ``async with rw.read_lock() as read:`` shares with other readers;
    ``async with rw.write_lock():`` excludes everyone; inside a read lock,
    ``async with read.upgrade():`` takes the write lock without letting anyone in between
    (two concurrent upgraders: the later one gets :class:`UpgradeConflict`).

    Each hold behaves like a :class:`~coord.recipes.Lock` (``fencing_token``, ``is_held``,
    ``acquire``/``try_acquire``/``release``, ``LockLost`` when lost). With a SyncClient,
    use ``with``. Failure semantics: as for Lock (see ``docs/recipes.md``).

    Args:
        client: an async Client, or a SyncClient for ``with``.
        path: the lock node (created as a container when supported).
        identifier: data stored in the contender nodes.
    """

    def __init__(self, client: Client | SyncClient, path: str, *, identifier: bytes = b"") -> None:
        self._client = client
        self.path = path
        self.identifier = identifier

    def __repr__(self) -> str:
        return f"<ReadWriteLock {self.path!r}>"

    def read_lock(self) -> _RWHold:
        """A new shared hold (a context manager; one instance is one contender)."""
        return _RWHold(self._client, self.path, self.identifier, Kind.READ)

    def write_lock(self) -> _RWHold:
        """A new exclusive hold (a context manager; one instance is one contender)."""
        return _RWHold(self._client, self.path, self.identifier, Kind.WRITE)

"""Queue, PriorityQueue and LockingQueue: distributed FIFO queues of byte strings.

Theory of operation
-------------------
**Queue** (ZooKeeper recipe "Queues"): ``put`` creates a persistent-sequential child
``item-<seq10>`` under the queue's path (protected, so a create whose reply was lost is
found again and never applied twice). The server's sequence numbers order the items:
``get`` lists the children, reads the lowest and *claims* it; a ``NoNodeError`` on the
read, or a failed claim, means another consumer took it first, and it tries the next one.
With no item, it waits on a children watch. Ordering is a pure function
(:func:`item_key`) of the names.

A claim is one transaction: delete the item and create the ephemeral *witness*
``<path>/_taken/<put id>``. A plain delete would be ambiguous after a lost reply (its retry
gets ``NoNode`` whether our delete or another consumer's removed the item, and guessing
either way loses an item or delivers it twice); the witness resolves it: after a lost
reply it exists, owned by our session, if and only if our claim applied.

**One put, one item.** ``put`` is a protected create: after a lost reply it looks for its
node by the ``_c_<uuid>-`` prefix before creating again. That can miss a create the server
applies *late* -- the request was delivered just before the connection died and the
server reads it after the new connection's lookup (seen with Apache ZooKeeper and coord
under aggressive cuts) -- and then one put leaves two nodes with the same prefix. ``put``
therefore waits :data:`SETTLE` seconds after reconnecting before it looks (the late
request lands meanwhile), and consumers deduplicate what still slips through.
A late copy can even appear after the first one was taken. So consumers treat nodes
sharing a prefix as copies of one item, the *put id* (:func:`copies`): a claim or an
acknowledgement deletes every copy it knows of, and its witness is named by the put id
and kept for a grace period (:data:`WITNESS_GRACE`, then deleted by the same consumer's
next claim; it is ephemeral, so it goes with the session at worst): a copy appearing
meanwhile finds the witness and is dropped instead of delivered. A LockingQueue locks
``<path>/_locks/<put id>`` and checks the witness after locking.

**PriorityQueue**: the priority is part of the name, ``item-p<priority>-<seq10>``; items
are taken by ``(priority, sequence)``: lower priority first, FIFO within a priority.
Plain items count as priority 0, so both classes read each other's items.

**LockingQueue** (take with acknowledgement, Curator's ``DistributedQueue`` with a lock
path, kazoo's ``LockingQueue``): ``take`` creates the ephemeral node
``<path>/_locks/<item>`` for the first item nobody has locked, which hides the item from
the other consumers, and returns it. ``item.ack()`` deletes the item and its lock in one
transaction; ``item.release()`` deletes only the lock. If the consumer's session ends,
the server deletes the lock and the item becomes visible again: it is redelivered
(at-least-once processing; exactly-once consumption of acknowledged items).

Failure semantics
-----------------
* disconnect: operations wait for the reconnection (client retry policy); waits go on,
  the client re-sets the watches.
* reconnect: nothing happens; a LockingQueue item's lock (same session) is still held.
* session expiry: ``put``/``get``/``take`` raise ``SessionExpiredError``. Queue items are
  persistent and stay. A LockingQueue item taken but not acknowledged becomes visible
  again to other consumers; its ``ack()`` raises :class:`ItemLost`.
* a connection loss *during* a Queue ``get``'s claim is resolved by the witness: the item
  is returned to exactly one consumer. If the session expires before the outcome is
  known, ``get`` raises ``SessionExpiredError`` and the item may have been taken (and is
  then lost): Queue delivers at most once; use LockingQueue for at-least-once.
* cancelling ``get`` after the delete succeeded loses the item (it is gone and was not
  returned); cancelling ``take`` releases a lock it had already created.

With a :class:`~coord.client.SyncClient`, call the methods through ``sync.run``
(``item = sync.run(queue.take)``) and use ``with item:`` (ack on success, release on
error), with the same semantics.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import anyio

from coord.client import Client, ClientClosedError, OneShotWatch, SyncClient, TransactionFailed
from coord.client._paths import join_path
from coord.protocol import (
    ConnectionLossError,
    CoordError,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from coord.recipes._contender import async_client
from coord.recipes._facade import SyncContext, sync_client

__all__ = ["Item", "ItemLost", "LockingQueue", "PriorityQueue", "Queue", "item_key"]

_PREFIX = "item-"
_LOCKS = "_locks"
_TAKEN = "_taken"
_NAME = re.compile(r"item-(?:p(-?\d+)-)?(\d{10})$")


class ItemLost(CoordError):
    """A LockingQueue item's lock was lost before it was acknowledged.

    Raised by :meth:`Item.ack` when the consumer's session ended (or its lock node was
    deleted by someone else): the item may already have been delivered to another
    consumer.
    """


def item_key(name: str) -> tuple[int, int] | None:
    """The order of a queue item's node name, ``(priority, sequence)``, or None."""
    match = _NAME.search(name)
    if match is None:
        return None
    priority, seq = match.groups()
    return (int(priority) if priority else 0, int(seq))


def sort_items(names: list[str]) -> list[str]:
    """The item names among ``names``, in the order they are taken."""
    keyed = [(key, name) for name in names if (key := item_key(name)) is not None]
    keyed.sort()
    return [name for _, name in keyed]


_PROTECTION = re.compile(r"^_c_[0-9a-fA-F-]{36}-")

SETTLE = 0.25
"""Seconds ``put`` waits after a lost reply and a reconnection before looking for its node."""

WITNESS_GRACE = 30.0
"""Seconds a consumer keeps the witness of a taken item (at least twice its session
timeout): a late copy of that put appearing meanwhile is recognised and dropped."""


def put_id(name: str) -> str:
    """What identifies the put that created item node ``name``: its protection prefix
    (without the trailing ``-``), or the name itself for an unprotected node."""
    match = _PROTECTION.match(name)
    return match.group()[:-1] if match else name


def copies(names: list[str]) -> dict[str, list[str]]:
    """The items of ``names`` (sorted, as :func:`sort_items`) with their copies.

    Returns:
        The first node of each put, in order, mapped to every node of that put (itself
        first): nodes whose names share a protection prefix come from one ``put``.
    """
    result: dict[str, list[str]] = {}
    first_of: dict[str, str] = {}
    for name in sort_items(names):
        match = _PROTECTION.match(name)
        if match is None:
            result[name] = [name]
        elif match.group() in first_of:
            result[first_of[match.group()]].append(name)
        else:
            first_of[match.group()] = name
            result[name] = [name]
    return result


async def _wait_any(*watches: OneShotWatch) -> None:
    async with anyio.create_task_group() as tg:

        async def one(watch: OneShotWatch) -> None:
            await watch.wait()
            tg.cancel_scope.cancel()

        for watch in watches:
            tg.start_soon(one, watch)


class Queue:
    """A FIFO queue: ``await queue.put(b"job")``, ``data = await queue.get()``.

    Args:
        client: an async :class:`~coord.client.Client` (with a ``SyncClient``, call the
            methods through ``sync_client.run``).
        path: the queue's node (created with its ancestors by the first ``put``).
    """

    def __init__(self, client: Client | SyncClient, path: str) -> None:
        self._sync = sync_client(client)
        self._client = async_client(client)
        self.path = path
        self._witnesses: dict[str, float] = {}  # our witnesses -> when they may go

    def _witness(self, name: str) -> str:
        return join_path(join_path(self.path, _TAKEN), put_id(name))

    def _keep_witness(self, witness: str) -> None:
        grace = max(WITNESS_GRACE, 2 * self._client.session_timeout)
        self._witnesses[witness] = anyio.current_time() + grace

    async def _drop_old_witnesses(self) -> None:
        now = anyio.current_time()
        for witness in [w for w, until in self._witnesses.items() if until <= now]:
            del self._witnesses[witness]
            with contextlib.suppress(NoNodeError):
                await self._client.delete(witness)

    async def _drop_copies(self, nodes: list[str], *, lock: str | None = None) -> None:
        """Delete copies of an item already taken (best effort)."""
        for node in nodes:
            with contextlib.suppress(NoNodeError):
                await self._client.delete(join_path(self.path, node))
        if lock is not None:
            with contextlib.suppress(NoNodeError):
                await self._client.delete(lock)

    async def _ensure_taken(self) -> None:
        with contextlib.suppress(NodeExistsError):  # the first claim ever
            await self._client.create(join_path(self.path, _TAKEN))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r}>"

    async def _put(self, data: bytes, prefix: str) -> str:
        client = self._client
        protect = f"_c_{uuid.uuid4()}-"
        while True:
            try:
                return await client.create(
                    join_path(self.path, protect + prefix),
                    data,
                    sequential=True,
                    makepath=True,
                    protected=False,  # protected here, with a pause before looking
                )
            except (ConnectionLossError, OperationTimeoutError):
                await client.wait_connected()
                await anyio.sleep(SETTLE)
                try:
                    names = await client.children(self.path)
                except NoNodeError:
                    continue
                found = sorted(n for n in names if n.startswith(protect))
                if found:
                    return join_path(self.path, found[0])

    async def put(self, data: bytes) -> str:
        """Append an item; returns its node's path."""
        return await self._put(data, _PREFIX)

    async def _items(self) -> tuple[dict[str, list[str]], OneShotWatch]:
        """The items in order (with their copies), and a watch fired when they change."""
        while True:
            try:
                names, watch = await self._client.children(self.path, watch=True)
            except NoNodeError:
                stat, watch = await self._client.exists(self.path, watch=True)
                if stat is None:
                    return {}, watch
                continue
            return copies(names), watch

    async def qsize(self) -> int:
        """The number of items (including a LockingQueue's taken items)."""
        try:
            return len(copies(await self._client.children(self.path)))
        except NoNodeError:
            return 0

    async def _take_first(self, items: dict[str, list[str]]) -> bytes | None:
        for name, nodes in items.items():
            node = join_path(self.path, name)
            try:
                data, _ = await self._client.get(node)
            except NoNodeError:
                continue  # another consumer took it
            if await self._claim(name, nodes):
                return data
        return None

    async def _claim(self, name: str, nodes: list[str]) -> bool:
        """Delete item ``name`` and its copies ``nodes`` with a witness (see above);
        whether we took it."""
        client = self._client
        witness = self._witness(name)
        if witness in self._witnesses:  # a late copy of a put we took
            await self._drop_copies(nodes)
            return False
        while True:
            txn = client.transaction()
            for node in nodes:
                txn.delete(join_path(self.path, node))
            txn.create(witness, ephemeral=True)
            try:
                await txn.commit()
            except TransactionFailed as exc:
                if exc.index == len(nodes) and isinstance(exc.error, NoNodeError):
                    await self._ensure_taken()
                    continue
                if exc.index == len(nodes) and isinstance(exc.error, NodeExistsError):
                    await self._drop_copies(nodes)  # a late copy of a put taken before
                    return False
                if isinstance(exc.error, NoNodeError):
                    return False  # another consumer took it
                raise exc.error from exc
            except (ConnectionLossError, OperationTimeoutError):
                await client.wait_connected()
                stat = await client.exists(witness)
                if stat is None or stat.ephemeral_owner != client.session_id:
                    if await client.exists(join_path(self.path, name)) is None:
                        return False  # another consumer took it
                    # not applied: claim again the copies still there
                    current = set(await client.children(self.path))
                    nodes = [n for n in nodes if n == name or n in current]
                    continue
            self._keep_witness(witness)
            await self._drop_old_witnesses()
            return True

    async def get_nowait(self) -> bytes | None:
        """Take the first item without waiting; None if the queue is empty."""
        names, _ = await self._items()
        return await self._take_first(names)

    async def get(self) -> bytes:
        """Take the first item, waiting for one.

        Raises:
            SessionExpiredError: the session was lost.
        """
        while True:
            names, watch = await self._items()
            data = await self._take_first(names)
            if data is not None:
                return data
            await watch.wait()


class PriorityQueue(Queue):
    """A queue taken in order of priority (lower first), FIFO within a priority."""

    async def put(self, data: bytes, priority: int = 0) -> str:
        """Append an item with ``priority``; returns its node's path."""
        return await self._put(data, f"{_PREFIX}p{int(priority)}-")


@dataclass(eq=False)
class Item(SyncContext):
    """A LockingQueue item held by this consumer until :meth:`ack` or :meth:`release`.

    ``async with await queue.take() as item:`` acknowledges it when the body succeeds and
    releases it when the body raises (``with item:`` when the queue is on a SyncClient).
    """

    queue: LockingQueue
    name: str
    data: bytes
    session_id: int
    done: bool = field(default=False)
    #: Other nodes of the same put (see :func:`copies`), deleted with it by ``ack``.
    copies: tuple[str, ...] = ()

    @property
    def _sync(self) -> SyncClient | None:  # type: ignore[override]
        return self.queue._sync

    @property
    def path(self) -> str:
        """The item's node."""
        return join_path(self.queue.path, self.name)

    @property
    def lock_path(self) -> str:
        """Its lock node (named by the put id, so copies share it)."""
        return join_path(self.queue.locks_path, put_id(self.name))

    async def ack(self) -> None:
        """Remove the item for good (item and lock in one transaction).

        Raises:
            ItemLost: the lock was lost first (session expired): the item may be
                redelivered to someone else.
        """
        client = self.queue._client
        if self.done:
            return
        if client.session_id != self.session_id:
            raise ItemLost(f"{self.path}: the session that took it ended")
        try:
            await self._ack(client)
        except (SessionExpiredError, ClientClosedError) as exc:
            raise ItemLost(f"{self.path}: {exc}") from exc
        self.done = True

    async def _ack(self, client: Client) -> None:
        while True:
            witness = self.queue._witness(self.name)
            txn = client.transaction().delete(self.path)
            for copy in self.copies:
                txn.delete(join_path(self.queue.path, copy))
            txn.delete(self.lock_path).create(witness, ephemeral=True)
            try:
                await txn.commit()
            except (ConnectionLossError, OperationTimeoutError):
                await client.wait_connected()
                # Applied iff our witness exists (while the lock is ours, nobody else can
                # create it; once our transaction freed the lock, someone may lock again).
                stat = await client.exists(witness)
                if stat is not None and stat.ephemeral_owner == client.session_id:
                    self.queue._keep_witness(witness)
                    return
                continue
            except TransactionFailed as exc:
                if isinstance(exc.error, NoNodeError) and exc.index == len(self.copies) + 2:
                    await self.queue._ensure_taken()
                    continue
                if await self._lock_gone():
                    raise ItemLost(f"{self.path}: its lock is gone") from exc
                # the item itself was deleted by someone else: just drop our lock
                with contextlib.suppress(NoNodeError):
                    await client.delete(self.lock_path)
                return
            self.queue._keep_witness(witness)
            await self.queue._drop_old_witnesses()
            return

    async def _lock_gone(self) -> bool:
        return await self.queue._client.exists(self.lock_path) is None

    async def release(self) -> None:
        """Make the item visible to the other consumers again (shielded)."""
        if self.done:
            return
        self.done = True
        client = self.queue._client
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(client.session_timeout),
            contextlib.suppress(NoNodeError, SessionExpiredError, ClientClosedError),
        ):
            await client.delete(self.lock_path)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.ack()
        else:
            await self.release()


class LockingQueue(Queue):
    """A FIFO queue whose items are taken with acknowledgement.

    ``item = await queue.take()`` hides the item from other consumers;
    ``await item.ack()`` removes it, ``await item.release()`` (or the end of the
    consumer's session) makes it visible again.
    """

    def __init__(self, client: Client | SyncClient, path: str, *, identifier: bytes = b"") -> None:
        super().__init__(client, path)
        self.identifier = identifier
        self.locks_path = join_path(path, _LOCKS)

    async def _locked(self) -> tuple[set[str], OneShotWatch]:
        while True:
            try:
                names, watch = await self._client.children(self.locks_path, watch=True)
            except NoNodeError:
                await self._client.ensure_path(self.locks_path)
                continue
            return set(names), watch

    async def _try_take(self, items: dict[str, list[str]], locked: set[str]) -> Item | None:
        for name, nodes in items.items():
            if put_id(name) in locked:
                continue
            lock = join_path(self.locks_path, put_id(name))
            try:
                await self._client.create(lock, self.identifier, ephemeral=True)
            except NodeExistsError:
                continue
            session = self._client.session_id
            if await self._client.exists(self._witness(name)) is not None:
                await self._drop_copies(nodes, lock=lock)  # a late copy of an acked put
                continue
            try:
                data, _ = await self._client.get(join_path(self.path, name))
            except NoNodeError:  # acknowledged meanwhile by its previous holder
                with contextlib.suppress(NoNodeError):
                    await self._client.delete(lock)
                continue
            except BaseException:
                await Item(self, name, b"", session).release()
                raise
            return Item(self, name, data, session, copies=tuple(nodes[1:]))
        return None

    async def take_nowait(self) -> Item | None:
        """Take the first visible item without waiting; None if there is none."""
        names, _ = await self._items()
        locked, _ = await self._locked()
        return await self._try_take(names, locked)

    async def take(self) -> Item:
        """Take the first visible item, waiting for one.

        Raises:
            SessionExpiredError: the session was lost.
        """
        while True:
            names, items_watch = await self._items()
            locked, locks_watch = await self._locked()
            item = await self._try_take(names, locked)
            if item is not None:
                return item
            await _wait_any(items_watch, locks_watch)

    async def get(self) -> bytes:
        """Take and acknowledge the first visible item."""
        item = await self.take()
        await item.ack()
        return item.data

    async def get_nowait(self) -> bytes | None:
        """Take and acknowledge the first visible item; None if there is none."""
        item = await self.take_nowait()
        if item is None:
            return None
        await item.ack()
        return item.data

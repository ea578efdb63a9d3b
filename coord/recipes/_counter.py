"""Counter: a shared number changed by compare-and-set on the node's version.

Theory of operation
-------------------
The value lives in one persistent node as its decimal text (``str(value)`` in UTF-8, as
kazoo's ``Counter`` stores it). :meth:`Counter.add` reads the value and its version and
writes the new value with ``set(path, data, version)``; a ``BadVersionError`` means some
other writer got in between, so it reads again and retries. Each successful write moves
the version by exactly one, so no increment is ever lost or applied twice (optimistic
concurrency, Curator's ``DistributedAtomicLong`` without the lock promotion).

A write whose reply was lost (connection loss) must be resolved without guessing: the
node's version and data cannot tell our write from another writer's that wrote the same
value (two ``add(1)`` from the same value) or wrote after it. So each conditional write is
a transaction that also creates a *witness*: an ephemeral child ``_w-<uuid>`` of the
counter node, unique to this write. After a lost reply, the witness exists if and only if
the write applied; it is deleted right after (and, being ephemeral, goes with the session
at worst). The create of a missing counter is witnessed the same way.

A missing node counts as ``default``; the first writer creates it (with its missing
ancestors); a creator that loses the race to another creator retries as a writer.

Failure semantics
-----------------
* disconnect: ``add``/``set``/``value`` wait for the reconnection (within the client's
  retry policy); an interrupted write is applied exactly once, as above.
* reconnect: nothing to restore; the counter holds no session state.
* session expiry: the counter is persistent, nothing is lost; operations on an expired
  client raise ``SessionExpiredError`` -- also an ``add`` whose write's reply was lost
  when the session expired (its witness is gone, so whether it applied is unknown).
  Cancelling ``add`` while its write is in flight leaves the outcome unknown (applied or
  not, never twice).

With a :class:`~coord.client.SyncClient`, call the methods through ``sync.run``
(``sync.run(counter.add, 1)``), with the same semantics.
"""

from __future__ import annotations

import contextlib
import uuid

from coord.client import Client, SyncClient, TransactionFailed
from coord.client._paths import join_path, parent_path
from coord.protocol import (
    BadVersionError,
    ConnectionLossError,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
)
from coord.recipes._contender import async_client

__all__ = ["Counter"]

Number = int | float


class Counter:
    """A shared ``int`` or ``float``: ``await Counter(client, "/counters/hits").add(1)``.

    Args:
        client: an async :class:`~coord.client.Client` (with a ``SyncClient``, call the
            methods through ``sync_client.run``).
        path: the counter's node (created on the first write, with missing ancestors).
        default: the value while the node does not exist.
        kind: ``int`` or ``float``; how the stored text is parsed.
    """

    def __init__(
        self,
        client: Client | SyncClient,
        path: str,
        *,
        default: Number = 0,
        kind: type[int] | type[float] = int,
    ) -> None:
        if kind not in (int, float):
            raise TypeError("kind must be int or float")
        self._client = async_client(client)
        self.path = path
        self.kind: type[int] | type[float] = kind
        self.default: Number = kind(default)

    def __repr__(self) -> str:
        return f"<Counter {self.path!r} {self.kind.__name__}>"

    def _decode(self, data: bytes) -> Number:
        return self.kind(data.decode()) if data else self.default

    def _encode(self, value: Number) -> bytes:
        return repr(self.kind(value)).encode()

    async def _read(self) -> tuple[Number, int]:
        """The value and the node's version (-1: no node)."""
        try:
            data, stat = await self._client.get(self.path)
        except NoNodeError:
            return self.default, -1
        return self._decode(data), stat.version

    async def value(self) -> Number:
        """The current value (``default`` when the node does not exist)."""
        return (await self._read())[0]

    async def add(self, n: Number) -> Number:
        """Add ``n`` (which may be negative) atomically.

        Returns:
            The value after this addition (others' additions may follow at once).
        """
        while True:
            current, version = await self._read()
            new = self.kind(current + n)
            if await self._write(new, version):
                return new

    async def subtract(self, n: Number) -> Number:
        """Subtract ``n`` atomically; returns the new value."""
        return await self.add(-n)

    async def set(self, value: Number) -> None:
        """Replace the value unconditionally."""
        while not await self._write(self.kind(value), -2):
            pass

    async def compare_and_set(self, expected: Number, value: Number) -> bool:
        """Set ``value`` if the counter currently holds ``expected``.

        Returns:
            Whether the value was replaced.
        """
        while True:
            current, version = await self._read()
            if current != expected:
                return False
            if await self._write(self.kind(value), version):
                return True

    async def _write(self, value: Number, version: int) -> bool:
        """Write at ``version`` (-1: create; -2: any); False when someone got in between."""
        data = self._encode(value)
        if version != -2:
            return await self._witnessed_write(data, version)
        try:  # unconditional: repeating it is harmless
            await self._client.set(self.path, data)
        except NoNodeError:
            return await self._witnessed_write(data, -1)
        return True

    async def _witnessed_write(self, data: bytes, version: int) -> bool:
        """Create (``version`` -1) or set at ``version``, with a witness (see above)."""
        client = self._client
        witness = join_path(self.path, f"_w-{uuid.uuid4().hex}")
        while True:
            txn = client.transaction()
            if version == -1:
                txn.create(self.path, data)
            else:
                txn.set(self.path, data, version)
            txn.create(witness, ephemeral=True)
            try:
                await txn.commit()
            except TransactionFailed as exc:
                if version == -1 and isinstance(exc.error, NoNodeError) and exc.index == 0:
                    await client.ensure_path(parent_path(self.path))  # a missing ancestor
                    continue
                if isinstance(exc.error, BadVersionError | NodeExistsError | NoNodeError):
                    return False  # someone got in between (or deleted the counter)
                raise exc.error from exc
            except (ConnectionLossError, OperationTimeoutError):
                await client.wait_connected()
                if await client.exists(witness) is None:
                    return False  # not applied: read again and retry
            with contextlib.suppress(NoNodeError):
                await client.delete(witness)
            return True

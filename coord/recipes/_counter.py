"""Counter: a shared number changed by compare-and-set on the node's version.

Theory of operation
-------------------
The value lives in one persistent node as its decimal text (``str(value)`` in UTF-8, as
kazoo's ``Counter`` stores it). :meth:`Counter.add` reads the value and its version and
writes the new value with ``set(path, data, version)``; a ``BadVersionError`` means some
other writer got in between, so it reads again and retries. Each successful write moves
the version by exactly one, so no increment is ever lost or applied twice (optimistic
concurrency, Curator's ``DistributedAtomicLong`` without the lock promotion).

A write whose reply was lost (connection loss) is resolved by the client: its retry gets
``BadVersion``, and the client checks whether the node is now at ``version + 1`` with our
data written after our attempt was sent -- then the write applied and is not repeated.

A missing node counts as ``default``; the first writer creates it (with its missing
ancestors); a creator that loses the race to another creator retries as a writer.

Failure semantics
-----------------
* disconnect: ``add``/``set``/``value`` wait for the reconnection (within the client's
  retry policy); an interrupted write is applied at most once, as above.
* reconnect: nothing to restore; the counter holds no session state.
* session expiry: the counter is persistent, nothing is lost; operations on an expired
  client raise ``SessionExpiredError``. Cancelling ``add`` while its write is in flight
  leaves the outcome unknown (applied or not, never twice).
"""

from __future__ import annotations

from coord.client import Client, SyncClient
from coord.protocol import BadVersionError, NodeExistsError, NoNodeError
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
        try:
            if version == -1:
                await self._client.create(self.path, data, makepath=True)
            else:
                await self._client.set(self.path, data, max(version, -1))
        except NodeExistsError:
            return False
        except BadVersionError:
            return False
        except NoNodeError:
            if version != -2:
                return False
            try:
                await self._client.create(self.path, data, makepath=True)
            except NodeExistsError:
                return False
        return True

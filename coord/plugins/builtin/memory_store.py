"""Built-in plugin: the ``memory`` storage backend, for tests and throwaway servers.

Nothing survives the process: every :meth:`MemoryBackend.open` gives a new, empty store,
and ``config.data_dir`` is neither read nor locked. Otherwise it keeps the
:class:`~coord.server._storage.LogStore` contract exactly -- the same batch rules
(:mod:`coord.plugins.builtin._batch`), atomic batches, parents-first node order -- so a
server on it behaves as on ``rocksdb`` minus the disk. Records are kept as given: there
is nothing to checksum.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.lowlevel

from coord.plugins.builtin._batch import plan_batch
from coord.plugins.hookspecs import hookimpl
from coord.server._storage import HardState, StoreBatch, StoreError

if TYPE_CHECKING:
    from coord.server._config import ServerConfig
    from coord.server._storage import StorageBackend

__all__ = ["MemoryBackend", "MemoryStore", "coord_storage_backends"]


class MemoryStore:
    """A :class:`~coord.server._storage.LogStore` in dicts; nothing reaches a disk."""

    def __init__(self) -> None:
        self._entries: dict[int, bytes] = {}
        self._nodes: dict[str, bytes] = {}
        self._sessions: dict[int, bytes] = {}
        self._first_index = 1
        self._last_index = 0
        self._applied_index = 0
        self._membership: bytes | None = None
        self._hard_state = HardState()
        self._closed = False

    @property
    def first_index(self) -> int:
        """Index of the oldest entry kept; ``last_index + 1`` when the log is empty."""
        return self._first_index

    @property
    def last_index(self) -> int:
        """Index of the newest entry (of the last compacted one when the log is empty)."""
        return self._last_index

    @property
    def applied_index(self) -> int:
        """The applied index last written (0 for a new store)."""
        return self._applied_index

    @property
    def membership(self) -> bytes | None:
        """The membership last written."""
        return self._membership

    @property
    def hard_state(self) -> HardState:
        """The hard state last written."""
        return self._hard_state

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def write(self, batch: StoreBatch, *, sync: bool = True) -> None:
        """Apply ``batch`` atomically ("durable" at once, for the life of the process).

        Raises:
            ValueError: the batch breaks the store's rules (see
                :func:`~coord.plugins.builtin._batch.plan_batch`); nothing is written.
            StoreError: the store is closed.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise StoreError("the memory store is closed")
        plan = plan_batch(
            batch,
            first_index=self._first_index,
            last_index=self._last_index,
            applied_index=self._applied_index,
            hard_state=self._hard_state,
        )
        entries = self._entries
        if plan.truncate is not None:
            for index in range(*plan.truncate):
                del entries[index]
        if plan.reset:
            assert batch.reset_to is not None
            self._nodes.clear()
            self._sessions.clear()
            entries[batch.reset_to[0]] = batch.reset_to[1]
        entries.update(batch.entries)
        for path, node in batch.nodes.items():
            if node is None:
                self._nodes.pop(path, None)
            else:
                self._nodes[path] = node
        for session_id, session in batch.sessions.items():
            if session is None:
                self._sessions.pop(session_id, None)
            else:
                self._sessions[session_id] = session
        if plan.compact is not None:
            for index in range(*plan.compact):
                del entries[index]
        self._first_index = plan.first_index
        self._last_index = plan.last_index
        self._applied_index = plan.applied_index
        if batch.membership is not None:
            self._membership = batch.membership
        self._hard_state = plan.hard_state
        await anyio.lowlevel.cancel_shielded_checkpoint()

    def read_entries(self, start: int, stop: int) -> list[bytes]:
        """Encoded entries with ``start <= index < stop``, in order.

        Raises:
            ValueError: the range is not within ``[first_index, last_index + 1]``.
            StoreError: the store is closed.
        """
        self._check_open()
        if not self._first_index <= start <= stop <= self._last_index + 1:
            raise ValueError(
                f"entries [{start}, {stop}) are not within the log "
                f"[{self._first_index}, {self._last_index + 1})"
            )
        entries = self._entries
        return [entries[index] for index in range(start, stop)]

    def iter_nodes(self) -> Iterator[tuple[str, bytes]]:
        """Every znode record, sorted by path (so parents before children).

        Raises:
            StoreError: the store is closed.
        """
        self._check_open()
        nodes = self._nodes
        for path in sorted(nodes):
            record = nodes.get(path)
            if record is not None:
                yield path, record

    def iter_sessions(self) -> Iterator[tuple[int, bytes]]:
        """Every session record.

        Raises:
            StoreError: the store is closed.
        """
        self._check_open()
        yield from list(self._sessions.items())

    async def copy_to(self, path: Path, progress: Callable[[int], None] | None = None) -> None:
        """Always fails: there is nothing on disk to copy.

        Raises:
            StoreError: always.
        """
        await anyio.lowlevel.checkpoint()
        raise StoreError("the memory backend keeps nothing on disk; use --storage rocksdb")

    async def close(self) -> None:
        """Mark the store closed (it keeps its contents). Idempotent."""
        self._closed = True
        await anyio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the memory store is closed")


class MemoryBackend:
    """The ``memory`` storage backend: every :meth:`open` gives a new, empty store."""

    name = "memory"

    def open(self, config: ServerConfig) -> MemoryStore:
        """A new empty :class:`MemoryStore` (``config.data_dir`` is not used)."""
        return MemoryStore()


@hookimpl
def coord_storage_backends() -> list[StorageBackend]:
    """The ``memory`` backend."""
    return [MemoryBackend()]

"""What a storage backend plugin provides: a :class:`StorageBackend` that opens a
:class:`LogStore`.

Theory of operation
-------------------
One store per server holds everything that must survive a restart (DESIGN.md decision 4):

* the **log**: encoded entries keyed by their index (the low 32 bits of the zxid; the
  high 32 bits are the term, so the consensus log needs no format of its own);
* the **hard state**: the current term and the vote cast in it;
* the **applied state**: one record per znode, one per session, and the applied index --
  the index of the last entry whose effects those records include.

Every change goes through :meth:`LogStore.write` with a :class:`StoreBatch`, applied
atomically: either all of it is on disk after a crash or none of it is. With ``sync=True``
the call returns only once the batch is durable. Because the applied records and the
applied index move together, the persisted tree is itself the snapshot, and recovery is
"load the records, replay the log after the applied index".

Stores verify a checksum on every record they read back and raise
:class:`StoreCorruptedError` naming the damaged record rather than return wrong data.

The store is used from one task at a time. Backends are registered through the
``coord_storage_backends`` hook (:mod:`coord.plugins.hookspecs`); the built-ins are
``rocksdb`` and ``memory``. :mod:`coord.testing` ships the conformance suite every backend
must pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._config import ServerConfig

__all__ = [
    "HardState",
    "LogStore",
    "StorageBackend",
    "StoreBatch",
    "StoreCorruptedError",
    "StoreError",
    "StoreLockedError",
]


class StoreError(Exception):
    """A storage failure; the message says what happened and what to do next."""


class StoreCorruptedError(StoreError):
    """A record read back from the store failed its checksum or could not be decoded."""


class StoreLockedError(StoreError):
    """The data directory is in use by another server."""


@dataclass(frozen=True, slots=True)
class HardState:
    """What a voter must remember across restarts: its term and its vote in that term."""

    term: int = 0
    vote: int = 0


@dataclass(slots=True)
class StoreBatch:
    """One atomic write to a :class:`LogStore`; every part is optional.

    Applied in this order: ``reset_to``, ``truncate_from``, ``entries``, ``hard_state``,
    ``nodes``, ``sessions``, ``applied_index``, ``compact_before``.
    """

    #: Install a snapshot: drop every log entry and every node and session record, then
    #: restart the log with this one ``(index, encoded entry)`` -- the entry the
    #: snapshot's state is applied up to. ``applied_index`` must be that index, and
    #: ``nodes``/``sessions`` carry the snapshot's records. (A follower catching up.)
    reset_to: tuple[int, bytes] | None = None

    #: Drop log entries with index >= this first (a follower's conflicting suffix).
    truncate_from: int | None = None
    #: ``(index, encoded entry)`` pairs, contiguous, continuing the log.
    entries: list[tuple[int, bytes]] = field(default_factory=list)
    hard_state: HardState | None = None
    #: Znode records by path; ``None`` deletes the record.
    nodes: dict[str, bytes | None] = field(default_factory=dict)
    #: Session records by session id; ``None`` deletes the record.
    sessions: dict[int, bytes | None] = field(default_factory=dict)
    #: The index of the last entry whose effects the records now include.
    applied_index: int | None = None
    #: The ensemble's membership as of the applied state (opaque to the store).
    membership: bytes | None = None
    #: Drop log entries with index < this (they are covered by the applied records).
    compact_before: int | None = None

    def __bool__(self) -> bool:
        return bool(
            self.reset_to is not None
            or self.truncate_from is not None
            or self.entries
            or self.hard_state is not None
            or self.nodes
            or self.sessions
            or self.applied_index is not None
            or self.membership is not None
            or self.compact_before is not None
        )


@runtime_checkable
class LogStore(Protocol):
    """A server's durable state: log, hard state, applied records (see module docs)."""

    @property
    def first_index(self) -> int:
        """Index of the oldest entry kept; ``last_index + 1`` when the log is empty."""
        ...

    @property
    def last_index(self) -> int:
        """Index of the newest entry, or of the last compacted one when the log is empty
        (0 for a new store)."""
        ...

    @property
    def applied_index(self) -> int:
        """The applied index last written (0 for a new store)."""
        ...

    @property
    def hard_state(self) -> HardState:
        """The hard state last written."""
        ...

    @property
    def membership(self) -> bytes | None:
        """The membership last written (``None`` until one is)."""
        ...

    async def write(self, batch: StoreBatch, *, sync: bool = True) -> None:
        """Apply ``batch`` atomically; with ``sync``, return once it is durable.

        Raises:
            ValueError: the batch is inconsistent with the store (entries not contiguous,
                compaction past the applied index); nothing is written.
            StoreError: the write failed (disk full, I/O error). The store's state is
                unknown; the server must stop rather than acknowledge anything more.
        """
        ...

    def read_entries(self, start: int, stop: int) -> list[bytes]:
        """Encoded entries with ``start <= index < stop``, in order.

        Raises:
            ValueError: the range is not within ``[first_index, last_index + 1]``.
            StoreCorruptedError: an entry failed its checksum.
        """
        ...

    def iter_nodes(self) -> Iterator[tuple[str, bytes]]:
        """Every znode record, parents before children (sorted by path).

        Raises:
            StoreCorruptedError: a record failed its checksum.
        """
        ...

    def iter_sessions(self) -> Iterator[tuple[int, bytes]]:
        """Every session record.

        Raises:
            StoreCorruptedError: a record failed its checksum.
        """
        ...

    async def copy_to(self, path: Path, progress: Callable[[int], None] | None = None) -> None:
        """Write a consistent point-in-time copy of the store into the new directory
        ``path``, usable as another server's ``data_dir``; ``progress`` gets bytes copied.

        Raises:
            StoreError: the backend cannot copy (e.g. ``memory``) or the copy failed.
        """
        ...

    async def close(self) -> None:
        """Flush and release the store (and its directory lock). Idempotent."""
        ...


@runtime_checkable
class StorageBackend(Protocol):
    """A named factory of log stores (what ``coord_storage_backends`` returns)."""

    #: The name ``ServerConfig.storage`` selects it by (``"rocksdb"``, ``"memory"``, ...).
    name: str

    def open(self, config: ServerConfig) -> LogStore:
        """Open (creating if needed) the store in ``config.data_dir``, locking it.

        Raises:
            StoreLockedError: another server holds the directory.
            StoreCorruptedError: the store's metadata is damaged.
            StoreError: the store cannot be opened (the message says why).
        """
        ...

"""Built-in plugin: the ``memory`` storage backend, for tests and throwaway servers.

Nothing survives a restart. The store keeps only the newest entries (the data tree, not the
log, holds the state; the tail is kept for inspection and catching up recent changes).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio.lowlevel

from coord.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from coord.server._apply import Entry
    from coord.server._config import ServerConfig
    from coord.server._storage import StorageBackend

__all__ = ["MemoryBackend", "MemoryStore", "coord_storage_backends"]


class MemoryStore:
    """A :class:`~coord.server._storage.LogStore` in memory, bounded to its newest entries.

    Args:
        retain: how many of the newest entries to keep.
    """

    def __init__(self, *, retain: int = 10_000) -> None:
        if retain < 1:
            raise ValueError(f"retain must be positive, not {retain}")
        self._entries: deque[Entry] = deque(maxlen=retain)
        self._last_zxid = 0
        self._closed = False

    @property
    def last_zxid(self) -> int:
        """The zxid of the newest appended entry; 0 while empty."""
        return self._last_zxid

    @property
    def entries(self) -> tuple[Entry, ...]:
        """The retained entries, oldest first."""
        return tuple(self._entries)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries``; "durable" at once (for the life of the process).

        Raises:
            ValueError: the zxids are not strictly increasing past :attr:`last_zxid`.
            RuntimeError: the store is closed.
        """
        await anyio.lowlevel.checkpoint()
        if self._closed:
            raise RuntimeError("append to a closed MemoryStore")
        last = self._last_zxid
        for entry in entries:
            if entry.zxid <= last:
                raise ValueError(
                    f"entry zxid {entry.zxid:#x} does not follow {last:#x}; log zxids must "
                    "strictly increase"
                )
            last = entry.zxid
        self._entries.extend(entries)
        self._last_zxid = last

    async def close(self) -> None:
        """Mark the store closed (the entries stay readable). Idempotent."""
        self._closed = True


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

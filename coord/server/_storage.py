"""What a storage backend plugin provides: a :class:`StorageBackend` that opens a
:class:`LogStore`.

The log store is deliberately narrow (CONVENTIONS.md item 2): the server hands it batches of
committed-order entries and awaits durability; everything else (the tree, sessions, watches)
is rebuilt by applying entries. Backends are registered through the ``coord_storage_backends``
hook (:mod:`coord.plugins.hookspecs`); the built-in ``memory`` backend lives in
:mod:`coord.plugins.builtin.memory_store`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._apply import Entry
    from ._config import ServerConfig

__all__ = ["LogStore", "StorageBackend"]


@runtime_checkable
class LogStore(Protocol):
    """An append-only, durable sequence of log entries, ordered by zxid.

    Used from one task at a time; a backend need not make concurrent calls safe.
    """

    @property
    def last_zxid(self) -> int:
        """The zxid of the newest appended entry; 0 while the store is empty."""
        ...

    async def append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries`` (one group commit) and return once they are durable.

        Args:
            entries: entries with strictly increasing zxids, all above :attr:`last_zxid`.
                An empty sequence is a no-op.

        Raises:
            ValueError: the zxids are not strictly increasing past :attr:`last_zxid`
                (nothing is appended).
            RuntimeError: the store is closed.
            OSError: the entries could not be made durable; the store's state is unknown
                and the server must stop.
        """
        ...

    async def close(self) -> None:
        """Flush and release the store's resources. Idempotent."""
        ...


@runtime_checkable
class StorageBackend(Protocol):
    """A named factory of log stores (what ``coord_storage_backends`` returns)."""

    #: The name ``ServerConfig.storage`` selects it by (``"memory"``, ``"rocksdb"``, ...).
    name: str

    def open(self, config: ServerConfig) -> LogStore:
        """Open (creating if needed) the store for ``config`` (``config.data_dir``).

        Called once at server start-up, before any connection is served; it may block
        on I/O.

        Raises:
            OSError: the store cannot be opened.
        """
        ...

"""The recipes' sync facade: ``with`` and blocking iteration through a SyncClient.

Theory of operation
-------------------
A recipe is built once, on the async client. Given a
:class:`~coord.client.SyncClient`, it keeps it and offers ``with`` (and, for the
watchers, blocking iteration) by running its async methods on the client's event loop
thread with :meth:`SyncClient.run`. Each such call is a task of its own, so only scopes
whose enter and exit share no cancel scope can be entered and left this way
(:class:`SyncContext`); the holds that *are* scopes (Lock, Election, Lease) implement
``with`` on their acquire/release methods instead, and -- since a thread cannot be
cancelled -- report a loss when the body ends.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from coord.client import Client, ClientClosedError, SyncClient

__all__ = ["SyncContext", "SyncIterator", "require_sync", "sync_client"]


def sync_client(client: Client | SyncClient) -> SyncClient | None:
    """The SyncClient a recipe was given, or None for an async client."""
    return client if isinstance(client, SyncClient) else None


def require_sync(sync: SyncClient | None) -> SyncClient:
    """``sync``, or a TypeError saying to use ``async with``."""
    if sync is None:
        raise TypeError("use 'async with' with an async client ('with' needs a SyncClient)")
    return sync


class SyncContext:
    """``with`` for an async context manager built on a SyncClient: its ``__aenter__``
    and ``__aexit__`` run on the client's event loop thread."""

    _sync: SyncClient | None

    def __enter__(self) -> Any:
        return require_sync(self._sync).run(self.__aenter__)  # type: ignore[attr-defined]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        exit_ = self.__aexit__  # type: ignore[attr-defined]
        return require_sync(self._sync).run(exit_, exc_type, exc, tb)  # type: ignore[no-any-return]


class SyncIterator:
    """Blocking iteration over an async iterator built on a SyncClient."""

    _sync: SyncClient | None

    def __iter__(self) -> Self:
        require_sync(self._sync)
        return self

    def __next__(self) -> Any:
        return self._next_blocking(None)

    def _next_blocking(self, timeout: float | None) -> Any:
        try:
            return require_sync(self._sync).run(self.__anext__, timeout=timeout)  # type: ignore[attr-defined]
        except (StopAsyncIteration, ClientClosedError):
            raise StopIteration from None

"""Election: leader election whose leadership is a scope.

Theory of operation
-------------------
The ZooKeeper "Leader Election" recipe on the same ordering as :class:`~coord.recipes.Lock`:
each candidate creates a protected ephemeral-sequential node holding its data; the lowest
node leads; every other candidate watches only its predecessor (no herd). Observers read
the lowest node's data.

Failure semantics (as for Lock; see :mod:`coord.recipes._contender`):

* disconnect (``SUSPENDED``) while leading: the body keeps running until the safe bound
  (last contact + 2/3 of the session timeout), then is cancelled and ``LeadershipLost``
  raised; the servers expire the session at the earliest a third of a session timeout
  later, so two leaders never both believe they lead once the session timeout passed.
* reconnect before the bound: leadership continues.
* session expiry or client closed while leading: body cancelled, ``LeadershipLost``.
* :meth:`Election.resign` inside the body: the body is cancelled and the block exits
  normally; the next candidate takes over.

With a :class:`~coord.client.SyncClient`: ``with election.leadership():`` campaigns, then
runs the body in the caller's thread, which cannot be cancelled: the body should check
:attr:`Election.is_leader`; a loss is reported as ``LeadershipLost`` when it ends. Call
the other methods through ``sync.run`` (``sync.run(election.leader)``).
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

import anyio

from coord.client import Client, SyncClient
from coord.client._paths import join_path
from coord.protocol import NoNodeError
from coord.recipes._contender import Contender, Guard, async_client
from coord.recipes._errors import LeadershipLost
from coord.recipes._facade import require_sync, sync_client
from coord.recipes._ordering import Kind, sort_contenders

__all__ = ["Election"]

_PREFIX = "n_"


class Election:
    """Leader election under ``path``: ``async with election.leadership(): ...``.

    Args:
        client: an async :class:`~coord.client.Client`, or a SyncClient for ``with``.
        path: the election node (created as a container when the server supports it).
        data: this candidate's data, returned by :meth:`leader` while it leads.
    """

    def __init__(self, client: Client | SyncClient, path: str, *, data: bytes = b"") -> None:
        self._sync = sync_client(client)
        self._client = async_client(client)
        self.path = path
        self.data = data
        self._contender: Contender | None = None
        self._guard: Guard | None = None
        self._scope: anyio.CancelScope | None = None
        self._resigned = False

    def __repr__(self) -> str:
        return f"<Election {self.path!r} {'leader' if self.is_leader else 'candidate'}>"

    @property
    def is_leader(self) -> bool:
        """Whether this candidate leads (and has not detected the loss of leadership)."""
        return self._guard is not None and not self._guard.lost

    def leadership(self) -> _Leadership:
        """An async context manager: campaign, then run the body while leader.

        Raises (from ``async with``):
            LeadershipLost: leadership was lost while the body ran (it was cancelled).
            SessionExpiredError: the session was lost while campaigning.
        """
        return _Leadership(self)

    async def leader(self) -> bytes | None:
        """The current leader's data, or None if there is no candidate."""
        while True:
            try:
                names = sort_contenders(await self._client.children(self.path))
            except NoNodeError:
                return None
            if not names:
                return None
            try:
                data, _ = await self._client.get(join_path(self.path, names[0]))
            except NoNodeError:
                continue  # the leader just left; ask again
            return data

    async def wait_leader(self) -> bytes:
        """Wait until there is a leader; return its data."""
        while True:
            stat, appeared = await self._client.exists(self.path, watch=True)
            if stat is None:
                await appeared.wait()
                continue
            try:
                names, changed = await self._client.children(self.path, watch=True)
            except NoNodeError:
                continue
            if names and sort_contenders(names):
                data = await self.leader()
                if data is not None:
                    return data
            await changed.wait()

    async def resign(self) -> None:
        """Stop leading (or campaigning): the body of ``leadership()`` is cancelled and
        the block exits without error."""
        self._resigned = True
        if self._scope is not None:
            self._scope.cancel()
        elif self._contender is not None:
            # Campaigning, or leading in a sync ``with`` (no scope to cancel): stop
            # guarding first, so our own delete is not taken for a loss.
            guard, self._guard = self._guard, None
            if guard is not None:
                guard.stop()
            contender, self._contender = self._contender, None
            await contender.remove()

    async def _campaign(self) -> None:
        if self._contender is not None:
            raise RuntimeError("this Election instance is already campaigning")
        self._resigned = False
        contender = Contender(self._client, self.path, _PREFIX, self.data, Kind.EXCLUSIVE)
        self._contender = contender
        try:
            await contender.create()
            await contender.wait_turn()
            assert contender.node is not None
            guard = Guard(self._client)
            guard.start(contender.node)
            self._guard = guard
            stat, watch = await self._client.exists(contender.node, watch=True)
            if stat is None:
                guard.watch_node_gone()
            else:
                watch.add_callback(guard.watch_node)
        except BaseException:
            await self._step_down()
            raise

    async def _step_down(self) -> bool:
        """Delete our node; return whether leadership was held safely until now."""
        contender, self._contender = self._contender, None
        guard, self._guard = self._guard, None
        lost = False
        if guard is not None:
            guard.stop()
            lost = guard.lost
        if contender is not None:
            await contender.remove()
        return not lost


class _Leadership:
    def __init__(self, election: Election) -> None:
        self._election = election

    async def __aenter__(self) -> Self:
        election = self._election
        await election._campaign()
        assert election._guard is not None
        scope = anyio.CancelScope()
        scope.__enter__()
        election._scope = scope
        election._guard.attach(scope)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        election = self._election
        scope, election._scope = election._scope, None
        assert scope is not None
        swallowed = bool(scope.__exit__(exc_type, exc, tb))
        guard = election._guard
        held = await election._step_down()
        reason = guard.reason if guard is not None else ""
        resigned = election._resigned
        lost = not held or (scope.cancel_called and not resigned)
        cancelled = exc is not None and isinstance(exc, anyio.get_cancelled_exc_class())
        if lost and (exc is None or swallowed or not cancelled):
            raise LeadershipLost(
                f"leadership of {election.path} lost: {reason or 'unknown reason'}"
            ) from exc
        return swallowed

    # --- the sync facade ------------------------------------------------------------------

    def __enter__(self) -> Self:
        election = self._election
        require_sync(election._sync).run(election._campaign)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        election = self._election
        guard = election._guard
        held = require_sync(election._sync).run(election._step_down)
        if not held:
            reason = (guard.reason if guard is not None else "") or "unknown reason"
            raise LeadershipLost(f"leadership of {election.path} lost: {reason}") from exc

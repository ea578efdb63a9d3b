"""Group membership (Curator's ``GroupMember``, kazoo's ``Party``).

Theory of operation
-------------------
A member is an ephemeral node ``<path>/<member_id>`` holding the member's data; the group
node itself is persistent (created on the first join). Membership is the children list of
the group node. :meth:`Group.watch` is a :class:`~coord.recipes.ConfigWatcher` on the
group's subtree, so it sees joins, leaves *and* member data changes, survives reconnects
and misses no change (several changes while disconnected may arrive as one snapshot).

Failure semantics:

* disconnect (``SUSPENDED``): the member node stays (the session is alive on the servers)
  unless the suspension outlasts the session timeout; watchers keep their last snapshot;
* reconnect: nothing changes for a member; watchers catch up;
* session expiry: the servers delete the member node -- the member has left. The body of
  ``join()`` is *not* cancelled (membership is advertisement, not ownership); leaving the
  block then finds no node to delete, and watchers raise
  :class:`~coord.SessionExpiredError`. The client never opens a new session by itself,
  so nothing re-joins on its own: connect again and re-join (what the Munin example's
  ``register.py`` does in a loop).

With a :class:`~coord.client.SyncClient`: ``with group.join("w1"):`` and ``for members
in group.watch():`` (the same semantics; the body of ``join`` runs in the caller's
thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import anyio

from coord.client import Client, ClientClosedError, SyncClient
from coord.client._paths import join_path
from coord.protocol import ConnectionLossError, NoNodeError, SessionExpiredError
from coord.recipes._config_watcher import ConfigWatcher, SnapshotStream
from coord.recipes._contender import async_client
from coord.recipes._facade import SyncContext, sync_client

__all__ = ["Group", "Membership"]


class Group:
    """The members of the group at ``path``.

    Args:
        client: an async :class:`~coord.client.Client`, or a SyncClient for ``with``
            and blocking iteration (call the other methods through ``sync.run``).
        path: the group node (created, persistent, on the first join).
    """

    def __init__(self, client: Client | SyncClient, path: str) -> None:
        self._sync = sync_client(client)
        self._client = async_client(client)
        self.path = path

    def __repr__(self) -> str:
        return f"<Group {self.path!r}>"

    def join(self, member_id: str, data: bytes = b"") -> Membership:
        """An async context manager: be a member (an ephemeral node) while the body runs.

        Raises (from ``async with``):
            NodeExistsError: another session is already a member under that id.
        """
        return Membership(self, member_id, data)

    async def members(self) -> dict[str, bytes]:
        """The current members: member id -> data (empty if the group does not exist)."""
        try:
            names = await self._client.children(self.path)
        except NoNodeError:
            return {}
        result: dict[str, bytes] = {}
        for name in sorted(names):
            try:
                result[name], _ = await self._client.get(join_path(self.path, name))
            except NoNodeError:
                continue  # left meanwhile
        return result

    def watch(self) -> SnapshotStream[dict[str, bytes]]:
        """Membership snapshots (member id -> data): the current one, then one per change.

        An async iterator and an async context manager (which removes the watch on exit);
        with a SyncClient, a blocking iterator and a context manager.

        Raises (from iteration):
            SessionExpiredError: the watching client's session was lost.
        """
        watcher = ConfigWatcher(self._sync or self._client, self.path, recursive=True)
        return SnapshotStream(watcher, self._members)

    def _members(self, snapshot: Mapping[str, bytes]) -> dict[str, bytes]:
        prefix = self.path.rstrip("/") + "/"
        return {
            key[len(prefix) :]: value
            for key, value in sorted(snapshot.items())
            if key.startswith(prefix) and "/" not in key[len(prefix) :]
        }


class Membership(SyncContext):
    """One member of a :class:`Group`, as an async context manager (see :meth:`Group.join`),
    or a context manager when the group was built on a SyncClient."""

    def __init__(self, group: Group, member_id: str, data: bytes) -> None:
        if not member_id or "/" in member_id:
            raise ValueError(f"invalid member id {member_id!r}")
        self._sync = group._sync
        self.group = group
        self.member_id = member_id
        self.data = data
        self.node = join_path(group.path, member_id)
        self._joined = False

    def __repr__(self) -> str:
        return f"<Membership {self.node!r}{' joined' if self._joined else ''}>"

    async def update(self, data: bytes) -> None:
        """Change this member's data (watchers see it)."""
        await self.group._client.set(self.node, data)
        self.data = data

    async def __aenter__(self) -> Membership:
        client = self.group._client
        await client.ensure_path(self.group.path)
        await client.create(self.node, self.data, ephemeral=True)
        self._joined = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._joined = False
        with anyio.CancelScope(shield=True):
            try:
                with anyio.move_on_after(self.group._client.session_timeout):
                    await self.group._client.delete(self.node)
            except (NoNodeError, SessionExpiredError, ConnectionLossError, ClientClosedError):
                pass  # gone with the session already, or will be when it expires

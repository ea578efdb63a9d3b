"""The machinery shared by Lock and Election: one contender node, waiting, and the hold scope.

Theory of operation
-------------------
A :class:`Contender` owns one ephemeral-sequential node under the recipe's path. Its name
is protected by a prefix ``_c_<uuid>-`` that the contender chooses itself (it creates with
``protected=False`` and does the protected retry here), so that it can always find its
node again -- after a create whose reply was lost, and after a create that was
*cancelled* while in flight. Cleanup therefore never leaks a node (kazoo#732,
aiozk#34): it lists the children for the prefix and deletes what it finds.

A create whose reply was lost may also be applied *late*: the server read the request just
before the connection died and applies it after the new connection's lookup (seen with
Apache ZooKeeper and coord under aggressive cuts), leaving a second node with our prefix.
So after a lost reply the contender waits :data:`SETTLE` seconds before looking, and
cleanup after such a create deletes every node with our prefix, not only the first.

Cleanup runs shielded. If the connection is suspended at that moment, the delete waits
for the reconnection, for at most the session timeout: by then either it succeeded, or the
client could not reach any server for a whole session timeout, the session is expired
on the servers and the node with it.

Waiting uses :func:`~coord.recipes._ordering.decide`: list the children, decide, and if
not holding, set an ``exists`` watch on the one predecessor it names and wait for it.

A :class:`Guard` watches what is held: the client's state and the node itself.

* ``LOST`` or ``CLOSED``: lost at once.
* ``SUSPENDED``: lost when the suspension outlasts the *safe bound*, a deadline of
  ``last contact with a server + 2/3 of the session timeout``. The servers expire the
  session no earlier than a session timeout after they last heard from the client, which
  was no earlier than the client last heard from them (minus a round trip), so the holder
  gives up at least a third of a session timeout before anyone else can be granted the
  lock. A reconnection before the deadline keeps the hold; one after it does not (the
  hold is already given up).
* the node deleted by someone else while held: lost at once.

In ``async with``, the guard cancels a cancel scope around the body (the deadline is the
scope's deadline, so no task is needed); the recipe turns that cancellation into its
loss exception.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid

import anyio

from coord.client import (
    Client,
    ClientClosedError,
    ConnectionState,
    EventType,
    SyncClient,
    WatchedEvent,
)
from coord.client._paths import join_path, parent_path
from coord.protocol import (
    ConnectionLossError,
    CoordError,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
    UnimplementedError,
)
from coord.recipes._ordering import Decision, Kind, decide, sort_contenders

__all__ = ["SUSPENDED_FRACTION", "Contender", "Guard", "async_client"]

log = logging.getLogger("coord.recipes")

SUSPENDED_FRACTION = 2 / 3
"""A hold survives a suspension until ``last contact + SUSPENDED_FRACTION * session_timeout``."""

_UNKNOWN_OUTCOME = (ConnectionLossError, OperationTimeoutError)

SETTLE = 0.25
"""Seconds to wait after a lost create reply before looking for the node (see above)."""


def async_client(client: Client | SyncClient) -> Client:
    """The async client behind ``client``."""
    return client.client if isinstance(client, SyncClient) else client


def _last_contact(client: Client) -> float:
    """When the client last heard from a server (anyio clock)."""
    return client.last_contact


class Guard:
    """Tracks whether a held node is still safely held; optionally cancels a scope."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.lost = False
        self.reason = ""
        self._deadline = math.inf
        self._scope: anyio.CancelScope | None = None
        self._node: str | None = None
        self._active = False

    def start(self, node: str) -> None:
        """Begin guarding ``node`` (call in the event loop)."""
        self._node = node
        self._active = True
        self._client.add_listener(self._on_state)
        state = self._client.state
        if state is not None:
            self._on_state(state)

    def watch_node(self, watch_event: WatchedEvent) -> None:
        """The callback of an ``exists`` watch on the held node."""
        if not self._active:
            return
        if watch_event.type is EventType.NODE_DELETED:
            self._lose("the node was deleted by someone else")
        elif watch_event.type is EventType.NONE:
            self._lose("the session ended")

    def watch_node_gone(self) -> None:
        """The held node was found missing."""
        self._lose("the node is gone")

    def attach(self, scope: anyio.CancelScope) -> None:
        """Cancel ``scope`` when the hold is lost (deadline on suspension)."""
        self._scope = scope
        if self.lost:
            scope.cancel()
        else:
            scope.deadline = self._deadline

    def stop(self) -> None:
        """Stop guarding (before releasing); returns whether the hold was lost."""
        if self._active and not self.lost and self._deadline <= anyio.current_time():
            self._lose("the connection stayed suspended past the safe bound")
        self._active = False
        self._scope = None
        with contextlib.suppress(ValueError):
            self._client.remove_listener(self._on_state)

    def _lose(self, reason: str) -> None:
        if self.lost:
            return
        self.lost = True
        self.reason = reason
        log.warning("hold of %s lost: %s", self._node, reason)
        if self._scope is not None:
            self._scope.cancel()

    def _on_state(self, state: ConnectionState) -> None:
        if not self._active:
            return
        if state.is_final:
            self._lose(f"the session ended ({state.value})")
        elif state is ConnectionState.SUSPENDED:
            timeout = self._client.session_timeout
            self._deadline = _last_contact(self._client) + SUSPENDED_FRACTION * timeout
            if self._scope is not None:
                self._scope.deadline = self._deadline
        elif state.is_connected:
            if self._deadline <= anyio.current_time():
                self._lose("the connection stayed suspended past the safe bound")
            self._deadline = math.inf
            if self._scope is not None and not self.lost:
                self._scope.deadline = math.inf


class Contender:
    """One protected ephemeral-sequential node under ``path`` and the wait for its turn."""

    def __init__(
        self,
        client: Client,
        path: str,
        prefix: str,
        data: bytes,
        kind: Kind = Kind.EXCLUSIVE,
        *,
        leases: int = 1,
    ) -> None:
        self.client = client
        self.path = path
        self.prefix = prefix
        self.data = data
        self.kind = kind
        self.leases = leases
        self._protect = f"_c_{uuid.uuid4()}-"
        self._ambiguous = False  # a create's reply was lost: copies may exist
        self.node: str | None = None
        self.czxid = 0

    @property
    def name(self) -> str:
        """The node's name (its last path component)."""
        assert self.node is not None
        return self.node.rsplit("/", 1)[1]

    async def create(self) -> None:
        """Create the node (and the recipe's path, as a container if possible)."""
        base = join_path(self.path, self._protect + self.prefix)
        while True:
            try:
                node, stat = await self.client.create_with_stat(
                    base, self.data, ephemeral=True, sequential=True, protected=False
                )
            except NoNodeError:
                await self._ensure_path()
                continue
            except _UNKNOWN_OUTCOME:
                self._ambiguous = True
                await self.client.wait_connected()
                await anyio.sleep(SETTLE)
                found = await self.find()
                if found is None:
                    continue
                found_stat = await self.client.exists(found)
                if found_stat is None:
                    continue
                node, stat = found, found_stat
            self.node, self.czxid = node, stat.czxid
            return

    async def _ensure_path(self) -> None:
        parent = parent_path(self.path)
        if parent != "/":
            await self.client.ensure_path(parent)
        try:
            await self.client.create(self.path, container=True)
        except NodeExistsError:
            pass
        except UnimplementedError:  # a server without containers (ZooKeeper < 3.5)
            with contextlib.suppress(NodeExistsError):
                await self.client.create(self.path)

    async def find(self) -> str | None:
        """Our node's path, found by its protection prefix, or None."""
        found = await self.find_all()
        return found[0] if found else None

    async def find_all(self) -> list[str]:
        """Every node with our protection prefix (more than one only after a late
        create), lowest sequence first."""
        try:
            names = await self.client.children(self.path)
        except NoNodeError:
            return []
        mine = sort_contenders([n for n in names if n.startswith(self._protect)])
        return [join_path(self.path, name) for name in mine]

    async def check(self) -> Decision:
        """List the children and decide.

        Raises:
            SessionExpiredError: our node is gone (the session was lost).
        """
        assert self.node is not None
        children = await self.client.children(self.path)
        try:
            return decide(children, self.name, self.kind, leases=self.leases)
        except ValueError:
            raise SessionExpiredError("the contender node is gone", path=self.node) from None

    async def wait_turn(self) -> None:
        """Wait until :meth:`check` says we hold it, watching one predecessor at a time."""
        while True:
            decision = await self.check()
            if decision.holds:
                return
            assert decision.watch is not None
            stat, watch = await self.client.exists(join_path(self.path, decision.watch), watch=True)
            if stat is not None:
                await watch.wait()

    async def contenders(self) -> list[str]:
        """The contender names under the path, in order."""
        try:
            return sort_contenders(await self.client.children(self.path))
        except NoNodeError:
            return []

    async def remove(self, *, strict: bool = False) -> None:
        """Delete our node, shielded from cancellation and bounded by the session timeout.

        Args:
            strict: raise unexpected errors (the node is then still ours) instead of
                logging them.
        """
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self.client.session_timeout) as scope:
                try:
                    node = self.node if self.node is not None else await self.find()
                    if node is not None:
                        await self.client.delete(node)
                    if self._ambiguous:  # late copies of our node
                        for extra in await self.find_all():
                            await self.client.delete(extra)
                except (NoNodeError, SessionExpiredError, ClientClosedError):
                    pass
                except CoordError:
                    if strict:
                        raise
                    log.exception("could not delete contender node under %s", self.path)
                    return
            if scope.cancelled_caught:
                log.warning(
                    "could not delete %s within the session timeout; the session's "
                    "expiry removes it",
                    self.node or self.path,
                )
        self.node = None

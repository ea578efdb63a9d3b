"""ServiceRegistry: register service instances, discover them, watch them.

Theory of operation
-------------------
Curator's ``ServiceDiscovery`` layout: an instance is an ephemeral node
``<root>/<service>/<instance id>`` (``root`` is ``/services``) whose data is JSON
``{"address": ..., "metadata": {...}}``. The id is a fresh UUID unless given. Discovery
lists a service's children; watching is a :class:`~coord.recipes.ConfigWatcher` on the
service's subtree (or on the whole root, for every service at once), so it survives
reconnects and misses no change. Nodes whose data is not such JSON are skipped.

Failure semantics:

* disconnect (``SUSPENDED``): a registered instance stays registered (its session is alive
  on the servers) unless the suspension outlasts the session timeout; watchers keep their
  last list;
* reconnect: nothing changes; watchers catch up;
* session expiry: the servers delete the instance node -- the instance is no longer
  advertised. The body of ``register()`` is not cancelled; watchers raise
  :class:`~coord.SessionExpiredError`. The client never opens a new session by itself,
  so nothing is re-registered on its own: connect again and register again (the Munin
  example's ``register.py`` does so in a loop).

With a :class:`~coord.client.SyncClient`: ``with registry.register(...) as instance:``
and ``for instances in registry.watch("www"):``, with the same semantics.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio

from coord.client import Client, ClientClosedError, SyncClient
from coord.client._paths import join_path
from coord.protocol import ConnectionLossError, NoNodeError, SessionExpiredError
from coord.recipes._config_watcher import ConfigWatcher, SnapshotStream
from coord.recipes._contender import async_client
from coord.recipes._facade import SyncContext, sync_client

__all__ = ["Instance", "Registration", "ServiceRegistry"]

log = logging.getLogger("coord.recipes")

DEFAULT_ROOT = "/services"


@dataclass(frozen=True, slots=True)
class Instance:
    """One registered instance of a service."""

    service: str
    id: str
    address: str
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def encode(self) -> bytes:
        """The node's data."""
        return json.dumps(
            {"address": self.address, "metadata": dict(self.metadata)}, sort_keys=True
        ).encode()

    @classmethod
    def decode(cls, service: str, instance_id: str, data: bytes) -> Instance | None:
        """The instance a node's data describes, or None if it is not one."""
        try:
            fields = json.loads(data)
            address = fields["address"]
            metadata = fields.get("metadata") or {}
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(address, str) or not isinstance(metadata, dict):
            return None
        return cls(service, instance_id, address, metadata)


def _sort_key(instance: Instance) -> tuple[str, str, str]:
    return (instance.service, instance.address, instance.id)


def _valid_name(kind: str, name: str) -> str:
    if not name or "/" in name:
        raise ValueError(f"invalid {kind} {name!r}")
    return name


class ServiceRegistry:
    """Service instances under ``root`` (``/services/<service>/<instance id>``).

    Args:
        client: an async :class:`~coord.client.Client`, or a SyncClient for ``with`` and
            blocking iteration (call the other methods through ``sync.run``).
        root: the registry's root node.
    """

    def __init__(self, client: Client | SyncClient, *, root: str = DEFAULT_ROOT) -> None:
        self._sync = sync_client(client)
        self._client = async_client(client)
        self.root = root

    def __repr__(self) -> str:
        return f"<ServiceRegistry {self.root!r}>"

    def register(
        self,
        service: str,
        address: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        instance_id: str | None = None,
    ) -> Registration:
        """An async context manager: advertise an instance while the body runs.

        ``async with registry.register("www", "10.0.0.7:80") as instance:``

        Raises (from ``async with``):
            NodeExistsError: another session registered that ``instance_id``.
        """
        instance = Instance(
            _valid_name("service", service),
            _valid_name("instance id", instance_id or uuid.uuid4().hex),
            address,
            dict(metadata or {}),
        )
        return Registration(self, instance)

    async def services(self) -> list[str]:
        """The names of the services that have (or had) instances."""
        try:
            return sorted(await self._client.children(self.root))
        except NoNodeError:
            return []

    async def discover(self, service: str) -> list[Instance]:
        """The registered instances of ``service``, sorted by address."""
        path = join_path(self.root, _valid_name("service", service))
        try:
            names = await self._client.children(path)
        except NoNodeError:
            return []
        instances = []
        for name in names:
            try:
                data, _ = await self._client.get(join_path(path, name))
            except NoNodeError:
                continue
            instance = Instance.decode(service, name, data)
            if instance is not None:
                instances.append(instance)
        return sorted(instances, key=_sort_key)

    def watch(self, service: str) -> SnapshotStream[list[Instance]]:
        """The instances of ``service``: the current list, then one per change.

        An async iterator and an async context manager (which removes the watch on exit).

        Raises (from iteration):
            SessionExpiredError: the watching client's session was lost.
        """
        path = join_path(self.root, _valid_name("service", service))

        def convert(snapshot: Mapping[str, bytes]) -> list[Instance]:
            return self._parse(snapshot).get(service, [])

        return SnapshotStream(
            ConfigWatcher(self._sync or self._client, path, recursive=True), convert
        )

    def watch_all(self) -> SnapshotStream[dict[str, list[Instance]]]:
        """Every service's instances (service -> instances, services without instances
        left out): the current state, then one per change. See :meth:`watch`."""
        watcher = ConfigWatcher(self._sync or self._client, self.root, recursive=True)
        return SnapshotStream(watcher, self._parse)

    def _parse(self, snapshot: Mapping[str, bytes]) -> dict[str, list[Instance]]:
        prefix = self.root.rstrip("/") + "/"
        services: dict[str, list[Instance]] = {}
        for path, data in snapshot.items():
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            if len(parts) != 2:
                continue
            instance = Instance.decode(parts[0], parts[1], data)
            if instance is None:
                log.debug("skipping %s: not a service instance", path)
                continue
            services.setdefault(parts[0], []).append(instance)
        return {name: sorted(found, key=_sort_key) for name, found in sorted(services.items())}


class Registration(SyncContext):
    """A registered instance, as an async context manager (see
    :meth:`ServiceRegistry.register`), or a context manager on a SyncClient."""

    def __init__(self, registry: ServiceRegistry, instance: Instance) -> None:
        self._sync = registry._sync
        self.registry = registry
        self.instance = instance
        self.node = join_path(join_path(registry.root, instance.service), instance.id)

    def __repr__(self) -> str:
        return f"<Registration {self.node!r} {self.instance.address!r}>"

    async def __aenter__(self) -> Instance:
        client = self.registry._client
        await client.ensure_path(join_path(self.registry.root, self.instance.service))
        await client.create(self.node, self.instance.encode(), ephemeral=True)
        return self.instance

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client = self.registry._client
        with anyio.CancelScope(shield=True):
            try:
                with anyio.move_on_after(client.session_timeout):
                    await client.delete(self.node)
            except (NoNodeError, SessionExpiredError, ConnectionLossError, ClientClosedError):
                pass  # gone with the session already, or will be when it expires

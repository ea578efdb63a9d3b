"""ServiceRegistry against coord and Apache ZooKeeper, under asyncio and trio."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import coord
from coord.recipes import Instance, ServiceRegistry

pytestmark = pytest.mark.anyio


def test_Instance_round_trips_through_node_data() -> None:
    """An instance's node data decodes to the same instance; junk decodes to None."""
    instance = Instance("www", "id1", "10.0.0.1:80", {"weight": 3})
    assert Instance.decode("www", "id1", instance.encode()) == instance
    assert Instance.decode("www", "id1", b"not json") is None
    assert Instance.decode("www", "id1", b'{"metadata": {}}') is None


async def test_ServiceRegistry_register_discover_and_leave(target: Any, root: str) -> None:
    """An instance is discoverable with its address and metadata while registered."""
    async with coord.connect(target.address) as a, coord.connect(target.address) as b:
        registry = ServiceRegistry(a, root=f"{root}/services")
        assert await registry.discover("www") == []
        async with ServiceRegistry(b, root=f"{root}/services").register(
            "www", "10.0.0.2:80", {"zone": "eu"}, instance_id="b"
        ) as instance:
            assert instance.service == "www" and instance.id == "b"
            assert await registry.discover("www") == [instance]
            assert await registry.services() == ["www"]
        assert await registry.discover("www") == []


async def test_ServiceRegistry_watch_follows_instances(target: Any, root: str) -> None:
    """watch(service) yields the instance list now and after each change; watch_all() too."""
    services = f"{root}/services"
    async with coord.connect(target.address) as watcher, coord.connect(target.address) as m:
        registry, other = ServiceRegistry(watcher, root=services), ServiceRegistry(m, root=services)
        with anyio.fail_after(20):
            async with registry.watch("www") as www, registry.watch_all() as everything:
                assert await www.__anext__() == []
                assert await everything.__anext__() == {}
                async with other.register("www", "h1:80") as one:
                    assert await www.__anext__() == [one]
                    assert await everything.__anext__() == {"www": [one]}
                    async with other.register("db", "h2:5432") as db:
                        assert await everything.__anext__() == {"db": [db], "www": [one]}
                    assert await everything.__anext__() == {"www": [one]}
                assert await www.__anext__() == []
                assert await everything.__anext__() == {}

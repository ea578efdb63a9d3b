"""Shared fixtures: an in-process coord server, Apache ZooKeeper, and differential targets.

Differential tests take the ``target`` fixture, parametrised over ``coord`` and
``zookeeper``: the same test function runs against both servers and asserts the same
results. Apache ZooKeeper is started once per test session; tests use the ``root`` fixture
(a fresh path per test) so they never see each other's nodes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from coord.testing import ZooKeeperProcess, require_zookeeper
from coord.testing._server import CoordServerThread


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Target:
    """A server under test: which kind, and where."""

    kind: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@pytest.fixture(scope="session")
def zookeeper() -> Iterator[ZooKeeperProcess]:
    """Apache ZooKeeper 3.8 (Debian), one per test session; skipped if not installed."""
    require_zookeeper()
    with ZooKeeperProcess(
        tick_time=500,
        extra_config={"4lw.commands.whitelist": "*"},
        system_properties={"zookeeper.extendedTypesEnabled": "true"},
    ) as zk:
        yield zk


@pytest.fixture(scope="session")
def coord_session_server() -> Iterator[CoordServerThread]:
    """A coord server shared by the differential tests (tick 500 ms, like ``zookeeper``)."""
    with CoordServerThread(tick_time=500, container_check_interval=200) as server:
        yield server


@pytest.fixture
def coord_server() -> Iterator[CoordServerThread]:
    """A fresh coord server for one test."""
    with CoordServerThread(tick_time=500, container_check_interval=200) as server:
        yield server


@pytest.fixture(params=["coord", "zookeeper"])
def target(request: pytest.FixtureRequest) -> Target:
    """The server a differential test runs against."""
    if request.param == "coord":
        server: CoordServerThread = request.getfixturevalue("coord_session_server")
        return Target("coord", server.host, server.port)
    zk: ZooKeeperProcess = request.getfixturevalue("zookeeper")
    return Target("zookeeper", zk.host, zk.port)


@pytest.fixture
def root() -> str:
    """A path no other test uses (not yet created)."""
    return f"/t-{uuid.uuid4().hex[:12]}"

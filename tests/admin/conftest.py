"""Fixtures for the admin endpoint tests: a standalone server with its admin port open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from coord.testing._server import CoordServerThread


@pytest.fixture
def server() -> Iterator[CoordServerThread]:
    """A standalone server (memory store) with ``admin_port=0``."""
    with CoordServerThread(admin_port=0) as running:
        yield running


@pytest.fixture
def zk(server: CoordServerThread) -> Iterator[KazooClient]:
    client = KazooClient(hosts=server.address, timeout=5)
    client.start(timeout=10)
    try:
        yield client
    finally:
        client.stop()
        client.close()

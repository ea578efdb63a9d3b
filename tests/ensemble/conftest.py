"""Fixtures for ensemble tests: real member processes on 127.0.0.1, kazoo clients."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest
from ensemble_support import FAST
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from coord.testing._ensemble import CoordEnsemble

logging.getLogger("kazoo").setLevel(logging.CRITICAL)


@pytest.fixture(scope="module")
def shared_ensemble() -> Iterator[CoordEnsemble]:
    """One 3-member ensemble for a module's tests that do not break it."""
    with CoordEnsemble(3, config=FAST, proxies=False) as ensemble:
        yield ensemble


@pytest.fixture
def ensemble() -> Iterator[CoordEnsemble]:
    """A fresh 3-member ensemble (peer links through fault proxies) for one test."""
    with CoordEnsemble(3, config=FAST) as ensemble:
        yield ensemble


@pytest.fixture
def kazoo_factory() -> Iterator[object]:
    """``make(hosts, **kw)`` -> a started KazooClient, stopped after the test."""
    clients: list[KazooClient] = []

    def make(hosts: str, *, timeout: float = 4.0, retry: bool = True) -> KazooClient:
        kw: dict[str, object] = {}
        if retry:
            kw["connection_retry"] = KazooRetry(max_tries=-1, delay=0.05, max_delay=0.25)
            kw["command_retry"] = KazooRetry(max_tries=-1, delay=0.05, max_delay=0.25)
        client = KazooClient(hosts=hosts, timeout=timeout, **kw)
        client.start(timeout=15)
        clients.append(client)
        return client

    yield make
    for client in clients:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()

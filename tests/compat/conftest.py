"""Fixtures of the differential compatibility tests: kazoo clients of the ``target``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from compat_support import kazoo_client
from kazoo.client import KazooClient


@pytest.fixture
def connect(target: Any) -> Iterator[Callable[..., KazooClient]]:
    """A factory of started kazoo clients of ``target``, all stopped after the test."""
    with ExitStack() as stack:

        def make(**kwargs: Any) -> KazooClient:
            return stack.enter_context(kazoo_client(target.address, **kwargs))

        yield make


@pytest.fixture
def zk(connect: Callable[..., KazooClient]) -> KazooClient:
    """A started kazoo client of ``target``."""
    return connect()

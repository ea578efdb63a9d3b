"""A coord server with the HTTP API, shared by the tests of a module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from http_support import Api, http_address

from coord.testing._server import CoordServerThread


@pytest.fixture(scope="module")
def coord_http() -> Iterator[CoordServerThread]:
    with CoordServerThread(http_port=0, http_heartbeat=0.5) as server:
        yield server


@pytest.fixture
def api(coord_http: CoordServerThread) -> Api:
    return Api(*http_address(coord_http.server))


@pytest.fixture
def root(api: Api) -> str:
    """A fresh node per test, so tests never see each other's nodes."""
    path = f"/t-{uuid.uuid4().hex[:12]}"
    assert api.post(f"/v1/node{path}").status == 201
    return path

"""Sessions over the HTTP API: owned sessions for ephemeral nodes, and the pooled ones.

Rules under test: an ephemeral node needs a session the client created (POST
/v1/sessions); it lives while the client sends requests or keep-alives within the
session's timeout and goes when the client deletes the session or lets the timeout pass;
only the identity that created a session may use it; pooled sessions are one per identity,
closed when idle, and bounded by http_max_sessions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from http_support import Api, basic, http_address
from kazoo.client import KazooClient

from coord.plugins.builtin.http_api import HttpApiTransport
from coord.testing._server import CoordServerThread


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _gateway(server: CoordServerThread) -> object:
    (transport,) = [t for t in server.server.transports if isinstance(t, HttpApiTransport)]
    assert transport.api is not None
    return transport.api.gateway


def test_http_api_ephemeral_node_lives_and_dies_with_its_session(
    api: Api, root: str, coord_http: CoordServerThread
) -> None:
    created = api.post("/v1/sessions", {"timeout": 30})
    assert created.status == 201
    token, session_id = created.body["id"], created.body["sessionId"]
    owned = api.with_headers(**{"X-Coord-Session": token})
    node = owned.post(f"/v1/node{root}/e", {"mode": "ephemeral"})
    assert node.status == 201
    assert node.body["stat"]["ephemeralOwner"] == session_id
    seq = owned.post(f"/v1/node{root}/m-", {"mode": "ephemeral", "sequential": True})
    assert seq.body["path"] == f"{root}/m-0000000001"
    kazoo = KazooClient(hosts=coord_http.address, timeout=10)
    kazoo.start(timeout=10)
    try:
        assert kazoo.exists(f"{root}/e").ephemeralOwner == int(session_id, 16)
        assert owned.put(f"/v1/sessions/{token}").body["id"] == token
        assert api.delete(f"/v1/sessions/{token}").status == 204
        assert kazoo.exists(f"{root}/e") is None
        assert kazoo.get_children(root) == []
    finally:
        kazoo.stop()
        kazoo.close()
    gone = owned.get(f"/v1/node{root}")
    assert (gone.status, gone.body["error"]) == (404, "unknown_session")
    assert api.put(f"/v1/sessions/{token}").status == 404


def test_http_api_ephemeral_without_session_is_refused(api: Api, root: str) -> None:
    refused = api.post(f"/v1/node{root}/e", {"mode": "ephemeral"})
    assert (refused.status, refused.body["error"]) == (400, "session_required")
    multi = api.post("/v1/multi", {"ops": [{"op": "create", "path": f"{root}/e",
                                            "mode": "ephemeral"}]})  # fmt: skip
    assert multi.body["error"] == "session_required"
    assert api.get(f"/v1/children{root}").body["children"] == []


def test_http_api_session_expires_without_keep_alive(api: Api, root: str) -> None:
    kept = api.post("/v1/sessions", {"timeout": 1}).body["id"]
    dropped = api.post("/v1/sessions", {"timeout": 1}).body["id"]
    for token, name in ((kept, "kept"), (dropped, "dropped")):
        owned = api.with_headers(**{"X-Coord-Session": token})
        assert owned.post(f"/v1/node{root}/{name}", {"mode": "ephemeral"}).status == 201
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert api.put(f"/v1/sessions/{kept}").status == 200
        time.sleep(0.3)
    _wait_for(lambda: api.get(f"/v1/children{root}").body["children"] == ["kept"])
    assert api.put(f"/v1/sessions/{dropped}").status == 404
    assert api.delete(f"/v1/sessions/{kept}").status == 204


def test_http_api_session_belongs_to_its_creator(api: Api, root: str) -> None:
    alice = api.with_headers(**basic("alice", "pw"))
    token = alice.post("/v1/sessions").body["id"]
    for other in (api, api.with_headers(**basic("alice", "other")),
                  api.with_headers(**basic("mallory", "pw"))):  # fmt: skip
        stolen = other.with_headers(**{"X-Coord-Session": token})
        reply = stolen.post(f"/v1/node{root}/e", {"mode": "ephemeral"})
        assert (reply.status, reply.body["error"]) == (404, "unknown_session")
        assert other.delete(f"/v1/sessions/{token}").status == 404
    mine = alice.with_headers(**{"X-Coord-Session": token})
    assert mine.post(f"/v1/node{root}/e", {"mode": "ephemeral"}).status == 201
    assert alice.delete(f"/v1/sessions/{token}").status == 204
    for timeout in (0, 5000, "ten", True):
        assert api.post("/v1/sessions", {"timeout": timeout}).status == 400


@pytest.fixture
def small_pool() -> Iterator[CoordServerThread]:
    with CoordServerThread(http_port=0, http_max_sessions=2, http_idle_timeout=0.4) as server:
        yield server


def test_http_api_pool_is_per_identity_bounded_and_reaped(
    small_pool: CoordServerThread,
) -> None:
    api = Api(*http_address(small_pool.server))
    gateway = _gateway(small_pool)

    def sessions() -> int:
        return int(small_pool.call(len, gateway))

    for _ in range(3):
        assert api.get("/v1/whoami").status == 200
    assert sessions() == 1  # one identity, one pooled session
    for user in ("u1", "u2", "u3"):  # the least recently used idle one makes room
        assert api.with_headers(**basic(user, "pw")).get("/v1/whoami").status == 200
        assert sessions() <= 2
    _wait_for(lambda: sessions() == 0)  # idle ones are closed
    first = api.post("/v1/sessions").body["id"]
    second = api.post("/v1/sessions").body["id"]
    full = api.post("/v1/sessions")
    assert (full.status, full.body["error"]) == (503, "too_many_sessions")
    assert full.headers["retry-after"] == "1"
    for token in (first, second):
        assert api.put(f"/v1/sessions/{token}").status == 200
        assert api.delete(f"/v1/sessions/{token}").status == 204


def test_http_api_replaces_a_pooled_session_the_server_expired(
    api: Api, coord_http: CoordServerThread
) -> None:
    gateway: Any = _gateway(coord_http)
    assert api.get("/v1/whoami").status == 200

    def anonymous() -> Any:
        pooled = coord_http.call(lambda: list(gateway.pooled.values()))
        (session,) = [s for s in pooled if s.identity.credentials is None]
        return session

    session = anonymous()
    old = session.client.session_id
    coord_http.call(coord_http.server.expire, old)
    _wait_for(lambda: not session.alive)
    statuses = []
    _wait_for(lambda: statuses.append(api.get("/v1/whoami").status) or statuses[-1] == 200)
    assert set(statuses) <= {200, 503}
    assert anonymous().client.session_id != old

"""The HTTP API's tree endpoints against a real server (coord/server/http_api/).

Rules under test: every endpoint does what ZooKeeper's operation does and answers with the
documented JSON; versions give compare-and-set (409 bad_version); multi is all or nothing
with a result per op; bad input gets a 4xx naming the problem and changes nothing; what is
written over HTTP is what kazoo and coord's SDK read over the client port, and back.
"""

from __future__ import annotations

import base64
from typing import Any

from http_support import Api, b64
from kazoo.client import KazooClient

import coord
from coord.testing._server import CoordServerThread

STAT_FIELDS = {
    "czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
    "ephemeralOwner", "dataLength", "numChildren", "pzxid",
}  # fmt: skip


def _kazoo(server: CoordServerThread) -> KazooClient:
    client = KazooClient(hosts=server.address, timeout=10)
    client.start(timeout=10)
    return client


def test_http_api_get_returns_data_and_stat(api: Api, root: str) -> None:
    created = api.post(f"/v1/node{root}/a", {"data": b64(b"\x00\xffbin")})
    assert created.status == 201
    assert created.headers["location"] == f"/v1/node{root}/a"
    assert created.body["path"] == f"{root}/a"
    reply = api.get(f"/v1/node{root}/a")
    assert reply.status == 200
    assert base64.b64decode(reply.body["data"]) == b"\x00\xffbin"
    assert reply.body["encoding"] == "base64"
    assert set(reply.body["stat"]) == STAT_FIELDS
    assert reply.body["stat"]["dataLength"] == 5
    assert reply.body["stat"]["ephemeralOwner"] == "0x0"
    assert reply.body["stat"] == created.body["stat"]


def test_http_api_utf8_encoding_reads_and_writes_text(api: Api, root: str) -> None:
    assert api.post(f"/v1/node{root}/t?encoding=utf8", {"data": "héllo"}).status == 201
    reply = api.get(f"/v1/node{root}/t?encoding=utf8")
    assert reply.body["data"] == "héllo"
    binary = api.post(f"/v1/node{root}/b", {"data": b64(b"\xff\xfe")})
    assert binary.status == 201
    refused = api.get(f"/v1/node{root}/b?encoding=utf8")
    assert refused.status == 406
    assert refused.body["error"] == "not_utf8"


def test_http_api_stat_only_and_head(api: Api, root: str) -> None:
    reply = api.get(f"/v1/node{root}?stat=1")
    assert reply.status == 200
    assert set(reply.body) == {"path", "stat"}
    assert api.request("HEAD", f"/v1/node{root}").status == 200
    assert api.request("HEAD", f"/v1/node{root}/missing").status == 404
    missing = api.get(f"/v1/node{root}/missing?stat=1")
    assert missing.status == 404
    assert missing.body["zookeeper"] == "NoNode"


def test_http_api_children_names_stats_and_data(api: Api, root: str) -> None:
    for name in ("b", "a", "c"):
        api.post(f"/v1/node{root}/{name}?encoding=utf8", {"data": name * 2})
    names = api.get(f"/v1/children{root}")
    assert names.body["children"] == ["a", "b", "c"]
    assert names.body["stat"]["numChildren"] == 3
    with_data = api.get(f"/v1/children{root}?data=1&encoding=utf8")
    assert [(c["name"], c["data"]) for c in with_data.body["children"]] == [
        ("a", "aa"), ("b", "bb"), ("c", "cc"),
    ]  # fmt: skip
    with_stat = api.get(f"/v1/children{root}?stat=1")
    assert all("data" not in c and c["stat"]["dataLength"] == 2 for c in with_stat.body["children"])
    assert api.get(f"/v1/children{root}/nope").status == 404


def test_http_api_create_modes(api: Api, root: str) -> None:
    seq = [api.post(f"/v1/node{root}/q-", {"sequential": True}).body["path"] for _ in range(2)]
    assert seq == [f"{root}/q-0000000000", f"{root}/q-0000000001"]
    assert api.post(f"/v1/node{root}/", {"sequential": True}).body["path"] == f"{root}/0000000002"
    assert api.post("/v1/node/").body["error"] == "node_exists"
    deep = api.post(f"/v1/node{root}/x/y/z", {"makepath": True})
    assert deep.status == 201
    assert api.get(f"/v1/node{root}/x/y?stat=1").status == 200
    assert api.post(f"/v1/node{root}/p/q").status == 404  # no parent, no makepath
    container = api.post(f"/v1/node{root}/c", {"mode": "container"})
    assert container.status == 201
    ttl = api.post(f"/v1/node{root}/ttl", {"mode": "ttl", "ttl": 60000})
    assert ttl.status == 201
    again = api.post(f"/v1/node{root}/c")
    assert (again.status, again.body["error"], again.body["zookeeper"]) == (
        409, "node_exists", "NodeExists",
    )  # fmt: skip


def test_http_api_set_with_version_is_compare_and_set(api: Api, root: str) -> None:
    first = api.put(f"/v1/node{root}?version=0&encoding=utf8", {"data": "v1"})
    assert first.status == 200
    assert first.body["stat"]["version"] == 1
    stale = api.put(f"/v1/node{root}?version=0&encoding=utf8", {"data": "lost"})
    assert stale.status == 409
    assert stale.body["error"] == "bad_version"
    assert stale.body["zookeeper"] == "BadVersion"
    assert api.get(f"/v1/node{root}?encoding=utf8").body["data"] == "v1"
    assert api.put(f"/v1/node{root}?encoding=utf8", {"data": "any"}).status == 200
    assert api.put(f"/v1/node{root}/missing", {"data": ""}).status == 404


def test_http_api_delete_with_version_and_recursive(api: Api, root: str) -> None:
    api.post(f"/v1/node{root}/a/b/c", {"makepath": True})
    refused = api.delete(f"/v1/node{root}/a")
    assert (refused.status, refused.body["error"]) == (409, "not_empty")
    assert api.delete(f"/v1/node{root}/a/b/c?version=3").body["error"] == "bad_version"
    assert api.delete(f"/v1/node{root}/a/b/c?version=0").status == 204
    assert api.delete(f"/v1/node{root}/a?recursive=1").status == 204
    assert api.get(f"/v1/node{root}/a").status == 404
    assert api.delete(f"/v1/node{root}/a").status == 404


def test_http_api_acl_get_and_set(api: Api, root: str) -> None:
    reply = api.get(f"/v1/acl{root}")
    assert reply.body["acl"] == [{"perms": "rwcda", "scheme": "world", "id": "anyone"}]
    read_only = [{"perms": "r", "scheme": "world", "id": "anyone"}]
    assert api.put(f"/v1/acl{root}?version=5", {"acl": read_only}).body["error"] == "bad_version"
    changed = api.put(f"/v1/acl{root}?version=0", {"acl": read_only})
    assert changed.status == 200
    assert changed.body["stat"]["aversion"] == 1
    assert api.get(f"/v1/acl{root}").body["acl"] == read_only
    denied = api.put(f"/v1/node{root}", {"data": ""})
    assert (denied.status, denied.body["error"], denied.body["zookeeper"]) == (
        403, "no_auth", "NoAuth",
    )  # fmt: skip
    bad = api.put(f"/v1/acl{root}", {"acl": [{"perms": "rx", "scheme": "world", "id": "anyone"}]})
    assert (bad.status, bad.body["error"]) == (400, "invalid_acl")
    unknown = api.put(f"/v1/acl{root}", {"acl": [{"perms": "r", "scheme": "nope", "id": "x"}]})
    assert (unknown.status, unknown.body["error"]) == (400, "invalid_acl")


def test_http_api_multi_is_all_or_nothing(api: Api, root: str) -> None:
    ops: list[dict[str, Any]] = [
        {"op": "create", "path": f"{root}/m1", "data": b64(b"1")},
        {"op": "set", "path": root, "data": b64(b"x"), "version": 7},
        {"op": "create", "path": f"{root}/m2"},
    ]
    failed = api.post("/v1/multi", {"ops": ops})
    assert failed.status == 409
    assert failed.body["error"] == "bad_version"
    assert failed.body["index"] == 1
    assert [r["error"] for r in failed.body["results"]] == ["rolled_back", "bad_version", "not_run"]
    assert api.get(f"/v1/node{root}/m1").status == 404
    ops[1]["version"] = 0
    ops.append({"op": "check", "path": root, "version": 1})
    ops.append({"op": "delete", "path": f"{root}/m2"})
    done = api.post("/v1/multi", {"ops": ops})
    assert done.status == 200
    results = done.body["results"]
    assert [r["op"] for r in results] == ["create", "set", "create", "check", "delete"]
    assert results[0]["path"] == f"{root}/m1"
    assert results[1]["stat"]["version"] == 1
    assert api.get(f"/v1/children{root}").body["children"] == ["m1"]


def test_http_api_sync_and_whoami(api: Api, root: str) -> None:
    assert api.post(f"/v1/sync{root}").body == {"path": root}
    assert api.get("/v1/whoami").body == {"identities": [{"scheme": "ip", "id": "127.0.0.1"}]}


def test_http_api_bad_input_changes_nothing(api: Api, root: str, coord_http: Any) -> None:
    before = api.get(f"/v1/node{root}").body
    for url, body in (
        (f"/v1/node{root}/bad//path", {}),
        (f"/v1/node{root}/dot/..", {}),
        (f"/v1/node{root}/x", {"data": "not base64!"}),
        (f"/v1/node{root}/x", {"mode": "weird"}),
        (f"/v1/node{root}/x", {"mode": "ttl"}),
        (f"/v1/node{root}/x", {"unknown": 1}),
        (f"/v1/node{root}/x", ["not", "an", "object"]),
        (f"/v1/node{root}/x?encoding=rot13", {}),
        ("/v1/multi", {"ops": [{"op": "create", "path": f"{root}/x"}, {"op": "fly"}]}),
        ("/v1/multi", {"ops": []}),
    ):
        reply = api.post(url, body)
        assert reply.status == 400, (url, body, reply.body)
        assert reply.body["message"]
    assert api.post(f"/v1/node{root}/x", raw=b"{not json").status == 400
    assert api.put(f"/v1/node{root}?version=abc", {"data": ""}).status == 400
    huge = api.post(f"/v1/node{root}/x", {"data": b64(b"x" * 1_048_000)})  # > max_frame
    assert (huge.status, huge.body["error"]) == (413, "too_large")
    conn = api.connection()  # a body over the HTTP limit is refused before it is read
    conn.putrequest("POST", f"/v1/node{root}/x")
    conn.putheader("Content-Length", "2000000")
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert api.get(f"/v1/children{root}").body["children"] == []
    assert api.get(f"/v1/node{root}").body == before
    surrogate = api.post(f"/v1/node{root}/x?encoding=utf8", raw=b'{"data": "\\ud800"}')
    assert (surrogate.status, surrogate.body["error"]) == (400, "bad_data")
    bad_op = api.post("/v1/multi", raw=b'{"ops": [{"op": "create", "path": "/\\udfff"}]}')
    assert (bad_op.status, bad_op.body["error"]) == (400, "bad_path")
    assert api.get("/v1/nowhere").status == 404
    assert api.request("PATCH", f"/v1/node{root}").status == 405


def test_http_api_writes_are_visible_to_kazoo_and_back(
    api: Api, root: str, coord_http: CoordServerThread
) -> None:
    kazoo = _kazoo(coord_http)
    try:
        api.post(f"/v1/node{root}/from-http?encoding=utf8", {"data": "hello"})
        data, stat = kazoo.get(f"{root}/from-http")
        assert data == b"hello"
        kazoo.create(f"{root}/from-kazoo", b"\x01\x02")
        kazoo.set(f"{root}/from-http", b"changed")
        reply = api.get(f"/v1/node{root}/from-kazoo")
        assert base64.b64decode(reply.body["data"]) == b"\x01\x02"
        changed = api.get(f"/v1/node{root}/from-http?encoding=utf8")
        assert changed.body["data"] == "changed"
        assert changed.body["stat"]["version"] == stat.version + 1
        assert changed.body["stat"]["mzxid"] == kazoo.exists(f"{root}/from-http").mzxid
    finally:
        kazoo.stop()
        kazoo.close()


def test_http_api_and_the_sdk_see_each_other(
    api: Api, root: str, coord_http: CoordServerThread
) -> None:
    with coord.connect_sync(coord_http.address) as client:
        client.create(f"{root}/sdk", b"from-sdk")
        assert api.get(f"/v1/node{root}/sdk?encoding=utf8").body["data"] == "from-sdk"
        api.post("/v1/multi", {"ops": [{"op": "set", "path": f"{root}/sdk", "data": b64(b"x")},
                                       {"op": "create", "path": f"{root}/more"}]})  # fmt: skip
        assert client.get(f"{root}/sdk")[0] == b"x"
        assert sorted(client.children(root)) == ["more", "sdk"]

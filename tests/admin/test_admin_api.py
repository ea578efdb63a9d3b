"""The web page's JSON: the tree, a node's data/Stat/ACL, the ensemble -- within ACLs."""

from __future__ import annotations

import json

from admin_support import get, get_json
from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

from coord.server._admin import MAX_DATA
from coord.testing._server import CoordServerThread


def test_tree_lists_children_with_the_stat(server: CoordServerThread, zk: KazooClient) -> None:
    zk.create("/app/a", b"", makepath=True)
    zk.create("/app/b", b"")
    status, body = get_json(server.admin_address, "/api/tree?path=/app")
    assert status == 200
    assert body["children"] == ["a", "b"]
    assert body["child_counts"] == {"a": 0, "b": 0}
    assert body["stat"]["numChildren"] == 2
    assert body["truncated"] is False


def test_node_shows_json_pretty_printed_and_the_stat_and_acl(
    server: CoordServerThread, zk: KazooClient
) -> None:
    zk.create("/conf", b'{"b":[1,2],"a":"x"}')
    status, body = get_json(server.admin_address, "/api/node?path=/conf")
    assert status == 200
    assert body["authorized"] is True
    assert body["data"]["encoding"] == "json"
    assert json.loads(body["data"]["text"]) == {"b": [1, 2], "a": "x"}
    assert "\n" in body["data"]["text"]
    assert body["stat"]["dataLength"] == 19 and body["stat"]["version"] == 0
    assert body["acl"] == [{"scheme": "world", "id": "anyone", "perms": "rwcda"}]


def test_node_data_as_text_hex_and_truncated(server: CoordServerThread, zk: KazooClient) -> None:
    zk.create("/text", "héllo".encode())
    zk.create("/bin", b"\x00\xff\x10")
    zk.create("/big", b"x" * (MAX_DATA + 10))
    admin = server.admin_address
    text = get_json(admin, "/api/node?path=/text")[1]["data"]
    assert (text["encoding"], text["text"]) == ("text", "héllo")
    binary = get_json(admin, "/api/node?path=/bin")[1]["data"]
    assert (binary["encoding"], binary["text"]) == ("hex", "00 ff 10")
    big = get_json(admin, "/api/node?path=/big")[1]["data"]
    assert big["truncated"] is True and big["size"] == MAX_DATA + 10
    assert len(big["text"]) == MAX_DATA


def test_reads_respect_acls_like_an_unauthenticated_client(
    server: CoordServerThread, zk: KazooClient
) -> None:
    """A node only a digest user may read shows "not authorized" (no data, no Stat, no
    ACL), its children are not listed; with that user's Basic credentials it is shown."""
    acl = make_digest_acl("alice", "secret", all=True)
    zk.create("/private", b"the secret", acl=[acl])
    admin = server.admin_address
    status, body = get_json(admin, "/api/node?path=/private")
    assert status == 200
    assert body["authorized"] is False
    assert body["data"] is None and body["stat"] is None and body["acl"] is None
    assert "the secret" not in json.dumps(body)
    status, body = get_json(admin, "/api/tree?path=/private")
    assert status == 403 and body["error"] == "not_authorized"
    # Listed under its parent, but its own child count is not shown.
    assert get_json(admin, "/api/tree?path=/")[1]["child_counts"]["private"] is None
    status, body = get_json(admin, "/api/node?path=/private", auth=("alice", "wrong"))
    assert body["authorized"] is False
    status, body = get_json(admin, "/api/node?path=/private", auth=("alice", "secret"))
    assert body["authorized"] is True and body["data"]["text"] == "the secret"
    assert body["acl"][0]["scheme"] == "digest"


def test_an_ip_acl_admits_the_browsers_address(server: CoordServerThread, zk: KazooClient) -> None:
    zk.create("/local", b"mine", acl=[make_acl("ip", "127.0.0.1", read=True)])
    zk.create("/remote", b"theirs", acl=[make_acl("ip", "10.9.9.9", read=True)])
    admin = server.admin_address
    assert get_json(admin, "/api/node?path=/local")[1]["data"]["text"] == "mine"
    assert get_json(admin, "/api/node?path=/remote")[1]["authorized"] is False


def test_bad_paths_and_missing_nodes(server: CoordServerThread) -> None:
    admin = server.admin_address
    for bad in ("relative", "/a/", "/a//b", "/a/../b"):
        status, body = get_json(admin, f"/api/node?path={bad}")
        assert status == 400 and body["error"] == "bad_path", bad
        assert get_json(admin, f"/api/tree?path={bad}")[0] == 400
    status, body = get_json(admin, "/api/node?path=/missing")
    assert status == 404 and body["error"] == "no_node"
    status, _ = get_json(admin, "/api/node?path=/x", auth=None)
    assert status == 404
    status, _headers, _ = get(admin, "/api/node?path=/")
    assert status == 200


def test_malformed_basic_credentials_are_400(server: CoordServerThread) -> None:
    import http.client

    host, port = server.admin_address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("GET", "/api/node?path=/", headers={"Authorization": "Basic !!!"})
    assert connection.getresponse().status == 400
    connection.close()


def test_ensemble_view_of_a_standalone_server(server: CoordServerThread) -> None:
    status, body = get_json(server.admin_address, "/api/ensemble")
    assert status == 200
    assert body["mode"] == "standalone" and body["ready"] is True
    assert [m["state"] for m in body["members"]] == ["standalone"]


def test_static_files_are_served_and_nothing_else(server: CoordServerThread) -> None:
    admin = server.admin_address
    status, headers, body = get(admin, "/ui/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"app.js" in body
    status, headers, _ = get(admin, "/ui/app.js")
    assert status == 200 and "javascript" in headers["content-type"]
    assert get(admin, "/ui/../_admin.py")[0] == 404
    assert get(admin, "/ui/nosuch.js")[0] == 404


def test_a_loopback_endpoint_refuses_other_host_names(
    server: CoordServerThread, zk: KazooClient
) -> None:
    """DNS rebinding: a page from evil.example whose name now resolves to 127.0.0.1 makes
    the browser send ``Host: evil.example``; the loopback-bound endpoint refuses it and
    so never reads a znode with this machine's ip identity for that page."""
    zk.create("/local-only", b"trusted", acl=[make_acl("ip", "127.0.0.1", read=True)])
    admin = server.admin_address
    port = admin.rsplit(":", 1)[1]
    for host in (f"evil.example:{port}", "evil.example", f"10.1.2.3:{port}"):
        status, body = get_json(admin, "/api/node?path=/local-only", host_header=host)
        assert (status, body["error"]) == (403, "forbidden_host"), host
        assert "trusted" not in json.dumps(body)
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        status, body = get_json(admin, "/api/node?path=/local-only", host_header=host)
        assert status == 200 and body["data"]["text"] == "trusted", host


def test_an_ephemeral_nodes_owner_is_the_exact_session_id(
    server: CoordServerThread, zk: KazooClient
) -> None:
    """Session ids are 64-bit: sent as a hex string, not a JSON number a browser would
    round."""
    zk.create("/mine", b"", ephemeral=True)
    session_id = zk.client_id[0]
    assert session_id > 2**53
    body = get_json(server.admin_address, "/api/node?path=/mine")[1]
    assert body["stat"]["ephemeralOwner"] == f"0x{session_id:x}"

"""``coord export`` / ``coord import``: subtrees as JSON between coord and Apache ZooKeeper.

The rules under test: export then import gives the same tree (data -- binary and null
included --, ACL, names -- unicode and sequential ones as they are) in both directions;
ephemeral nodes arrive as persistent nodes (or not at all with --skip-ephemeral); ACLs
that would lock the importer out are still applied exactly; an import fails before
writing anything when a node exists, unless --overwrite; 2,000 nodes take well under a
few seconds each way.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl
from tools_support import kazoo, walk

from coord.cli import main
from coord.protocol import ACL, Id, Perm
from coord.testing import ZooKeeperProcess
from coord.testing._server import CoordServerThread
from coord.tools import ToolError, export_tree, import_tree, read_document, write_document
from coord.tools._zkclient import Call, ZkClient, create_call

ADMIN = ("digest", "admin:secret")
OPEN = [ACL(Perm.ALL, Id("world", "anyone"))]


def zk_address(zookeeper: ZooKeeperProcess) -> str:
    return f"{zookeeper.host}:{zookeeper.port}"


def fill(zk: KazooClient, root: str) -> None:
    """A tree with everything a migration must carry (``zk`` authenticated as admin)."""
    zk.create(root, b"root data")
    zk.create(f"{root}/binary", bytes(range(256)) * 4)
    zk.create(f"{root}/ünïcødé-名前", "värde ✓".encode())
    zk.create(f"{root}/ünïcødé-名前/子", b"")
    zk.create(f"{root}/empty", b"")
    # Only admin may do anything here, and it has children: the importer must create
    # them before the ACL shuts it out.
    zk.create(f"{root}/locked", b"admin only", acl=[make_digest_acl("admin", "secret", all=True)])
    zk.create(f"{root}/locked/inner", b"deep", acl=[make_digest_acl("admin", "secret", all=True)])
    # Read-only for the world, with children.
    zk.create(f"{root}/readonly/child/grandchild", b"g", makepath=True)
    zk.set(f"{root}/readonly", b"ro")
    zk.set_acls(f"{root}/readonly", [make_acl("world", "anyone", read=True)])
    for _ in range(3):
        zk.create(f"{root}/queue/item-", b"job", sequence=True, makepath=True)


def relocated(tree: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    return {new + path[len(old) :]: value for path, value in tree.items()}


def test_zookeeper_to_coord_gives_the_same_tree(
    zookeeper: ZooKeeperProcess,
    coord_server: CoordServerThread,
    root: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Data, ACLs and names arrive unchanged; the ephemeral node becomes persistent and
    the file says so."""
    with kazoo(zk_address(zookeeper), auth_data=[ADMIN]) as source:
        fill(source, root)
        source.create(f"{root}/member", b"alive", ephemeral=True)
        expected = walk(source, root, stat=False)
        out = tmp_path / "tree.json"
        argv = ["--server", zk_address(zookeeper), "--auth", "digest:admin:secret"]
        assert main(["export", *argv, "--path", root, "--output", str(out)]) == 0
    assert "(1 ephemeral written as persistent)" in capsys.readouterr().out
    document = json.loads(out.read_text(encoding="utf-8"))
    nodes = {node["path"]: node for node in document["nodes"]}
    assert nodes[f"{root}/member"]["type"] == "persistent"
    assert "ephemeral in the source" in nodes[f"{root}/member"]["note"]
    assert base64.b64decode(nodes[f"{root}/binary"]["data"]) == bytes(range(256)) * 4

    argv = ["--server", coord_server.address, "--auth", "digest:admin:secret"]
    assert main(["import", *argv, "--input", str(out)]) == 0
    assert f"{len(expected)} created, 0 replaced" in capsys.readouterr().out
    with kazoo(coord_server.address, auth_data=[ADMIN]) as dest:
        assert walk(dest, root, stat=False) == expected
        member = dest.exists(f"{root}/member")
        assert member is not None and member.ephemeralOwner == 0


def test_coord_to_zookeeper_gives_the_same_tree(
    zookeeper: ZooKeeperProcess, coord_server: CoordServerThread, root: str, tmp_path: Path
) -> None:
    """The reverse direction, without --auth for the import (the temporary ACL uses the
    importer's ip) and with --skip-ephemeral."""
    with (
        kazoo(coord_server.address, auth_data=[ADMIN]) as source,
        kazoo(coord_server.address) as holder,
    ):
        fill(source, root)
        source.delete(f"{root}/locked", recursive=True)  # unreadable without --auth
        holder.create(f"{root}/member", b"alive", ephemeral=True)
        expected = walk(source, root, stat=False)
        out = tmp_path / "tree.json"
        assert main(["export", "--server", coord_server.address, "--path", root,
                     "--output", str(out), "--skip-ephemeral"]) == 0  # fmt: skip
    del expected[f"{root}/member"]
    assert f'"{root}/member"' not in out.read_text(encoding="utf-8")
    assert main(["import", "--server", zk_address(zookeeper), "--input", str(out)]) == 0
    with kazoo(zk_address(zookeeper)) as dest:
        assert walk(dest, root, stat=False) == expected
        acl, _ = dest.get_acls(f"{root}/readonly")
        assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(1, "world", "anyone")]


def test_export_without_permission_fails_clearly(
    coord_server: CoordServerThread, root: str
) -> None:
    with kazoo(coord_server.address, auth_data=[ADMIN]) as zk:
        fill(zk, root)
    with (
        ZkClient.connect(coord_server.address) as client,
        pytest.raises(
            ToolError, match=rf"not allowed to read {root}/locked .*\(NoAuth\): pass --auth"
        ),
    ):
        export_tree(client, root)


def test_import_refuses_existing_nodes_and_writes_nothing(
    coord_server: CoordServerThread, root: str
) -> None:
    """One clash fails the whole import before any write; --overwrite replaces data and
    ACL of the nodes that exist and creates the others."""
    with kazoo(coord_server.address) as zk:
        zk.create(f"{root}/a/b", b"source", makepath=True)
        zk.create(f"{root}/a/c", b"other")
        with ZkClient.connect(coord_server.address) as client:
            document, _ = export_tree(client, f"{root}/a")
            zk.delete(f"{root}/a/c")
            zk.set(f"{root}/a/b", b"changed")
            with pytest.raises(ToolError, match=r"2 of the 3 nodes already exist .*nothing was"):
                import_tree(client, document)
            assert zk.exists(f"{root}/a/c") is None
            result = import_tree(client, document, overwrite=True)
        assert (result.created, result.updated) == (1, 2)
        assert zk.get(f"{root}/a/b")[0] == b"source"
        assert zk.get(f"{root}/a/c")[0] == b"other"


def test_import_to_another_path_creates_missing_parents(
    coord_server: CoordServerThread, root: str
) -> None:
    with kazoo(coord_server.address) as zk, ZkClient.connect(coord_server.address) as client:
        zk.create(f"{root}/src/x/y", b"y", makepath=True)
        document, _ = export_tree(client, f"{root}/src")
        result = import_tree(client, document, dest=f"{root}/new/place")
        assert (result.created, result.parents) == (3, 1)  # {root} exists, {root}/new not
        assert walk(zk, f"{root}/new/place", stat=False) == relocated(
            walk(zk, f"{root}/src", stat=False), f"{root}/src", f"{root}/new/place"
        )


def test_import_keeps_null_data_and_creates_containers_and_ttl_nodes(
    coord_server: CoordServerThread, root: str
) -> None:
    """The file's ``type`` decides the node kind (the client protocol cannot show it, so
    an export says persistent; an edited file can say container or ttl)."""
    with ZkClient.connect(coord_server.address) as client:
        client.create(root, None, OPEN)
        client.create(f"{root}/c", b"", OPEN)
        client.create(f"{root}/c/child", b"x", OPEN)
        client.create(f"{root}/t", b"t", OPEN)
        document, _ = export_tree(client, root)
        assert document["nodes"][0]["data"] is None
        for node in document["nodes"]:
            if node["path"] == f"{root}/c":
                node["type"] = "container"
            if node["path"] == f"{root}/t":
                node.update(type="ttl", ttl=60_000)
        import_tree(client, document, dest=f"{root}-copy")
        assert client.get_data(f"{root}-copy")[0] is None
    state = coord_server.server.state
    kinds = coord_server.call(lambda: (set(state.containers), set(state.ttls)))
    assert kinds == ({f"{root}-copy/c"}, {f"{root}-copy/t"})


def test_export_to_stdout_and_import_from_stdin(
    coord_server: CoordServerThread,
    root: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with kazoo(coord_server.address) as zk:
        zk.create(f"{root}/k", b"v", makepath=True)
    address = coord_server.address
    assert main(["export", "--server", address, "--path", root, "--output", "-"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["root"] == root and "exported 2 nodes" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(out))
    assert main(["import", "--server", address, "--input", "-", "--path", f"{root}2"]) == 0
    with kazoo(address) as zk:
        assert zk.get(f"{root}2/k")[0] == b"v"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "zk-dump"}, "is not a coord export"),
        ({"version": 2}, "has format version 2"),
        ({"nodes": [{"path": "/elsewhere", "acl": []}]}, "not under the root"),
        (
            {
                "nodes": [
                    {
                        "path": "/r/a/b",
                        "data": None,
                        "acl": [{"scheme": "world", "id": "anyone", "perms": "cdrwa"}],
                    }
                ]
            },
            "its parent /r/a is not listed",
        ),
        ({"nodes": [{"path": "/r", "type": "ephemeral", "acl": []}]}, "cannot be imported"),
        ({"nodes": [{"path": "/r", "data": "***", "acl": []}]}, "node /r: "),
        (
            {
                "nodes": [
                    {
                        "path": "/r",
                        "data": "",
                        "acl": [{"scheme": "world", "id": "anyone", "perms": "rwx"}],
                    }
                ]
            },
            "unknown permission 'x'",
        ),
    ],
)
def test_import_rejects_a_malformed_document(change: dict[str, Any], message: str) -> None:
    document = {"format": "coord-tree", "version": 1, "root": "/r", "nodes": []}
    document.update(change)
    text = json.dumps(document)

    class NoServer:
        address = "nowhere"

    with pytest.raises(ToolError, match=message):
        import_tree(NoServer(), read_document(io.StringIO(text)))  # type: ignore[arg-type]


def test_export_and_import_of_2000_nodes_take_well_under_a_few_seconds(
    zookeeper: ZooKeeperProcess, coord_server: CoordServerThread, root: str
) -> None:
    """Pipelined: a level of the tree is one batch, not three round trips per node."""
    with ZkClient.connect(zk_address(zookeeper)) as source:
        calls = [Call(*create_call(root, b"", OPEN), root)]
        for i in range(20):
            parent = f"{root}/group-{i:02d}"
            calls.append(Call(*create_call(parent, b"", OPEN), parent))
            for j in range(99):
                path = f"{parent}/node-{j:03d}"
                calls.append(Call(*create_call(path, b"payload %d" % j, OPEN), path))
        assert not [r for r in source.call_many(calls) if isinstance(r, Exception)]
        started = time.monotonic()
        document, result = export_tree(source, root)
        export_seconds = time.monotonic() - started
    assert result.nodes == 2001
    text = io.StringIO()
    write_document(document, text)
    with ZkClient.connect(coord_server.address) as dest:
        started = time.monotonic()
        imported = import_tree(dest, read_document(io.StringIO(text.getvalue())))
        import_seconds = time.monotonic() - started
        assert imported.created == 2001
        again, _ = export_tree(dest, root)
    assert again["nodes"] == document["nodes"]
    assert export_seconds < 3 and import_seconds < 3, (export_seconds, import_seconds)


def test_export_of_the_whole_tree_leaves_zookeeper_out(root: str) -> None:
    """``--path /`` moves everything but the server's own /zookeeper; the root always
    exists on the destination, so it is no clash (and is replaced only with overwrite)."""
    with CoordServerThread() as source, CoordServerThread() as dest:
        with kazoo(source.address) as zk:
            zk.create(f"{root}/a", b"a", makepath=True)
            zk.set("/", b"root data")
        with ZkClient.connect(source.address) as client:
            document, _ = export_tree(client, "/")
        assert [n["path"] for n in document["nodes"]] == ["/", root, f"{root}/a"]
        with ZkClient.connect(dest.address) as client:
            assert import_tree(client, document).created == 2
            assert client.get_data("/")[0] != b"root data"
            for node in document["nodes"][1:]:
                node["data"] = base64.b64encode(b"new").decode()
            result = import_tree(client, document, overwrite=True)
            assert (result.created, result.updated) == (0, 3)
            assert client.get_data("/")[0] == b"root data"
            assert client.get_data(f"{root}/a")[0] == b"new"

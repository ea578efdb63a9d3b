"""Differential tests of the znode operations: create, get, set, delete, exists, children.

Each test runs against coord and Apache ZooKeeper (the ``target`` fixture) with the same
expectations, which were taken from ZooKeeper 3.8. Zxids and times differ between the
servers, so Stats are compared through their counters and the relations between zxids.
"""

from __future__ import annotations

from typing import Any

import pytest
from compat_support import error_name, stat_shape
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.protocol.serialization import (
    Create,
    Delete,
    Exists,
    GetChildren,
    GetChildren2,
    GetData,
    SetData,
)
from kazoo.security import OPEN_ACL_UNSAFE


def raw(zk: KazooClient, request: Any) -> Any:
    """Send a kazoo request object as is (no client-side path normalisation)."""
    result = zk.handler.async_result()
    zk._call(request, result)
    return result.get(timeout=10)


def shape(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 0,
        "cversion": 0,
        "aversion": 0,
        "ephemeralOwner": 0,
        "dataLength": 0,
        "numChildren": 0,
    }
    base.update(fields)
    return base


# --- create -------------------------------------------------------------------------------


def test_create_persistent_stat(zk: KazooClient, root: str) -> None:
    """A new node has version counters 0 and czxid == mzxid == pzxid, ctime == mtime."""
    assert zk.create(root, b"hello") == root
    data, stat = zk.get(root)
    assert data == b"hello"
    assert stat_shape(stat) == shape(dataLength=5)
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.ctime == stat.mtime
    assert zk.exists(root) == stat


def test_create2_returns_stat(zk: KazooClient, root: str) -> None:
    """create with include_data (Create2) returns the path and the new node's Stat."""
    path, stat = zk.create(root, b"abc", include_data=True)
    assert path == root
    assert stat_shape(stat) == shape(dataLength=3)
    assert zk.exists(root) == stat


def test_create_ephemeral_owner(zk: KazooClient, root: str) -> None:
    """An ephemeral node's ephemeralOwner is the creating session's id."""
    zk.create(root)
    zk.create(root + "/e", ephemeral=True)
    stat = zk.exists(root + "/e")
    assert stat_shape(stat, zk.client_id[0]) == shape(ephemeralOwner="session")


def test_create_ephemeral_gone_when_session_closes(
    connect: Any, zk: KazooClient, root: str
) -> None:
    """Closing a session deletes its ephemeral nodes at once; persistent ones stay."""
    zk.create(root)
    other = connect()
    other.create(root + "/e", ephemeral=True)
    other.create(root + "/p")
    other.stop()
    assert zk.get_children(root) == ["p"]


def test_create_sequential_suffix_from_cversion(zk: KazooClient, root: str) -> None:
    """The suffix is the parent's cversion, 10 digits, shared by every name prefix."""
    zk.create(root)
    assert zk.create(root + "/n-", sequence=True) == root + "/n-0000000000"
    assert zk.create(root + "/n-", sequence=True) == root + "/n-0000000001"
    assert zk.create(root + "/other-", sequence=True) == root + "/other-0000000002"
    zk.create(root + "/plain")  # a plain create bumps cversion too
    assert zk.create(root + "/n-", sequence=True) == root + "/n-0000000004"


def test_create_sequential_numbering_after_deletes(zk: KazooClient, root: str) -> None:
    """Suffixes count child creations only, though a delete bumps the reported cversion.

    ZooKeeper stores the number of creates and reports ``2 * creates - numChildren``.
    """
    zk.create(root)
    first = zk.create(root + "/n", sequence=True)
    second = zk.create(root + "/n", sequence=True)
    third = zk.create(root + "/n", sequence=True)
    zk.delete(second)
    assert zk.exists(root).cversion == 4
    assert zk.create(root + "/n", sequence=True) == root + "/n0000000003"
    zk.delete(first)
    zk.delete(third)
    assert stat_shape(zk.exists(root)) == shape(cversion=7, numChildren=1)
    assert zk.create(root + "/n", sequence=True) == root + "/n0000000004"


def test_create_sequential_trailing_slash(zk: KazooClient, root: str) -> None:
    """A sequential create of ``/parent/`` names the child by its number alone."""
    zk.create(root)
    assert zk.create(root + "/", sequence=True) == root + "/0000000000"
    assert raw(zk, Create(root + "/", b"", OPEN_ACL_UNSAFE, 2)) == root + "/0000000001"


def test_create_ephemeral_sequential(zk: KazooClient, root: str) -> None:
    """Ephemeral sequential nodes get a suffix and the session as owner."""
    zk.create(root)
    path = zk.create(root + "/lock-", ephemeral=True, sequence=True)
    assert path == root + "/lock-0000000000"
    assert zk.exists(path).ephemeralOwner == zk.client_id[0]


def test_create_makepath(zk: KazooClient, root: str) -> None:
    """makepath creates missing ancestors as empty persistent nodes."""
    assert zk.create(root + "/a/b/c", b"leaf", makepath=True) == root + "/a/b/c"
    assert zk.get(root + "/a/b/c")[0] == b"leaf"
    data, stat = zk.get(root + "/a")
    assert data == b""
    assert stat_shape(stat) == shape(cversion=1, numChildren=1)


def test_create_existing_is_node_exists(zk: KazooClient, root: str) -> None:
    """Creating an existing node fails with NodeExists and changes nothing."""
    zk.create(root, b"one")
    with pytest.raises(NodeExistsError):
        zk.create(root, b"two")
    assert zk.get(root)[0] == b"one"


def test_create_missing_parent_is_no_node(zk: KazooClient, root: str) -> None:
    """Creating under a missing parent fails with NoNode."""
    with pytest.raises(NoNodeError):
        zk.create(root + "/a/b")
    with pytest.raises(NoNodeError):
        zk.create(root + "/a/b", ephemeral=True, sequence=True)


def test_create_under_ephemeral_is_no_children_for_ephemerals(zk: KazooClient, root: str) -> None:
    """An ephemeral node cannot have children, whatever their kind."""
    zk.create(root, ephemeral=True)
    for kwargs in ({}, {"ephemeral": True}, {"sequence": True}):
        with pytest.raises(NoChildrenForEphemeralsError):
            zk.create(root + "/child", **kwargs)
    assert zk.exists(root).cversion == 0


def test_create_none_data(zk: KazooClient, root: str) -> None:
    """A node created with null data reads back as None with dataLength 0."""
    zk.create(root, None)
    data, stat = zk.get(root)
    assert data is None
    assert stat.dataLength == 0


# --- paths kazoo would normalise ----------------------------------------------------------

# (suffix appended to root, expected result of create, get, exists, delete, set, children)
# as observed on ZooKeeper 3.8: create validates the parent part first (so a malformed
# parent is NoNode), then the whole path; delete only rejects no "/" or NUL; setData always
# validates; reads never validate (NoNode), except exists, which rejects NUL.
INVALID_PATHS = [
    (
        "//b",
        ("NoNodeError", "NoNodeError", None, "NoNodeError", "BadArgumentsError", "NoNodeError"),
    ),
    (
        "/",
        (
            "BadArgumentsError",
            "NoNodeError",
            None,
            "NoNodeError",
            "BadArgumentsError",
            "NoNodeError",
        ),
    ),
    (
        "/./b",
        ("NoNodeError", "NoNodeError", None, "NoNodeError", "BadArgumentsError", "NoNodeError"),
    ),
    (
        "/../b",
        ("NoNodeError", "NoNodeError", None, "NoNodeError", "BadArgumentsError", "NoNodeError"),
    ),
    (
        "/.",
        (
            "BadArgumentsError",
            "NoNodeError",
            None,
            "NoNodeError",
            "BadArgumentsError",
            "NoNodeError",
        ),
    ),
    (
        "/..",
        (
            "BadArgumentsError",
            "NoNodeError",
            None,
            "NoNodeError",
            "BadArgumentsError",
            "NoNodeError",
        ),
    ),
    (
        "/\u0001",
        (
            "BadArgumentsError",
            "NoNodeError",
            None,
            "NoNodeError",
            "BadArgumentsError",
            "NoNodeError",
        ),
    ),
    (
        "/\u007f",
        (
            "BadArgumentsError",
            "NoNodeError",
            None,
            "NoNodeError",
            "BadArgumentsError",
            "NoNodeError",
        ),
    ),
    (
        "/\u009f",
        (
            "BadArgumentsError",
            "NoNodeError",
            None,
            "NoNodeError",
            "BadArgumentsError",
            "NoNodeError",
        ),
    ),
    (
        "/\uf8ff",
        (
            "BadArgumentsError",
            "NoNodeError",
            None,
            "NoNodeError",
            "BadArgumentsError",
            "NoNodeError",
        ),
    ),
    (
        "/\ufff0",
        (
            "BadArgumentsError",
            "NoNodeError",
            None,
            "NoNodeError",
            "BadArgumentsError",
            "NoNodeError",
        ),
    ),
    (
        "/\u0000",
        (
            "BadArgumentsError",
            "NoNodeError",
            "BadArgumentsError",
            "BadArgumentsError",
            "BadArgumentsError",
            "NoNodeError",
        ),
    ),
]


@pytest.mark.parametrize(
    ("suffix", "expected"), INVALID_PATHS, ids=[repr(p[0]) for p in INVALID_PATHS]
)
def test_path_invalid_errors_match_zookeeper(
    zk: KazooClient, root: str, suffix: str, expected: tuple[str | None, ...]
) -> None:
    """Malformed paths fail with ZooKeeper's error for each operation (see INVALID_PATHS)."""
    zk.create(root)
    path = root + suffix

    def outcome(request: Any) -> str | None:
        try:
            result = raw(zk, request)
        except Exception as exc:
            return type(exc).__name__
        return None if result is None else "ok"

    got = (
        outcome(Create(path, b"", OPEN_ACL_UNSAFE, 0)),
        outcome(GetData(path, None)),
        outcome(Exists(path, None)),
        outcome(Delete(path, -1)),
        outcome(SetData(path, b"", -1)),
        outcome(GetChildren(path, None)),
    )
    assert got == expected
    assert zk.get_children(root) == []


@pytest.mark.parametrize(
    ("path", "create_delete"), [("a", "BadArgumentsError"), ("a/b", "NoNodeError")]
)
def test_path_relative(zk: KazooClient, path: str, create_delete: str) -> None:
    """A relative path is BadArguments for setData; reads are NoNode.

    create and delete only reject a path with no ``/`` at all; ``a/b`` has the parent
    ``a``, which does not exist, so it is NoNode.
    """
    assert error_name(lambda: raw(zk, Create(path, b"", OPEN_ACL_UNSAFE, 0))) == create_delete
    assert error_name(lambda: raw(zk, Delete(path, -1))) == create_delete
    assert error_name(lambda: raw(zk, SetData(path, b"", -1))) == "BadArgumentsError"
    assert error_name(lambda: raw(zk, GetData(path, None))) == "NoNodeError"
    assert error_name(lambda: raw(zk, GetChildren(path, None))) == "NoNodeError"
    assert raw(zk, Exists(path, None)) is None


def test_path_sequential_of_malformed_name(zk: KazooClient, root: str) -> None:
    """The suffix is added before the full path check: a bad parent is still NoNode."""
    zk.create(root)
    assert (
        error_name(lambda: raw(zk, Create(root + "//b", b"", OPEN_ACL_UNSAFE, 2))) == "NoNodeError"
    )
    assert (
        error_name(lambda: raw(zk, Create(root + "/b\u0001", b"", OPEN_ACL_UNSAFE, 2)))
        == "BadArgumentsError"
    )


def test_path_dot_prefixed_names_are_valid(zk: KazooClient, root: str) -> None:
    """Only whole ``.``/``..`` segments are invalid; ``.b``, ``b.``, non-ASCII are fine."""
    zk.create(root)
    for name in (".b", "b.", "..c", "\u00e9t\u00e9", "\ud7ff"):
        assert raw(zk, Create(f"{root}/{name}", b"", OPEN_ACL_UNSAFE, 0)) == f"{root}/{name}"
    assert sorted(zk.get_children(root)) == sorted([".b", "b.", "..c", "\u00e9t\u00e9", "\ud7ff"])


def test_path_system_nodes_cannot_be_deleted(zk: KazooClient) -> None:
    """Deleting /, /zookeeper, /zookeeper/quota or /zookeeper/config is BadArguments."""
    for path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        assert error_name(lambda p=path: raw(zk, Delete(p, -1))) == "BadArgumentsError"


# --- get / set / delete -------------------------------------------------------------------


def test_set_versions(zk: KazooClient, root: str) -> None:
    """setData checks the expected version (-1 matches any) and increments it."""
    zk.create(root, b"v0")
    created = zk.exists(root)
    stat = zk.set(root, b"v1", version=0)
    assert stat_shape(stat) == shape(version=1, dataLength=2)
    assert stat.czxid == created.czxid
    assert stat.mzxid > created.mzxid
    assert stat.pzxid == created.pzxid
    with pytest.raises(BadVersionError):
        zk.set(root, b"v2", version=0)
    assert zk.set(root, b"v2", version=-1).version == 2
    assert zk.set(root, b"", version=2).dataLength == 0
    assert zk.get(root) == (b"", zk.exists(root))


def test_set_missing_is_no_node(zk: KazooClient, root: str) -> None:
    """setData of a missing node is NoNode (before any version check)."""
    with pytest.raises(NoNodeError):
        zk.set(root, b"x", version=7)


def test_get_missing_is_no_node(zk: KazooClient, root: str) -> None:
    """getData and getChildren of a missing node are NoNode; exists returns None."""
    with pytest.raises(NoNodeError):
        zk.get(root)
    with pytest.raises(NoNodeError):
        zk.get_children(root)
    assert zk.exists(root) is None


def test_delete_versions(zk: KazooClient, root: str) -> None:
    """delete checks the expected version; a wrong one is BadVersion and keeps the node."""
    zk.create(root)
    zk.set(root, b"x")
    with pytest.raises(BadVersionError):
        zk.delete(root, version=0)
    assert zk.exists(root) is not None
    zk.delete(root, version=1)
    assert zk.exists(root) is None
    with pytest.raises(NoNodeError):
        zk.delete(root)


def test_delete_not_empty(zk: KazooClient, root: str) -> None:
    """Deleting a node with children is NotEmpty; recursive delete removes the subtree."""
    zk.create(root + "/a/b", makepath=True)
    with pytest.raises(NotEmptyError):
        zk.delete(root)
    with pytest.raises(BadVersionError):
        zk.delete(root, version=3)  # the version is checked before emptiness
    zk.delete(root, recursive=True)
    assert zk.exists(root) is None


def test_get_children_and_stat(zk: KazooClient, root: str) -> None:
    """getChildren lists the names (any order); GetChildren2 adds the parent's Stat."""
    zk.create(root)
    names = ["b", "a", "c-0", "z", "0"]
    for name in names:
        zk.create(f"{root}/{name}", name.encode())
    assert sorted(zk.get_children(root)) == sorted(names)
    children, stat = zk.get_children(root, include_data=True)
    assert sorted(children) == sorted(names)
    assert stat == zk.exists(root)
    assert stat_shape(stat) == shape(cversion=5, numChildren=5)
    assert raw(zk, GetChildren2(root + "/a", None)) == ([], zk.exists(root + "/a"))


def test_parent_stat_after_create_and_delete(zk: KazooClient, root: str) -> None:
    """Child create and delete each bump cversion and set pzxid to their zxid.

    The parent's version, mzxid and data are untouched; a child's setData changes nothing
    on the parent.
    """
    zk.create(root, b"p")
    before = zk.exists(root)
    zk.create(root + "/c")
    child = zk.exists(root + "/c")
    after_create = zk.exists(root)
    assert stat_shape(after_create) == shape(cversion=1, numChildren=1, dataLength=1)
    assert after_create.pzxid == child.czxid
    assert after_create.mzxid == before.mzxid
    zk.set(root + "/c", b"changed")
    assert zk.exists(root) == after_create
    zk.delete(root + "/c")
    after_delete = zk.exists(root)
    assert stat_shape(after_delete) == shape(cversion=2, numChildren=0, dataLength=1)
    assert after_delete.pzxid > child.mzxid
    zk.create(root + "/d")
    assert zk.exists(root + "/d").czxid > after_delete.pzxid
    assert after_delete.mzxid == before.mzxid


def test_zxids_increase_with_every_write(zk: KazooClient, root: str) -> None:
    """Each write gets a larger zxid; a failed write consumes one too."""
    zk.create(root)
    a = zk.exists(root).czxid
    with pytest.raises(NodeExistsError):
        zk.create(root)
    zk.create(root + "/b")
    b = zk.exists(root + "/b").czxid
    assert b == a + 2
    stat = zk.set(root, b"x")
    assert stat.mzxid == b + 1


def test_root_node_and_system_nodes(zk: KazooClient) -> None:
    """/ has czxid 0 and holds /zookeeper, whose Stats are ZooKeeper's initial ones.

    The system nodes were never "created" through their parents, so /zookeeper reports
    cversion -2 (0 creates, 2 children); /zookeeper/config's ACL was set with version -1.
    """
    stat = zk.exists("/")
    assert stat.czxid == 0
    assert stat.ephemeralOwner == 0
    assert "zookeeper" in zk.get_children("/")
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
    system = {
        path: (stat_shape(s), s.czxid, s.mzxid, s.pzxid, s.ctime)
        for path in ("/zookeeper", "/zookeeper/quota", "/zookeeper/config")
        if (s := zk.exists(path)) is not None
    }
    assert system == {
        "/zookeeper": (shape(cversion=-2, numChildren=2), 0, 0, 0, 0),
        "/zookeeper/quota": (shape(), 0, 0, 0, 0),
        "/zookeeper/config": (shape(aversion=-1), 0, 0, 0, 0),
    }


def test_sync_returns_path(zk: KazooClient, root: str) -> None:
    """sync echoes the path (it need not exist)."""
    assert zk.sync(root) == root


def test_ensure_path_and_recursive_delete(zk: KazooClient, root: str) -> None:
    """kazoo's ensure_path is idempotent; delete(recursive) empties the tree below."""
    assert zk.ensure_path(root + "/x/y")
    assert zk.ensure_path(root + "/x/y")
    zk.create(root + "/x/y/z", b"1")
    zk.delete(root, recursive=True)
    assert zk.exists(root) is None


_ = BadArgumentsError

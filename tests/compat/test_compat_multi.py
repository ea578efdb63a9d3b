"""Differential tests of multi (kazoo transactions) and multiRead, on coord and ZooKeeper.

A multi is all-or-nothing: on failure the results are ``RolledBackError`` for the ops
before the failing one, the failing op's error, then ``RuntimeInconsistency`` for the
rest, and nothing is applied -- though, as any write, the multi consumes a zxid. The reply
header of a failed multi carries code 0 (the errors are in the results).
"""

from __future__ import annotations

from typing import Any

import pytest
from compat_support import RawClient, stat_shape
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)

from coord.protocol import (
    ACL,
    CheckVersionRequest,
    CreateMode,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ErrorCode,
    GetChildrenRequest,
    GetDataRequest,
    Id,
    MultiOp,
    MultiRequest,
    MultiResponse,
    OpCode,
    Perm,
    SetDataRequest,
)

OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)


def snapshot(zk: KazooClient, root: str) -> dict[str, Any]:
    """Every node under ``root`` with its data and full Stat (zxids included)."""
    out: dict[str, Any] = {}
    stack = [root]
    while stack:
        path = stack.pop()
        data, stat = zk.get(path)
        out[path] = (data, stat)
        stack.extend(f"{path}/{name}" for name in zk.get_children(path))
    return out


def test_multi_success_results(zk: KazooClient, root: str) -> None:
    """A successful transaction returns each op's result in order and applies them all."""
    zk.create(root, b"r")
    zk.create(root + "/old")
    t = zk.transaction()
    t.create(root + "/a", b"A")
    t.create(root + "/seq-", sequence=True)
    t.set_data(root, b"changed", version=0)
    t.check(root + "/old", 0)
    t.delete(root + "/old", version=0)
    t.create(root + "/a/child")
    results = t.commit()
    assert results[0] == root + "/a"
    assert results[1] == root + "/seq-0000000002"
    # setData's Stat is the node as that op left it, mid-multi.
    assert stat_shape(results[2]) == {
        "version": 1,
        "cversion": 3,
        "aversion": 0,
        "ephemeralOwner": 0,
        "dataLength": 7,
        "numChildren": 3,
    }
    assert results[3:] == [True, True, root + "/a/child"]
    assert sorted(zk.get_children(root)) == ["a", "seq-0000000002"]
    assert zk.get(root)[0] == b"changed"


def test_multi_ops_share_one_zxid(zk: KazooClient, root: str) -> None:
    """Every change of one multi carries the same zxid."""
    zk.create(root)
    t = zk.transaction()
    t.create(root + "/a")
    t.create(root + "/b")
    t.set_data(root, b"x")
    t.commit()
    a, b, parent = zk.exists(root + "/a"), zk.exists(root + "/b"), zk.exists(root)
    assert a.czxid == b.czxid == parent.mzxid == parent.pzxid


def test_multi_failure_results_and_rollback(zk: KazooClient, root: str) -> None:
    """A failing op rolls back the earlier ones; later ones report RuntimeInconsistency."""
    zk.create(root, b"r")
    zk.create(root + "/keep", b"k")
    before = snapshot(zk, root)
    t = zk.transaction()
    t.create(root + "/new")
    t.set_data(root + "/keep", b"changed")
    t.delete(root + "/keep")
    t.create(root + "/keep")  # exists again? no: deleted above, so this succeeds...
    t.check(root, 5)  # ...and this fails
    t.create(root + "/never")
    t.delete(root + "/missing")
    results = t.commit()
    assert [type(r) for r in results] == [
        RolledBackError,
        RolledBackError,
        RolledBackError,
        RolledBackError,
        BadVersionError,
        RuntimeInconsistency,
        RuntimeInconsistency,
    ]
    assert snapshot(zk, root) == before


@pytest.mark.parametrize(
    ("failing", "error"),
    [
        ("exists", NodeExistsError),
        ("missing_parent", NoNodeError),
        ("not_empty", NotEmptyError),
        ("bad_version", BadVersionError),
    ],
)
def test_multi_failing_op_exception(zk: KazooClient, root: str, failing: str, error: type) -> None:
    """The failing op's result is its own error; nothing of the multi is applied."""
    zk.create(root + "/full/child", makepath=True)
    before = snapshot(zk, root)
    t = zk.transaction()
    t.create(root + "/first")
    if failing == "exists":
        t.create(root + "/full")
    elif failing == "missing_parent":
        t.create(root + "/nope/child")
    elif failing == "not_empty":
        t.delete(root + "/full")
    else:
        t.set_data(root + "/full", b"", version=9)
    results = t.commit()
    assert [type(r) for r in results] == [RolledBackError, error]
    assert snapshot(zk, root) == before


def test_multi_failed_consumes_a_zxid(zk: KazooClient, root: str) -> None:
    """A failed multi is still a transaction: the next write's zxid is one higher."""
    zk.create(root)
    first = zk.exists(root).czxid
    t = zk.transaction()
    t.create(root + "/a")
    t.create(root)
    t.commit()
    zk.create(root + "/b")
    assert zk.exists(root + "/b").czxid == first + 2


def test_multi_undo_restores_parent_cversion(zk: KazooClient, root: str) -> None:
    """Rolled-back creates and deletes leave the parent's cversion and pzxid as they were,
    so the next sequential name is as if the multi never ran."""
    zk.create(root)
    zk.create(root + "/x")
    t = zk.transaction()
    t.create(root + "/s-", sequence=True)
    t.delete(root + "/x")
    t.create(root + "/s-", sequence=True)
    t.check(root + "/x", 3)
    t.commit()
    assert zk.create(root + "/s-", sequence=True) == root + "/s-0000000001"


def test_multi_empty(zk: KazooClient) -> None:
    """An empty transaction succeeds with no results."""
    assert zk.transaction().commit() == []


def test_multi_raw_failure_header_is_ok(target: Any, root: str) -> None:
    """On the wire a failed multi's reply header has err 0; each result header has type
    -1 and its code, and an ErrorResponse body with the same code."""
    with RawClient(target.host, target.port) as raw:
        assert raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0)).header.err == 0
        reply = raw.call(
            OpCode.MULTI,
            MultiRequest(
                (
                    MultiOp(OpCode.CREATE, CreateRequest(root + "/a", b"", OPEN, 0)),
                    MultiOp(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0)),
                    MultiOp(OpCode.DELETE, DeleteRequest(root + "/zz", -1)),
                )
            ),
        )
        assert reply.header.err == 0
        results = MultiResponse.from_bytes(reply.body).results
        assert [(r.type, r.err) for r in results] == [
            (-1, 0),
            (-1, ErrorCode.NODE_EXISTS),
            (-1, ErrorCode.RUNTIME_INCONSISTENCY),
        ]
        assert [getattr(r.body, "err", None) for r in results] == [0, -110, -2]


def test_multi_raw_create_result_types(target: Any, root: str) -> None:
    """Creates in a multi run as the op their flags make (ZooKeeper's Op.create):

    create and create2 answer with a path only (type 1); the CONTAINER flag or a TTL mode
    give a createContainer/createTTL, which answer as create2 (type 15) with a Stat; a
    createTTL request without TTL flags is a plain create.
    """
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        ops = (
            MultiOp(OpCode.CREATE, CreateRequest(root + "/a", b"", OPEN, 0)),
            MultiOp(OpCode.CREATE2, CreateRequest(root + "/b", b"xy", OPEN, 0)),
            MultiOp(OpCode.CREATE_CONTAINER, CreateRequest(root + "/c", b"", OPEN, 4)),
            MultiOp(OpCode.CREATE, CreateRequest(root + "/d", b"", OPEN, 4)),
            MultiOp(
                OpCode.CREATE_TTL,
                CreateTTLRequest(root + "/e", b"", OPEN, CreateMode.PERSISTENT_WITH_TTL, 60000),
            ),
            MultiOp(OpCode.CREATE_TTL, CreateTTLRequest(root + "/f", b"", OPEN, 0, 60000)),
            MultiOp(OpCode.CREATE2, CreateRequest(root + "/g-", b"", OPEN, 2)),
            MultiOp(OpCode.SET_DATA, SetDataRequest(root, b"abc", 0)),
            MultiOp(OpCode.CHECK, CheckVersionRequest(root, 1)),
        )
        reply = raw.call(OpCode.MULTI, MultiRequest(ops))
        assert reply.header.err == 0
        results = MultiResponse.from_bytes(reply.body).results
        assert [(r.type, r.err) for r in results] == [
            (1, 0),
            (1, 0),
            (15, 0),
            (15, 0),
            (15, 0),
            (1, 0),
            (1, 0),
            (5, 0),
            (13, 0),
        ]
        paths = [getattr(r.body, "path", None) for r in results]
        assert paths[:7] == [
            root + "/a",
            root + "/b",
            root + "/c",
            root + "/d",
            root + "/e",
            root + "/f",
            root + "/g-0000000006",
        ]
        container = results[2].body
        assert container.stat.ephemeral_owner == 0  # containers and TTL nodes show 0
        assert container.stat.czxid == reply.header.zxid


@pytest.mark.parametrize(
    "op",
    [
        MultiOp(OpCode.GET_DATA, GetDataRequest("/", False)),
        MultiOp(OpCode.GET_CHILDREN, GetChildrenRequest("/", False)),
        MultiOp(OpCode.DELETE_CONTAINER, DeleteRequest("/nope", -1)),
    ],
    ids=["getData", "getChildren", "deleteContainer"],
)
def test_multi_raw_non_write_op_is_marshalling_error(target: Any, root: str, op: MultiOp) -> None:
    """A multi holding a read or deleteContainer fails as a whole with MarshallingError
    (ZooKeeper cannot decode it); nothing is applied, and it consumes a zxid."""
    with RawClient(target.host, target.port) as raw:
        first = raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0)).header.zxid
        request = MultiRequest(
            (MultiOp(OpCode.CREATE, CreateRequest(root + "/a", b"", OPEN, 0)), op)
        )
        reply = raw.call(OpCode.MULTI, request)
        assert reply.header.err == ErrorCode.MARSHALLING_ERROR
        assert reply.header.zxid == first + 1
        assert raw.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, False)).body == b"\0\0\0\0"


def test_multi_read(target: Any, root: str) -> None:
    """multiRead answers each getData/getChildren independently; a failing one is an
    error result (type -1) without affecting the others; the header code is 0."""
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.CREATE, CreateRequest(root, b"data", OPEN, 0))
        raw.call(OpCode.CREATE, CreateRequest(root + "/a", b"", OPEN, 0))
        reply = raw.call(
            OpCode.MULTI_READ,
            MultiRequest(
                (
                    MultiOp(OpCode.GET_DATA, GetDataRequest(root, False)),
                    MultiOp(OpCode.GET_DATA, GetDataRequest(root + "/nope", False)),
                    MultiOp(OpCode.GET_CHILDREN, GetChildrenRequest(root, False)),
                )
            ),
        )
        assert reply.header.err == 0
        results = MultiResponse.from_bytes(reply.body).results
        assert [(r.type, r.err) for r in results] == [(4, 0), (-1, ErrorCode.NO_NODE), (8, 0)]
        assert results[0].body.data == b"data"
        assert results[2].body.children == ("a",)
        mixed = raw.call(
            OpCode.MULTI_READ,
            MultiRequest((MultiOp(OpCode.CREATE, CreateRequest(root + "/b", b"", OPEN, 0)),)),
        )
        assert mixed.header.err == ErrorCode.MARSHALLING_ERROR

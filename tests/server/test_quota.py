"""Quotas (coord/server/_quota.py): ZooKeeper's ``/zookeeper/quota`` nodes kept by apply.

Rules: creating ``zookeeper_limits`` makes a quota root; creating ``zookeeper_stats`` fills
it with the subtree's usage; creates, deletes, setData and session closes below the root
keep that usage exact, incrementally; with ``enforce_quota`` a write past a hard limit is
``QuotaExceeded`` (-125) and changes nothing (also inside a multi, which is rolled back);
without it nothing is refused. The usage always equals a recount of the subtree, and two
replicas applying the same entries agree (hypothesis).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coord.protocol import (
    ACL,
    CloseSessionRequest,
    CreateMode,
    CreateRequest,
    DeleteRequest,
    ErrorCode,
    Id,
    MultiOp,
    MultiRequest,
    OpCode,
    Perm,
    SetDataRequest,
)
from coord.server import AclPolicy, Entry, IpScheme, StateMachine, WorldScheme
from coord.server._apply import CreateSession
from coord.server._quota import QuotaIndex, format_stats, parse_stats

OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)
SESSION = 0x1000


class Machine:
    def __init__(self, *, enforce: bool = True) -> None:
        schemes = {"world": WorldScheme(), "ip": IpScheme()}
        self.sm = StateMachine(AclPolicy(schemes), enforce_quota=enforce)
        self.zxid = 0
        self.apply(OpCode.CREATE_SESSION, CreateSession(10000, b"p" * 16))

    def apply(self, op: int, request: Any, session: int = SESSION) -> Any:
        self.zxid += 1
        entry = Entry(self.zxid, 1000 + self.zxid, session, op, request, ())
        return self.sm.apply(entry)

    def create(self, path: str, data: bytes = b"", mode: int = 0) -> int:
        return int(self.apply(OpCode.CREATE, CreateRequest(path, data, OPEN, mode)).err)

    def set(self, path: str, data: bytes) -> int:
        return int(self.apply(OpCode.SET_DATA, SetDataRequest(path, data, -1)).err)

    def delete(self, path: str) -> int:
        return int(self.apply(OpCode.DELETE, DeleteRequest(path, -1)).err)

    def setquota(self, path: str, limits: str) -> None:
        """What zkCli's setquota creates."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self.create("/zookeeper/quota/" + "/".join(parts[:i]))
        assert self.create(f"/zookeeper/quota{path}/zookeeper_limits", limits.encode()) == 0
        assert self.create(f"/zookeeper/quota{path}/zookeeper_stats", b"count=0,bytes=0") == 0

    def usage(self, path: str) -> dict[str, int]:
        node = self.sm.nodes[f"/zookeeper/quota{path}/zookeeper_stats"]
        return parse_stats(node.data)

    def recount(self, path: str) -> dict[str, int]:
        count, size = QuotaIndex(self.sm.nodes).usage(path)
        return {"count": count, "bytes": size}


def test_StatsTrack_format_and_parse_as_ZooKeeper() -> None:
    """count and bytes first; other keys after ``=`` as ``;key=value``, sorted."""
    assert format_stats({"count": 4, "bytes": 5}) == b"count=4,bytes=5"
    text = format_stats({"countHardLimit": 10, "count": -1, "bytes": 5, "byteHardLimit": -1})
    assert text == b"count=-1,bytes=5=;byteHardLimit=-1;countHardLimit=10"
    assert parse_stats(text) == {"count": -1, "bytes": 5, "byteHardLimit": -1, "countHardLimit": 10}
    assert parse_stats(b"count==3,bytes=7;junk;x=y;size=") == {"count": -1, "bytes": 7}
    assert parse_stats(None) == {}


def test_stats_node_gets_the_usage_and_follows_writes() -> None:
    m = Machine()
    m.create("/app", b"12345")
    m.create("/app/a", b"xy")
    m.setquota("/app", "count=10,bytes=-1")
    assert m.usage("/app") == {"count": 2, "bytes": 7}
    m.create("/app/b", b"abc")
    m.create("/app/b/c")
    assert m.usage("/app") == {"count": 4, "bytes": 10}
    m.set("/app/a", b"")
    assert m.usage("/app") == {"count": 4, "bytes": 8}
    m.delete("/app/b/c")
    assert m.usage("/app") == {"count": 3, "bytes": 8}
    m.create("/other", b"not counted")
    m.create("/application", b"not a child of /app")
    assert m.usage("/app") == m.recount("/app") == {"count": 3, "bytes": 8}
    assert "/zookeeper/quota/app/zookeeper_stats" in m.sm.touched


def test_hard_count_limit_is_enforced() -> None:
    m = Machine()
    m.create("/q")
    m.setquota("/q", "count=-1,bytes=-1=;countHardLimit=3")
    assert m.create("/q/a") == 0
    assert m.create("/q/b") == 0
    assert m.create("/q/c") == ErrorCode.QUOTA_EXCEEDED
    assert "/q/c" not in m.sm.nodes
    assert m.usage("/q")["count"] == 3
    assert m.delete("/q/a") == 0
    assert m.create("/q/c") == 0


def test_hard_byte_limit_is_enforced_on_create_and_setData() -> None:
    m = Machine()
    m.create("/q", b"1234")
    m.setquota("/q", "count=-1,bytes=-1=;byteHardLimit=10")
    assert m.create("/q/a", b"123456") == 0
    assert m.create("/q/b", b"x") == ErrorCode.QUOTA_EXCEEDED
    assert m.set("/q/a", b"1234567") == ErrorCode.QUOTA_EXCEEDED
    assert m.sm.nodes["/q/a"].data == b"123456"
    assert m.set("/q/a", b"12") == 0  # shrinking is always allowed
    assert m.usage("/q") == {"count": 2, "bytes": 6}


def test_soft_limits_and_no_enforcement_refuse_nothing() -> None:
    """count/bytes are soft (logged); without enforce_quota hard limits are only counted."""
    soft = Machine()
    soft.create("/q")
    soft.setquota("/q", "count=1,bytes=1")
    assert soft.create("/q/a", b"xyz") == 0
    lax = Machine(enforce=False)
    lax.create("/q")
    lax.setquota("/q", "count=-1,bytes=-1=;countHardLimit=1")
    assert lax.create("/q/a") == 0
    assert lax.usage("/q")["count"] == 2


def test_failed_multi_rolls_back_the_usage() -> None:
    m = Machine()
    m.create("/q")
    m.setquota("/q", "count=-1,bytes=-1=;countHardLimit=3")
    ops = (
        MultiOp(OpCode.CREATE, CreateRequest("/q/a", b"aa", OPEN, 0)),
        MultiOp(OpCode.SET_DATA, SetDataRequest("/q", b"bigger", -1)),
        MultiOp(OpCode.CREATE, CreateRequest("/q/b", b"", OPEN, 0)),
        MultiOp(OpCode.CREATE, CreateRequest("/q/c", b"", OPEN, 0)),  # the 4th node
    )
    before = m.usage("/q")
    result = m.apply(OpCode.MULTI, MultiRequest(ops))
    assert result.err == 0 and b"\xff\xff\xff\x83" in result.body  # -125 in the results
    assert m.usage("/q") == before
    assert "/q/a" not in m.sm.nodes and m.sm.nodes["/q"].data == b""


def test_multi_checks_against_the_usage_before_it_as_ZooKeeper() -> None:
    """A delete earlier in a multi frees nothing for a create after it (ZooKeeper checks
    the committed tree), yet a multi cannot overshoot a hard limit op by op either."""
    m = Machine()
    m.create("/q")
    m.setquota("/q", "count=-1,bytes=-1=;countHardLimit=2")
    m.create("/q/a")
    ops = (
        MultiOp(OpCode.DELETE, DeleteRequest("/q/a", -1)),
        MultiOp(OpCode.CREATE, CreateRequest("/q/b", b"", OPEN, 0)),
    )
    result = m.apply(OpCode.MULTI, MultiRequest(ops))
    assert b"\xff\xff\xff\x83" in result.body
    assert "/q/a" in m.sm.nodes and "/q/b" not in m.sm.nodes
    assert m.usage("/q")["count"] == 2


def test_closing_a_session_releases_its_ephemerals_usage() -> None:
    m = Machine()
    m.create("/q")
    m.setquota("/q", "count=-1,bytes=-1=;countHardLimit=2")
    assert m.create("/q/e", b"eph", CreateMode.EPHEMERAL) == 0
    assert m.create("/q/f") == ErrorCode.QUOTA_EXCEEDED
    m.apply(OpCode.CLOSE_SESSION, CloseSessionRequest())
    assert m.usage("/q") == {"count": 1, "bytes": 0}


def test_deleting_the_limits_node_removes_the_quota() -> None:
    m = Machine()
    m.create("/q")
    m.setquota("/q", "count=-1,bytes=-1=;countHardLimit=1")
    assert m.create("/q/a") == ErrorCode.QUOTA_EXCEEDED
    assert m.delete("/zookeeper/quota/q/zookeeper_limits") == 0
    assert m.create("/q/a") == 0


def test_quota_index_is_rebuilt_when_the_tree_is_replaced() -> None:
    """Recovery replaces the node map: the quota roots are derived from it again."""
    m = Machine()
    m.create("/q")
    m.setquota("/q", "count=-1,bytes=-1=;countHardLimit=2")
    m.sm.nodes = dict(m.sm.nodes)
    assert m.sm.quota_index().roots == {"/q"}
    assert m.create("/q/a") == 0
    assert m.create("/q/b") == ErrorCode.QUOTA_EXCEEDED


_names = st.sampled_from(["a", "b", "c"])
_ops = st.lists(
    st.tuples(
        st.sampled_from(["create", "set", "delete"]),
        st.lists(_names, min_size=1, max_size=3),
        st.binary(max_size=8),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(_ops, st.integers(1, 8), st.integers(1, 40))
def test_usage_always_equals_a_recount_and_replicas_agree(
    ops: list[tuple[str, list[str], bytes]], count_limit: int, byte_limit: int
) -> None:
    replicas = [Machine(), Machine()]
    for m in replicas:
        m.create("/q")
        m.setquota(
            "/q", f"count=-1,bytes=-1=;byteHardLimit={byte_limit};countHardLimit={count_limit}"
        )
    for kind, names, data in ops:
        path = "/q/" + "/".join(names)
        results = []
        for m in replicas:
            if kind == "create":
                results.append(m.create(path, data))
            elif kind == "set":
                results.append(m.set(path, data))
            else:
                results.append(m.delete(path))
        assert results[0] == results[1]
    for m in replicas:
        usage = m.usage("/q")
        assert usage == m.recount("/q")
        assert usage["count"] <= max(count_limit, 1) and usage["bytes"] <= byte_limit
    assert replicas[0].usage("/q") == replicas[1].usage("/q")


def test_quota_survives_a_restart(tmp_path: Path) -> None:
    """The stats node is persisted; after a restart the quota still applies (kazoo)."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import QuotaExceededError

    from coord.testing._server import CoordServerThread

    config: dict[str, Any] = {
        "storage": "rocksdb",
        "data_dir": str(tmp_path),
        "enforce_quota": True,
    }
    with CoordServerThread(**config) as server:
        zk = KazooClient(server.address)
        zk.start(timeout=10)
        zk.create("/svc/x", b"12", makepath=True)
        limits = b"count=-1,bytes=-1=;countHardLimit=3"
        zk.create("/zookeeper/quota/svc/zookeeper_limits", limits, makepath=True)
        zk.create("/zookeeper/quota/svc/zookeeper_stats", b"count=0,bytes=0")
        assert zk.get("/zookeeper/quota/svc/zookeeper_stats")[0] == b"count=2,bytes=2"
        zk.stop()
        zk.close()
    with CoordServerThread(**config) as server:
        zk = KazooClient(server.address)
        zk.start(timeout=10)
        try:
            zk.create("/svc/y")
            with pytest.raises(QuotaExceededError):
                zk.create("/svc/z")
            assert zk.get("/zookeeper/quota/svc/zookeeper_stats")[0] == b"count=3,bytes=2"
        finally:
            zk.stop()
            zk.close()

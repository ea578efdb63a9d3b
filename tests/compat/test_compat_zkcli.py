"""Differential tests through ZooKeeper's own CLI (zkCli), for requests kazoo never sends:
containers, TTL nodes, persistent watches, whoami, getEphemerals, getAllChildrenNumber,
removeWatches -- plus the CLI's views (stat, ls -R, getAcl) of both servers.

Several commands run in one zkCli session (one JVM) per test to keep the suite fast. ZooKeeper
keeps a connection's identities and a session's ephemerals in hash sets, so ``whoami`` and
``getEphemerals`` list them in Java hash order; those are compared as sets.

Container and TTL reaping: coord checks every 200 ms in the fixtures; the session ZooKeeper
uses its 60 s default, so those timing tests run against a second ZooKeeper started with
``-Dznode.container.checkIntervalMs=200`` (about a second to start).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from compat_support import WAIT, EventLog, RawClient, kazoo_client
from kazoo.protocol.states import EventType as KzEvent

from coord.protocol import ACL, CreateMode, CreateRequest, Id, OpCode, Perm
from coord.testing import ZooKeeperProcess, require_zookeeper, run_zkcli
from coord.testing._server import CoordServerThread

OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)
STAT_FIELDS = ("cversion", "dataVersion", "aclVersion", "dataLength", "numChildren")


def parse_stat(text: str) -> dict[str, str]:
    """The ``name = value`` lines zkCli prints for a Stat."""
    return dict(re.findall(r"^(\w+) = (.*)$", text, re.MULTILINE))


def stat_view(text: str) -> dict[str, Any]:
    """The server-independent part of a printed Stat, with zxid relations."""
    fields = parse_stat(text)
    view: dict[str, Any] = {name: int(fields[name]) for name in STAT_FIELDS}
    owner = int(fields["ephemeralOwner"], 16)
    view["ephemeral"] = owner != 0
    view["cZxid==mZxid"] = fields["cZxid"] == fields["mZxid"]
    view["cZxid==pZxid"] = fields["cZxid"] == fields["pZxid"]
    return view


def test_zkcli_create_flags_and_stat(target: Any, root: str) -> None:
    """create -c/-t/-e/-s make the same nodes, seen the same way by stat and ls."""
    result = run_zkcli(
        target.address,
        f"create {root} rootdata",
        f"create -c {root}/c",
        f"create -t 60000 {root}/t tdata",
        f"create -e {root}/e edata",
        f"create -s {root}/s- sdata",
        f"create -e -s {root}/es- x",
        f"create -t 60000 -s {root}/ts- y",
        f"create {root}/c/child",
        f"stat {root}/c",
        f"stat {root}/t",
        f"stat {root}/e",
        f"get -s {root}",
        f"ls -R {root}",
        f"ls {root}",
        f"getAllChildrenNumber {root}",
        f"getAllChildrenNumber {root}/c",
        f"create {root}/e/child",
        f"stat {root}/missing",
        f"create {root}/c",
    )
    created = [o.stderr for o in result.outputs[:8]]
    assert created == [
        f"Created {root}",
        f"Created {root}/c",
        f"Created {root}/t",
        f"Created {root}/e",
        f"Created {root}/s-0000000003",
        f"Created {root}/es-0000000004",
        f"Created {root}/ts-0000000005",
        f"Created {root}/c/child",
    ]
    base = {"dataVersion": 0, "aclVersion": 0, "cZxid==mZxid": True}
    assert stat_view(result[8].stdout) == {
        **base,
        "cversion": 1,
        "dataLength": 0,
        "numChildren": 1,
        "ephemeral": False,  # containers show ephemeralOwner 0x0
        "cZxid==pZxid": False,
    }
    assert stat_view(result[9].stdout) == {
        **base,
        "cversion": 0,
        "dataLength": 5,
        "numChildren": 0,
        "ephemeral": False,  # so do TTL nodes
        "cZxid==pZxid": True,
    }
    assert stat_view(result[10].stdout) == {
        **base,
        "cversion": 0,
        "dataLength": 5,
        "numChildren": 0,
        "ephemeral": True,
        "cZxid==pZxid": True,
    }
    get = result[11].stdout
    assert get.splitlines()[0] == "rootdata"
    assert stat_view(get) == {
        **base,
        "cversion": 6,
        "dataLength": 8,
        "numChildren": 6,
        "ephemeral": False,
        "cZxid==pZxid": False,
    }
    assert result[12].stdout.splitlines() == [
        root,
        f"{root}/c",
        f"{root}/e",
        f"{root}/es-0000000004",
        f"{root}/s-0000000003",
        f"{root}/t",
        f"{root}/ts-0000000005",
        f"{root}/c/child",
    ]
    assert result[13].stdout == "[c, e, es-0000000004, s-0000000003, t, ts-0000000005]"
    assert (result[14].stdout, result[15].stdout) == ("7", "1")
    assert result[16].stderr == f"Ephemerals cannot have children: {root}/e/child"
    assert result[17].stderr == f"Node does not exist: {root}/missing"
    assert result[18].stderr == f"Node already exists: {root}/c"


def test_zkcli_persistent_watches(target: Any, root: str) -> None:
    """addWatch (PERSISTENT and PERSISTENT_RECURSIVE) events as zkCli prints them;
    removewatches ends them (the client reports the removal itself)."""
    result = run_zkcli(
        target.address,
        f"create {root}",
        f"create {root}/c",
        f"addWatch -m PERSISTENT {root}",
        f"addWatch -m PERSISTENT_RECURSIVE {root}/c",
        f"set {root} newdata",
        f"create {root}/c/child",
        f"set {root}/c/child zz",
        f"create {root}/c/child/deeper",
        f"delete {root}/c/child/deeper",
        f"create {root}/x",
        f"removewatches {root}",
        f"removewatches {root}/c -a",
        f"set {root} again",
        f"set {root}/c again",
        f"removewatches {root}/nope",
    )
    assert result.returncode == 1  # the last command failed
    assert result[14].stderr == f"KeeperErrorCode = No such watcher for {root}/nope"
    prefix = "WatchedEvent state:SyncConnected type:"
    assert list(result.events) == [
        f"{prefix}None path:null",
        f"{prefix}NodeDataChanged path:{root}",
        f"{prefix}NodeCreated path:{root}/c/child",
        f"{prefix}NodeDataChanged path:{root}/c/child",
        f"{prefix}NodeCreated path:{root}/c/child/deeper",
        f"{prefix}NodeDeleted path:{root}/c/child/deeper",
        f"{prefix}NodeChildrenChanged path:{root}",
        f"{prefix}PersistentWatchRemoved path:{root}",
        f"{prefix}PersistentWatchRemoved path:{root}/c",
        "WatchedEvent state:Closed type:None path:null",
    ]


def test_zkcli_add_watch_default_is_recursive(target: Any, root: str) -> None:
    """zkCli's addWatch defaults to PERSISTENT_RECURSIVE: no NodeChildrenChanged, and
    events from the whole subtree."""
    result = run_zkcli(
        target.address,
        f"create {root}",
        f"create {root}/c",
        f"addWatch {root}",
        f"create {root}/x",
        f"set {root}/x 1",
        f"delete {root}/x",
        f"create {root}/c/y",
    )
    prefix = "WatchedEvent state:SyncConnected type:"
    assert list(result.events) == [
        f"{prefix}None path:null",
        f"{prefix}NodeCreated path:{root}/x",
        f"{prefix}NodeDataChanged path:{root}/x",
        f"{prefix}NodeDeleted path:{root}/x",
        f"{prefix}NodeCreated path:{root}/c/y",
        "WatchedEvent state:Closed type:None path:null",
    ]


def test_zkcli_one_shot_watches_and_removal(target: Any, root: str) -> None:
    """get -w / ls -w / stat -w set one-shot watches; removewatches -d/-c removes one kind."""
    result = run_zkcli(
        target.address,
        f"create {root}",
        f"get -w {root}",
        f"ls -w {root}",
        f"removewatches {root} -d",
        f"create {root}/a",
        f"stat -w {root}/b",
        f"create {root}/b",
        f"set {root} x",
        f"ls -w {root}",
        f"removewatches {root} -c",
        f"removewatches {root} -c",
    )
    prefix = "WatchedEvent state:SyncConnected type:"
    assert list(result.events) == [
        f"{prefix}None path:null",
        f"{prefix}DataWatchRemoved path:{root}",
        f"{prefix}NodeChildrenChanged path:{root}",
        f"{prefix}NodeCreated path:{root}/b",
        f"{prefix}ChildWatchRemoved path:{root}",
        "WatchedEvent state:Closed type:None path:null",
    ]
    assert result[10].stderr == f"KeeperErrorCode = No such watcher for {root}"


def test_zkcli_acl_commands(target: Any, root: str) -> None:
    """getAcl/setAcl (with -v), addauth, auth ACLs and whoami through the CLI."""
    result = run_zkcli(
        target.address,
        f"create {root}",
        f"getAcl {root}",
        "whoami",
        f"setAcl {root} world:anyone:rcda",
        f"getAcl {root}",
        f"setAcl -v 0 {root} world:anyone:cdrwa",
        f"setAcl -v 1 {root} world:anyone:cdrwa",
        f"create {root}/d2 data auth::cdrwa",
        "addauth digest alice:secret",
        "whoami",
        f"create {root}/d2 data auth::cdrwa",
        f"create {root}/d3 data ip:127.0.0.1:cdrwa",
        f"getAcl {root}/d3",
        f"create {root}/d4 data ip:10.0.0.0/8:cdrwa",
        f"get {root}/d4",
        f"set {root}/d4 x",
        f"getAcl {root}/d4",
        f"create {root}/d5 data world:anyone:r",
        f"set {root}/d5 x",
        f"getAcl {root}/nope",
    )
    assert result[1].stdout == "'world,'anyone\n: cdrwa"
    assert result[2].stdout.splitlines() == ["Auth scheme: User", "ip: 127.0.0.1"]
    assert result[4].stdout == "'world,'anyone\n: cdra"
    assert result[5].stderr == f"version No is not valid : {root}"
    assert result[6].stderr == ""
    assert result[7].stderr.splitlines() == [
        f"KeeperErrorCode = InvalidACL for {root}/d2",
        f"Acl is not valid : {root}/d2",
    ]
    lines = result[9].stdout.splitlines()
    assert lines[0] == "Auth scheme: User"
    assert sorted(lines[1:]) == ["digest: alice", "ip: 127.0.0.1"]
    assert result[10].stderr == f"Created {root}/d2"
    assert result[12].stdout == "'ip,'127.0.0.1\n: cdrwa"
    assert result[14].stderr == f"Insufficient permission : {root}/d4"
    assert result[15].stderr == f"Insufficient permission : {root}/d4"
    assert result[16].stderr == f"Insufficient permission : {root}/d4"
    assert result[18].stderr == f"Insufficient permission : {root}/d5"
    assert result[19].stderr == f"Node does not exist: {root}/nope"


def test_zkcli_get_acl_digest_masking(target: Any, root: str) -> None:
    """getAcl shows a digest in full to an ADMIN holder, as ``user:x`` to a reader."""
    owner = run_zkcli(
        target.address,
        "addauth digest alice:secret",
        f"create {root} data auth::cdrwa,world:anyone:r",
        f"getAcl {root}",
    )
    assert owner[1].stderr == f"Created {root}"
    full = owner[2].stdout.splitlines()
    assert full[0].startswith("'digest,'alice:") and full[0] != "'digest,'alice:x"
    assert full[1:] == [": cdrwa", "'world,'anyone", ": r"]
    reader = run_zkcli(target.address, f"getAcl {root}")
    assert reader[0].stdout.splitlines() == ["'digest,'alice:x", ": cdrwa", "'world,'anyone", ": r"]


def test_zkcli_get_ephemerals(target: Any, root: str) -> None:
    """getEphemerals lists the session's ephemerals under a prefix (a plain string prefix,
    not a path: ``/x`` also matches ``/xy``)."""
    result = run_zkcli(
        target.address,
        f"create {root}",
        f"create -e {root}/e1",
        f"create -e -s {root}/e-",
        f"create {root}/p",
        f"create -e {root}/p/e2",
        f"create -e {root}x",
        f"getEphemerals {root}/p",
        f"getEphemerals {root}",
        f"getEphemerals {root}/nothing",
    )

    def listed(text: str) -> set[str]:
        assert text.startswith("[") and text.endswith("]"), text
        inner = text[1:-1]
        return set(inner.split(", ")) if inner else set()

    assert listed(result[6].stdout) == {f"{root}/p/e2"}
    assert listed(result[7].stdout) == {
        f"{root}/e1",
        f"{root}/e-0000000001",
        f"{root}/p/e2",
        f"{root}x",
    }
    assert listed(result[8].stdout) == set()


# --- containers and TTL nodes: reaping --------------------------------------------------


@pytest.fixture(scope="module")
def reaping_zookeeper() -> Iterator[ZooKeeperProcess]:
    """A ZooKeeper that checks containers and TTL nodes every 200 ms, like coord's tests."""
    require_zookeeper()
    with ZooKeeperProcess(
        tick_time=500,
        extra_config={"4lw.commands.whitelist": "*"},
        system_properties={"znode.container.checkIntervalMs": "200"},
    ) as zk:
        yield zk


@pytest.fixture(params=["coord", "zookeeper"])
def reaper(request: pytest.FixtureRequest) -> str:
    """The address of a server that reaps containers and TTL nodes every 200 ms."""
    if request.param == "coord":
        server: CoordServerThread = request.getfixturevalue("coord_session_server")
        return server.address
    zk: ZooKeeperProcess = request.getfixturevalue("reaping_zookeeper")
    return zk.address


def test_container_reaped_after_last_child(reaper: str, root: str) -> None:
    """A container is deleted once its last child goes; one that never had a child stays;
    a plain create with the CONTAINER flag is persistent (the opcode makes containers)."""
    run_zkcli(
        reaper,
        f"create {root}",
        f"create -c {root}/used1",
        f"create -c {root}/used2",
        f"create -c {root}/unused",
        f"create {root}/used1/child",
        f"create {root}/used2/child",
    )
    host, port = reaper.rsplit(":", 1)
    with RawClient(host, int(port)) as raw:
        flagged = CreateRequest(root + "/flagged", b"", OPEN, CreateMode.CONTAINER)
        assert raw.call(OpCode.CREATE, flagged).header.err == 0
    with kazoo_client(reaper) as zk:
        zk.create(root + "/flagged/child")
        zk.delete(root + "/flagged/child")
        first, second = EventLog(), EventLog()
        assert zk.exists(root + "/used1", watch=first) is not None
        zk.delete(root + "/used1/child")
        assert first.wait(1) == [(KzEvent.DELETED, root + "/used1")]
        # A later reap cycle: anything the first one deleted is gone by now.
        assert zk.exists(root + "/used2", watch=second) is not None
        zk.delete(root + "/used2/child")
        assert second.wait(1) == [(KzEvent.DELETED, root + "/used2")]
        assert sorted(zk.get_children(root)) == ["flagged", "unused"]


def test_ttl_node_reaped_when_unmodified(reaper: str, root: str) -> None:
    """A TTL node goes once unmodified for longer than its TTL and childless."""
    run_zkcli(reaper, f"create {root}", f"create -t 300 {root}/t data", f"create -t 300 {root}/p")
    with kazoo_client(reaper) as zk:
        zk.create(root + "/p/child")
        log = EventLog()
        assert zk.exists(root + "/t", watch=log) is not None
        assert log.wait(1) == [(KzEvent.DELETED, root + "/t")]
        assert zk.exists(root + "/p") is not None  # has a child: kept
        log2 = EventLog()
        zk.exists(root + "/p", watch=log2)
        zk.delete(root + "/p/child")
        assert log2.wait(1, timeout=WAIT) == [(KzEvent.DELETED, root + "/p")]

"""The replicated state machine (coord/server/_apply.py) without a server.

Entries are built by hand, as the leader would stamp them; each test states the rule it
checks. Expected values follow Apache ZooKeeper 3.8 (see tests/compat for the differential
evidence).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coord.protocol import (
    ACL,
    CheckVersionRequest,
    CloseSessionRequest,
    CreateMode,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ErrorCode,
    EventType,
    ExistsRequest,
    GetAllChildrenNumberRequest,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    Id,
    InvalidACLError,
    MultiOp,
    MultiRequest,
    MultiResponse,
    NoAuthError,
    NoNodeError,
    OpCode,
    Perm,
    Reader,
    SetACLRequest,
    SetDataRequest,
    Stat,
)
from coord.server import AclPolicy, DigestScheme, Entry, IpScheme, StateMachine, WorldScheme
from coord.server._apply import CreateSession
from coord.server._tree import CONTAINER_OWNER, ttl_owner

OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)
SESSION = 0x1000
OTHER = 0x2000
CLIENT_IDS = (Id("ip", "127.0.0.1"),)


class Machine:
    """A StateMachine and a leader stamping its entries with zxid and time."""

    def __init__(self) -> None:
        schemes = {"world": WorldScheme(), "digest": DigestScheme(), "ip": IpScheme()}
        self.sm = StateMachine(AclPolicy(schemes))
        self.zxid = 0
        self.time = 1_000_000

    def entry(
        self, op: int, request: Any, *, session: int = SESSION, auth: tuple[Id, ...] = CLIENT_IDS
    ) -> Entry:
        self.zxid += 1
        self.time += 10
        return Entry(self.zxid, self.time, session, op, request, auth)

    def apply(self, op: int, request: Any, **kwargs: Any) -> Any:
        return self.sm.apply(self.entry(op, request, **kwargs))

    def open_session(self, session: int = SESSION) -> None:
        result = self.apply(OpCode.CREATE_SESSION, CreateSession(10000, b"p" * 16), session=session)
        assert result.err == 0

    def create(self, path: str, data: bytes = b"", mode: int = 0, **kwargs: Any) -> Any:
        return self.apply(OpCode.CREATE, CreateRequest(path, data, OPEN, mode), **kwargs)

    def stat(self, path: str) -> Stat:
        body = self.sm.read(OpCode.EXISTS, ExistsRequest(path, False), CLIENT_IDS, SESSION)
        return Stat.from_bytes(body)

    def children(self, path: str) -> list[str]:
        body = self.sm.read(OpCode.GET_CHILDREN, GetChildrenRequest(path, False), CLIENT_IDS, 0)
        return sorted(Reader(body).read_strings())


@pytest.fixture
def m() -> Machine:
    machine = Machine()
    machine.open_session()
    return machine


def snapshot(sm: StateMachine) -> Any:
    """Everything observable of the replicated state, for before/after comparisons."""
    nodes = {
        path: (node.data, node.acl, node.stat_bytes(), node.cversion, sorted(node.children))
        for path, node in sm.nodes.items()
    }
    sessions = {sid: sorted(s.ephemerals) for sid, s in sm.sessions.items()}
    return nodes, sessions, sorted(sm.containers), sorted(sm.ttls)


def created_path(result: Any) -> str:
    return Reader(result.body).read_string()


# --- multi ----------------------------------------------------------------------------------


def test_StateMachine_failed_multi_leaves_tree_identical(m: Machine) -> None:
    """A multi failing at its last op undoes every earlier op: data, Stats (cversion and
    pzxid included), children, ephemeral/container/TTL indexes are as before."""
    m.create("/a", b"data")
    m.create("/a/old")
    m.create("/a/e", mode=CreateMode.EPHEMERAL)
    m.apply(OpCode.CREATE_CONTAINER, CreateRequest("/c", b"", OPEN, CreateMode.CONTAINER))
    before = snapshot(m.sm)
    ops = (
        MultiOp(OpCode.CREATE, CreateRequest("/a/new", b"x", OPEN, 0)),
        MultiOp(OpCode.CREATE, CreateRequest("/a/s-", b"", OPEN, CreateMode.EPHEMERAL_SEQUENTIAL)),
        MultiOp(OpCode.CREATE_CONTAINER, CreateRequest("/c/k", b"", OPEN, CreateMode.CONTAINER)),
        MultiOp(
            OpCode.CREATE_TTL,
            CreateTTLRequest("/t", b"", OPEN, CreateMode.PERSISTENT_WITH_TTL, 1000),
        ),
        MultiOp(OpCode.SET_DATA, SetDataRequest("/a", b"changed", 0)),
        MultiOp(OpCode.SET_DATA, SetDataRequest("/a", b"again", 1)),
        MultiOp(OpCode.DELETE, DeleteRequest("/a/old", -1)),
        MultiOp(OpCode.DELETE, DeleteRequest("/a/e", -1)),
        MultiOp(OpCode.DELETE, DeleteRequest("/a/new", 0)),
        MultiOp(OpCode.CHECK, CheckVersionRequest("/a", 99)),
    )
    result = m.apply(OpCode.MULTI, MultiRequest(ops))
    assert result.err == 0
    assert result.events == []
    codes = [r.err for r in MultiResponse.from_bytes(result.body).results]
    assert codes == [0] * 9 + [ErrorCode.BAD_VERSION]
    assert snapshot(m.sm) == before
    assert m.sm.last_zxid == m.zxid  # the failed multi still consumed its zxid


def test_StateMachine_multi_results_after_failure_are_runtime_inconsistency(m: Machine) -> None:
    """Ops after the failing one report RuntimeInconsistency, with error result headers."""
    m.create("/a")
    ops = (
        MultiOp(OpCode.CREATE, CreateRequest("/b", b"", OPEN, 0)),
        MultiOp(OpCode.CREATE, CreateRequest("/a", b"", OPEN, 0)),
        MultiOp(OpCode.DELETE, DeleteRequest("/zz", -1)),
    )
    results = MultiResponse.from_bytes(m.apply(OpCode.MULTI, MultiRequest(ops)).body).results
    assert [(r.type, r.err) for r in results] == [
        (-1, 0),
        (-1, ErrorCode.NODE_EXISTS),
        (-1, ErrorCode.RUNTIME_INCONSISTENCY),
    ]


_MULTI_OPS = st.lists(
    st.sampled_from(
        [
            ("create", "/r/x"),
            ("create", "/r/y"),
            ("create_seq", "/r/s-"),
            ("create_eph", "/r/e"),
            ("create_container", "/r/c"),
            ("create", "/r/c/k"),
            ("delete", "/r/x"),
            ("delete", "/r/c/k"),
            ("delete", "/r/c"),
            ("set", "/r"),
            ("set", "/r/x"),
            ("check", "/r"),
        ]
    ),
    max_size=8,
)


def _op(kind: str, path: str) -> MultiOp:
    if kind == "create":
        return MultiOp(OpCode.CREATE, CreateRequest(path, b"d", OPEN, 0))
    if kind == "create_seq":
        return MultiOp(
            OpCode.CREATE, CreateRequest(path, b"", OPEN, CreateMode.PERSISTENT_SEQUENTIAL)
        )
    if kind == "create_eph":
        return MultiOp(OpCode.CREATE, CreateRequest(path, b"", OPEN, CreateMode.EPHEMERAL))
    if kind == "create_container":
        return MultiOp(
            OpCode.CREATE_CONTAINER, CreateRequest(path, b"", OPEN, CreateMode.CONTAINER)
        )
    if kind == "delete":
        return MultiOp(OpCode.DELETE, DeleteRequest(path, -1))
    if kind == "set":
        return MultiOp(OpCode.SET_DATA, SetDataRequest(path, b"new", -1))
    return MultiOp(OpCode.CHECK, CheckVersionRequest(path, -1))


@settings(max_examples=150, deadline=None)
@given(ops=_MULTI_OPS)
def test_StateMachine_multi_all_or_nothing(ops: list[tuple[str, str]]) -> None:
    """Whatever the ops, a multi forced to fail at its end changes nothing, and the same
    ops without the failing one change exactly what they change one by one."""
    machine = Machine()
    machine.open_session()
    machine.create("/r")
    before = snapshot(machine.sm)
    failing = [*map(lambda o: _op(*o), ops), MultiOp(OpCode.CHECK, CheckVersionRequest("/r", 77))]
    machine.apply(OpCode.MULTI, MultiRequest(tuple(failing)))
    assert snapshot(machine.sm) == before

    # Apply for real, and compare with applying op by op until the first failure.
    multi = machine.apply(OpCode.MULTI, MultiRequest(tuple(_op(*o) for o in ops)))
    codes = [r.err for r in MultiResponse.from_bytes(multi.body).results]
    one_by_one = Machine()
    one_by_one.open_session()
    one_by_one.create("/r")
    one_by_one.zxid = machine.zxid - 1
    outcomes = []
    for kind, path in ops:
        op = _op(kind, path)
        single = one_by_one.sm.apply(
            Entry(machine.zxid, machine.time, SESSION, op.type, op.request, CLIENT_IDS)
        )
        outcomes.append(single.err)
        if single.err:
            break
    if any(outcomes):
        assert snapshot(machine.sm) == before
        assert codes[len(outcomes) - 1] == outcomes[-1]
    else:
        assert codes == [0] * len(ops)
        assert snapshot(machine.sm)[0] == snapshot(one_by_one.sm)[0]


def test_StateMachine_multi_with_read_op_is_marshalling_error(m: Machine) -> None:
    """A multi holding a read (or deleteContainer) fails as a whole: MarshallingError."""
    ops = (
        MultiOp(OpCode.CREATE, CreateRequest("/a", b"", OPEN, 0)),
        MultiOp(OpCode.GET_DATA, GetDataRequest("/", False)),
    )
    assert m.apply(OpCode.MULTI, MultiRequest(ops)).err == ErrorCode.MARSHALLING_ERROR
    assert m.sm.get("/a") is None


def test_StateMachine_multi_create_type_follows_flags(m: Machine) -> None:
    """In a multi, the create flags pick the op: CONTAINER makes a container whatever the
    opcode; create2 answers like create; createTTL without TTL flags is a plain create."""
    ops = (
        MultiOp(OpCode.CREATE, CreateRequest("/c", b"", OPEN, CreateMode.CONTAINER)),
        MultiOp(OpCode.CREATE2, CreateRequest("/p", b"", OPEN, 0)),
        MultiOp(OpCode.CREATE_TTL, CreateTTLRequest("/t", b"", OPEN, 0, 5000)),
    )
    results = MultiResponse.from_bytes(m.apply(OpCode.MULTI, MultiRequest(ops)).body).results
    assert [(r.type, r.err) for r in results] == [(15, 0), (1, 0), (1, 0)]
    assert m.sm.nodes["/c"].ephemeral_owner == CONTAINER_OWNER
    assert m.sm.nodes["/t"].ephemeral_owner == 0


# --- create, delete, cversion ----------------------------------------------------------------


def test_StateMachine_sequential_suffix_counts_creates(m: Machine) -> None:
    """The suffix is the parent's create count (10 digits); deletes do not advance it but
    the reported cversion (2 * creates - numChildren) counts them."""
    m.create("/q")
    names = [created_path(m.create("/q/n-", mode=CreateMode.PERSISTENT_SEQUENTIAL)) for _ in "abc"]
    assert names == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]
    m.apply(OpCode.DELETE, DeleteRequest(names[0], -1))
    m.apply(OpCode.DELETE, DeleteRequest(names[1], -1))
    assert m.sm.nodes["/q"].cversion == 3
    assert (m.stat("/q").cversion, m.stat("/q").num_children) == (5, 1)
    assert created_path(m.create("/q/n-", mode=CreateMode.PERSISTENT_SEQUENTIAL)) == (
        "/q/n-0000000003"
    )


def test_StateMachine_parent_pzxid_follows_create_and_delete(m: Machine) -> None:
    """Creating or deleting a child sets the parent's pzxid to that entry's zxid."""
    m.create("/p")
    m.create("/p/c")
    assert m.stat("/p").pzxid == m.zxid
    m.apply(OpCode.DELETE, DeleteRequest("/p/c", -1))
    assert m.stat("/p").pzxid == m.zxid
    assert m.stat("/p").mzxid == m.stat("/p").czxid


def test_StateMachine_system_nodes_stats(m: Machine) -> None:
    """/zookeeper reports cversion -2 (two children never created through it) and
    /zookeeper/config aversion -1, as in ZooKeeper."""
    assert m.stat("/zookeeper").cversion == -2
    assert m.stat("/zookeeper/config").aversion == -1
    assert m.stat("/").cversion == -1


def test_StateMachine_container_and_ttl_show_owner_zero(m: Machine) -> None:
    """Only a session id is shown as ephemeralOwner; containers and TTL nodes show 0."""
    m.apply(OpCode.CREATE_CONTAINER, CreateRequest("/c", b"", OPEN, CreateMode.CONTAINER))
    m.apply(
        OpCode.CREATE_TTL, CreateTTLRequest("/t", b"", OPEN, CreateMode.PERSISTENT_WITH_TTL, 50)
    )
    m.create("/e", mode=CreateMode.EPHEMERAL)
    assert [m.stat(p).ephemeral_owner for p in ("/c", "/t", "/e")] == [0, 0, SESSION]
    assert m.sm.nodes["/t"].ephemeral_owner == ttl_owner(50)


def test_StateMachine_opcode_makes_containers(m: Machine) -> None:
    """createContainer makes a container whatever its flags; create with the CONTAINER
    flag makes a persistent node."""
    m.apply(OpCode.CREATE_CONTAINER, CreateRequest("/c", b"", OPEN, 0))
    m.create("/p", mode=CreateMode.CONTAINER)
    assert m.sm.containers == {"/c"}
    assert m.sm.nodes["/p"].ephemeral_owner == 0


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("a", ErrorCode.BAD_ARGUMENTS),
        ("/x/", ErrorCode.NO_NODE),
        ("/x//y", ErrorCode.NO_NODE),
        ("/x\0", ErrorCode.BAD_ARGUMENTS),
        ("/", ErrorCode.BAD_ARGUMENTS),
        ("/zookeeper/quota", ErrorCode.BAD_ARGUMENTS),
    ],
)
def test_StateMachine_delete_path_checks(m: Machine, path: str, code: int) -> None:
    """delete rejects only paths without "/" or with NUL, and the system nodes; any other
    malformed path simply does not exist."""
    m.create("/x")
    assert m.apply(OpCode.DELETE, DeleteRequest(path, -1)).err == code


def test_StateMachine_reads_do_not_validate(m: Machine) -> None:
    """getData of a malformed path is NoNode; exists rejects only NUL."""
    with pytest.raises(NoNodeError):
        m.sm.read(OpCode.GET_DATA, GetDataRequest("a//b", False), CLIENT_IDS, SESSION)
    with pytest.raises(NoNodeError):
        m.sm.read(OpCode.EXISTS, ExistsRequest("/a/", False), CLIENT_IDS, SESSION)
    with pytest.raises(Exception) as info:
        m.sm.read(OpCode.EXISTS, ExistsRequest("/a\0", False), CLIENT_IDS, SESSION)
    assert getattr(info.value, "code", None) == ErrorCode.BAD_ARGUMENTS


def test_StateMachine_failed_entry_consumes_zxid(m: Machine) -> None:
    """Every entry advances last_zxid, failed or not."""
    result = m.apply(OpCode.DELETE, DeleteRequest("/missing", -1))
    assert result.err == ErrorCode.NO_NODE
    assert m.sm.last_zxid == m.zxid


def test_StateMachine_unknown_session_is_expired(m: Machine) -> None:
    """A write from a session the state does not know is SessionExpired."""
    assert m.create("/x", session=0x9999).err == ErrorCode.SESSION_EXPIRED
    assert m.sm.get("/x") is None


# --- sessions and ephemerals ------------------------------------------------------------------


def test_StateMachine_ephemerals_indexed_and_removed_on_close(m: Machine) -> None:
    """A session's ephemerals are indexed on it; closing the session deletes them (and
    only them), bumping the parents' pzxid, with NodeDeleted and NodeChildrenChanged."""
    m.open_session(OTHER)
    m.create("/p")
    m.create("/p/mine", mode=CreateMode.EPHEMERAL)
    m.create("/mine2", mode=CreateMode.EPHEMERAL_SEQUENTIAL)
    m.create("/p/theirs", mode=CreateMode.EPHEMERAL, session=OTHER)
    assert m.sm.sessions[SESSION].ephemerals == {"/p/mine", "/mine20000000001"}
    cversion = m.sm.nodes["/p"].cversion
    result = m.apply(OpCode.CLOSE_SESSION, CloseSessionRequest())
    assert result.err == 0
    assert sorted(event[:2] for event in result.events) == sorted(
        [
            (EventType.NODE_DELETED, "/p/mine"),
            (EventType.NODE_CHILDREN_CHANGED, "/p"),
            (EventType.NODE_DELETED, "/mine20000000001"),
            (EventType.NODE_CHILDREN_CHANGED, "/"),
        ]
    )
    assert SESSION not in m.sm.sessions
    assert m.children("/p") == ["theirs"]
    assert m.sm.nodes["/p"].pzxid == m.zxid
    assert m.sm.nodes["/p"].cversion == cversion
    assert m.apply(OpCode.CLOSE_SESSION, CloseSessionRequest()).err == ErrorCode.SESSION_EXPIRED


def test_StateMachine_deleted_ephemeral_leaves_index(m: Machine) -> None:
    """Deleting an ephemeral removes it from its session's index."""
    m.create("/e", mode=CreateMode.EPHEMERAL)
    m.apply(OpCode.DELETE, DeleteRequest("/e", -1))
    assert m.sm.sessions[SESSION].ephemerals == set()


def test_StateMachine_get_ephemerals_prefix(m: Machine) -> None:
    """getEphemerals lists the caller's ephemerals sorted, filtered by string prefix; ""
    and "/" mean all."""
    m.open_session(OTHER)
    m.create("/app")
    for path in ("/app/a", "/app/b", "/apple", "/other"):
        m.create(path, mode=CreateMode.EPHEMERAL)
    m.create("/app/c", mode=CreateMode.EPHEMERAL, session=OTHER)

    def listed(prefix: str) -> list[str]:
        body = m.sm.read(OpCode.GET_EPHEMERALS, GetEphemeralsRequest(prefix), CLIENT_IDS, SESSION)
        return list(Reader(body).read_strings())

    assert listed("/app") == ["/app/a", "/app/b", "/apple"]
    assert listed("/app/") == ["/app/a", "/app/b"]
    assert listed("/") == listed("") == ["/app/a", "/app/b", "/apple", "/other"]
    assert listed("/nothing") == []


def test_StateMachine_get_all_children_number(m: Machine) -> None:
    """getAllChildrenNumber counts every descendant; for / that includes /zookeeper's."""
    m.create("/a")
    m.create("/a/b")
    m.create("/a/b/c")
    m.create("/a/d")

    def count(path: str) -> int:
        body = m.sm.read(
            OpCode.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest(path), CLIENT_IDS, 0
        )
        return Reader(body).read_int()

    assert (count("/a"), count("/a/b"), count("/a/b/c")) == (3, 1, 0)
    assert count("/") == 4 + 3  # /a's subtree and /zookeeper, quota, config
    with pytest.raises(NoNodeError):
        count("/missing")


# --- containers and TTL nodes -----------------------------------------------------------------


def test_StateMachine_container_reap(m: Machine) -> None:
    """A container is a reap candidate once emptied after having had a child; a delete
    entry for it succeeds only while that still holds."""
    m.apply(OpCode.CREATE_CONTAINER, CreateRequest("/c", b"", OPEN, CreateMode.CONTAINER))
    m.apply(OpCode.CREATE_CONTAINER, CreateRequest("/never", b"", OPEN, CreateMode.CONTAINER))
    assert m.sm.reap_candidates(m.time) == []
    m.create("/c/k")
    assert m.sm.reap_candidates(m.time) == []
    reap = m.apply(OpCode.DELETE_CONTAINER, DeleteRequest("/c", -1), session=0, auth=())
    assert reap.err == ErrorCode.NOT_EMPTY
    m.apply(OpCode.DELETE, DeleteRequest("/c/k", -1))
    assert m.sm.reap_candidates(m.time) == ["/c"]
    never = m.apply(OpCode.DELETE_CONTAINER, DeleteRequest("/never", -1), session=0, auth=())
    assert never.err == ErrorCode.BAD_VERSION
    reap = m.apply(OpCode.DELETE_CONTAINER, DeleteRequest("/c", -1), session=0, auth=())
    assert (reap.err, [event[:2] for event in reap.events]) == (
        0,
        [(EventType.NODE_DELETED, "/c"), (EventType.NODE_CHILDREN_CHANGED, "/")],
    )
    assert m.sm.containers == {"/never"}


def test_StateMachine_ttl_reap_uses_entry_time(m: Machine) -> None:
    """A TTL node is a candidate when now - mtime > ttl and it has no children; the
    delete entry re-checks with its own time, so a node modified meanwhile survives."""
    m.apply(
        OpCode.CREATE_TTL, CreateTTLRequest("/t", b"", OPEN, CreateMode.PERSISTENT_WITH_TTL, 100)
    )
    mtime = m.sm.nodes["/t"].mtime
    assert m.sm.reap_candidates(mtime + 100) == []
    assert m.sm.reap_candidates(mtime + 101) == ["/t"]
    # Stamped too early (its time is the leader's, not the candidate scan's): refused.
    early = Entry(m.zxid + 1, mtime + 50, 0, OpCode.DELETE_CONTAINER, DeleteRequest("/t", -1))
    m.zxid += 1
    assert m.sm.apply(early).err == ErrorCode.BAD_VERSION
    m.apply(OpCode.SET_DATA, SetDataRequest("/t", b"touch", -1))
    touched = m.sm.nodes["/t"].mtime
    late_for_old = Entry(
        m.zxid + 1, mtime + 101, 0, OpCode.DELETE_CONTAINER, DeleteRequest("/t", -1)
    )
    m.zxid += 1
    assert m.sm.apply(late_for_old).err == ErrorCode.BAD_VERSION
    reap = Entry(m.zxid + 1, touched + 101, 0, OpCode.DELETE_CONTAINER, DeleteRequest("/t", -1))
    m.zxid += 1
    assert m.sm.apply(reap).err == 0
    assert m.sm.get("/t") is None and m.sm.ttls == set()


def test_StateMachine_ttl_with_children_not_reaped(m: Machine) -> None:
    """A TTL node with children is no candidate, however old."""
    m.apply(
        OpCode.CREATE_TTL, CreateTTLRequest("/t", b"", OPEN, CreateMode.PERSISTENT_WITH_TTL, 10)
    )
    m.create("/t/k")
    assert m.sm.reap_candidates(m.time + 10_000) == []


@pytest.mark.parametrize("ttl", [0, -1, 2**40])
def test_StateMachine_ttl_range(m: Machine, ttl: int) -> None:
    """A TTL must be in 1 .. 2**40 - 1 ms."""
    request = CreateTTLRequest("/t", b"", OPEN, CreateMode.PERSISTENT_WITH_TTL, ttl)
    assert m.apply(OpCode.CREATE_TTL, request).err == ErrorCode.BAD_ARGUMENTS


# --- ACLs through apply ------------------------------------------------------------------------


def test_StateMachine_acl_checks_use_entry_auth(m: Machine) -> None:
    """The identities in the entry decide ACL checks (digest and ip schemes)."""
    alice = DigestScheme().authenticate(None, b"alice:secret")  # type: ignore[arg-type]
    acl = (ACL(Perm.ALL, alice[0]), ACL(Perm.READ, Id("ip", "10.0.0.0/8")))
    assert m.apply(OpCode.CREATE, CreateRequest("/s", b"", acl, 0)).err == 0
    assert m.apply(OpCode.SET_DATA, SetDataRequest("/s", b"x", -1)).err == ErrorCode.NO_AUTH
    ok = m.apply(OpCode.SET_DATA, SetDataRequest("/s", b"x", -1), auth=(*CLIENT_IDS, *alice))
    assert ok.err == 0
    with pytest.raises(NoAuthError):
        m.sm.read(OpCode.GET_DATA, GetDataRequest("/s", False), CLIENT_IDS, SESSION)
    remote = (Id("ip", "10.1.2.3"),)
    assert m.sm.read(OpCode.GET_DATA, GetDataRequest("/s", False), remote, SESSION)
    denied = m.apply(OpCode.SET_ACL, SetACLRequest("/s", OPEN, -1), auth=remote)
    assert denied.err == ErrorCode.NO_AUTH


def test_StateMachine_delete_checks_parent_acl_before_existence(m: Machine) -> None:
    """Deleting a missing child of a parent without DELETE is NoAuth, not NoNode."""
    m.apply(
        OpCode.CREATE, CreateRequest("/locked", b"", (ACL(Perm.READ, Id("world", "anyone")),), 0)
    )
    assert m.apply(OpCode.DELETE, DeleteRequest("/locked/x", -1)).err == ErrorCode.NO_AUTH


def test_StateMachine_auth_acl_expansion_keeps_duplicates(m: Machine) -> None:
    """``auth`` expands to each authenticated id after deduplication of the request."""
    alice = DigestScheme().authenticate(None, b"alice:pw")[0]  # type: ignore[arg-type]
    acl = (ACL(Perm.ALL, Id("auth", "")), ACL(Perm.ALL, alice), ACL(Perm.ALL, alice))
    assert (
        m.apply(OpCode.CREATE, CreateRequest("/d", b"", acl, 0), auth=(*CLIENT_IDS, alice)).err == 0
    )
    assert m.sm.nodes["/d"].acl == (ACL(Perm.ALL, alice), ACL(Perm.ALL, alice))


def test_AclPolicy_reused_acl_tuple_gives_the_same_answers() -> None:
    """The policy's caches (by ACL tuple identity) never change a verdict: the same tuple
    checked for different callers and permissions, and one ``auth`` ACL fixed up for
    different callers, answer as a fresh policy would."""
    schemes = {"world": WorldScheme(), "digest": DigestScheme(), "ip": IpScheme()}
    policy = AclPolicy(schemes)
    alice = DigestScheme().authenticate(None, b"alice:pw")[0]  # type: ignore[arg-type]
    bob = DigestScheme().authenticate(None, b"bob:pw")[0]  # type: ignore[arg-type]
    read_only = (ACL(Perm.READ, Id("world", "anyone")), ACL(Perm.ALL, alice))
    for _ in range(2):  # the second round runs on warm caches
        policy.check(read_only, Perm.READ, (), "/x")
        policy.check(read_only, Perm.WRITE, (alice,), "/x")
        with pytest.raises(NoAuthError):
            policy.check(read_only, Perm.WRITE, (bob,), "/x")
        assert policy.fixup(read_only, (bob,), "/x") == read_only
        auth_acl = (ACL(Perm.ALL, Id("auth", "")),)
        assert policy.fixup(auth_acl, (alice,), "/x") == (ACL(Perm.ALL, alice),)
        assert policy.fixup(auth_acl, (bob,), "/x") == (ACL(Perm.ALL, bob),)
    bad = (ACL(Perm.ALL, Id("nosuchscheme", "x")),)
    for _ in range(2):  # an invalid ACL is refused every time, never cached as valid
        with pytest.raises(InvalidACLError):
            policy.fixup(bad, (), "/x")


# --- entries -----------------------------------------------------------------------------------


ENTRIES = [
    Entry(1, 2, 3, OpCode.CREATE_SESSION, CreateSession(4000, bytes(range(16)))),
    Entry(2, 3, 3, OpCode.CLOSE_SESSION, CloseSessionRequest()),
    Entry(3, 4, 3, OpCode.CREATE, CreateRequest("/a", b"\0data", OPEN, 3), (Id("ip", "::1"),)),
    Entry(4, 5, 3, OpCode.CREATE_TTL, CreateTTLRequest("/t", None, OPEN, 5, 2**40 - 1)),
    Entry(5, 6, 3, OpCode.SET_DATA, SetDataRequest("/a", b"", -1), (Id("digest", "u:h"),)),
    Entry(6, 7, 0, OpCode.DELETE_CONTAINER, DeleteRequest("/c", -1)),
    Entry(7, 8, 3, OpCode.SET_ACL, SetACLRequest("/a", OPEN, 7)),
    Entry(
        2**63 - 1,
        -1,
        -(2**63),
        OpCode.MULTI,
        MultiRequest(
            (
                MultiOp(OpCode.CREATE, CreateRequest("/m", b"x", OPEN, 0)),
                MultiOp(OpCode.CHECK, CheckVersionRequest("/m", 0)),
                MultiOp(OpCode.DELETE, DeleteRequest("/m", 0)),
            )
        ),
        (Id("ip", "127.0.0.1"), Id("digest", "a:b")),
    ),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"op{e.type}" for e in ENTRIES])
def test_Entry_encode_decode_round_trip(entry: Entry) -> None:
    """decode(encode(e)) == e for every kind of entry, auth ids included."""
    assert Entry.decode(entry.encode()) == entry


def test_Entry_decode_rejects_garbage() -> None:
    """Trailing bytes or an unknown type are a ProtocolError, not a wrong entry."""
    from coord.protocol import ProtocolError

    with pytest.raises(ProtocolError):
        Entry.decode(ENTRIES[2].encode() + b"x")
    bad = bytearray(ENTRIES[1].encode())
    bad[24:28] = (9999).to_bytes(4, "big")
    with pytest.raises(ProtocolError):
        Entry.decode(bytes(bad))


def test_StateMachine_apply_is_deterministic() -> None:
    """Two replicas applying the same entries reach the same digest and replies."""
    replicas = [Machine(), Machine()]
    replies: list[list[tuple[int, bytes]]] = [[], []]
    for index, machine in enumerate(replicas):
        machine.open_session()
        for i in range(20):
            result = machine.create(f"/n{i % 7}", bytes([i]), mode=CreateMode(i % 4))
            replies[index].append((result.err, result.body))
        machine.apply(OpCode.CLOSE_SESSION, CloseSessionRequest())
    assert replies[0] == replies[1]
    assert replicas[0].sm.digest() == replicas[1].sm.digest()

"""The sans-IO client core, its watch registry, connect strings and the retry policy --
driven byte by byte with a fake clock, no server and no event loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import coord
from coord.client._core import (
    AuthReply,
    ClientCore,
    Connected,
    Phase,
    Reply,
    SessionExpired,
    WatchesRestored,
    WatchEvent,
)
from coord.client._paths import Chroot, HostPort, parse_connect_string, validate_path
from coord.client._registry import WatchKind, WatchRegistry
from coord.client._retry import RetryPolicy
from coord.protocol import (
    AddWatchRequest,
    AuthPacket,
    BadArgumentsError,
    ConnectionLossError,
    ConnectRequest,
    ConnectResponse,
    ErrorCode,
    EventType,
    ExistsRequest,
    FrameDecoder,
    GetChildrenRequest,
    GetDataRequest,
    GetDataResponse,
    KeeperState,
    OpCode,
    ProtocolError,
    Reader,
    ReplyHeader,
    RequestHeader,
    SetWatches,
    SetWatches2,
    Stat,
    WatcherEvent,
    Xid,
    frame,
)

STAT = Stat(1, 2, 3, 4, 0, 0, 0, 0, 1, 0, 1)
PASSWD = bytes(range(16))


def handshake_reply(timeout: int = 9000, session: int = 0x42) -> bytes:
    return frame(ConnectResponse(0, timeout, session, PASSWD).to_bytes())


def reply(xid: int, zxid: int, err: int = 0, body: bytes = b"") -> bytes:
    return frame(ReplyHeader(xid, zxid, err).to_bytes() + body)


def notification(kind: int, path: str, zxid: int = -1, state: int = 3) -> bytes:
    return reply(Xid.NOTIFICATION, zxid, 0, WatcherEvent(kind, state, path).to_bytes())


def requests(data: bytes) -> list[tuple[RequestHeader, Reader]]:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    out = []
    for payload in decoder.frames():
        reader = Reader(payload)
        out.append((RequestHeader.read(reader), reader))
    return out


def connected_core(timeout: int = 9000) -> ClientCore[str]:
    core: ClientCore[str] = ClientCore(timeout)
    core.connect(0.0, 3.0)
    (event,) = core.receive_data(handshake_reply(timeout), 0.0)
    assert isinstance(event, Connected)
    return core


# --- the handshake ------------------------------------------------------------------------


def test_ClientCore_handshake_sends_session_and_last_zxid() -> None:
    """The ConnectRequest carries the timeout asked for, then the session and last zxid."""
    core: ClientCore[str] = ClientCore(5000, read_only=True)
    decoder = FrameDecoder()
    decoder.receive_data(core.connect(0.0, 1.0))
    first = ConnectRequest.from_bytes(decoder.frames()[0])
    assert first == ConnectRequest(0, 0, 5000, 0, bytes(16), True)
    (event,) = core.receive_data(handshake_reply(4000), 0.1)
    assert event == Connected(0x42, PASSWD, 4000, False, True)
    assert core.phase is Phase.CONNECTED and core.read_timeout == pytest.approx(4000 * 2 / 3000)
    xid, _ = core.request(OpCode.GET_DATA, GetDataRequest("/a", False), 0.2)
    core.receive_data(reply(xid, 0x99, 0, GetDataResponse(b"x", STAT).to_bytes()), 0.3)
    core.connection_lost()
    decoder = FrameDecoder()
    decoder.receive_data(core.connect(1.0, 1.0))
    again = ConnectRequest.from_bytes(decoder.frames()[0])
    assert (again.session_id, again.passwd, again.last_zxid_seen) == (0x42, PASSWD, 0x99)
    (event,) = core.receive_data(handshake_reply(4000), 1.1)
    assert isinstance(event, Connected) and not event.new_session


def test_ClientCore_refused_handshake_expires_the_session_for_good() -> None:
    """A ConnectResponse with timeout 0 is SessionExpired, with every watcher; no reconnect."""
    core = connected_core()
    xid, _ = core.request(OpCode.GET_DATA, GetDataRequest("/w", True), 0.0, "watcher")
    core.receive_data(reply(xid, 5, 0, GetDataResponse(b"", STAT).to_bytes()), 0.0)
    core.connection_lost()
    core.connect(1.0, 1.0)
    (event,) = core.receive_data(frame(ConnectResponse(0, 0, 0, bytes(16)).to_bytes()), 1.0)
    assert event == SessionExpired(("watcher",))
    assert core.phase is Phase.EXPIRED
    with pytest.raises(RuntimeError):
        core.connect(2.0, 1.0)


def test_ClientCore_requests_need_a_connection() -> None:
    core: ClientCore[str] = ClientCore(1000)
    with pytest.raises(ConnectionLossError):
        core.request(OpCode.GET_DATA, GetDataRequest("/", False), 0.0)


# --- replies ------------------------------------------------------------------------------


def test_ClientCore_replies_are_decoded_by_opcode_in_xid_order() -> None:
    """xids count from 1; a reply body is decoded by its request's opcode."""
    core = connected_core()
    xid1, data1 = core.request(OpCode.GET_DATA, GetDataRequest("/a", False), 0.0)
    xid2, _ = core.request(OpCode.EXISTS, ExistsRequest("/b", False), 0.0)
    assert (xid1, xid2) == (1, 2)
    ((header, _),) = requests(data1)
    assert header == RequestHeader(1, OpCode.GET_DATA)
    events = core.receive_data(
        reply(1, 7, 0, GetDataResponse(b"v", STAT).to_bytes()) + reply(2, 8, ErrorCode.NO_NODE),
        0.0,
    )
    assert events == [
        Reply(1, 7, 0, OpCode.GET_DATA, GetDataResponse(b"v", STAT)),
        Reply(2, 8, ErrorCode.NO_NODE, OpCode.EXISTS, None),
    ]
    assert core.last_zxid == 8 and core.pending == 0


def test_ClientCore_reply_out_of_order_is_a_protocol_error() -> None:
    """A reply that is not for the oldest pending request means a corrupt stream."""
    core = connected_core()
    core.request(OpCode.EXISTS, ExistsRequest("/a", False), 0.0)
    core.request(OpCode.EXISTS, ExistsRequest("/b", False), 0.0)
    with pytest.raises(ProtocolError, match="out of order"):
        core.receive_data(reply(2, 1), 0.0)
    assert core.connection_lost() == ([1, 2], [])
    with pytest.raises(ProtocolError, match="no pending"):
        core2 = connected_core()
        core2.receive_data(reply(9, 1), 0.0)


def test_ClientCore_replies_split_across_reads_are_reassembled() -> None:
    core = connected_core()
    xid, _ = core.request(OpCode.GET_DATA, GetDataRequest("/a", False), 0.0)
    data = reply(xid, 3, 0, GetDataResponse(b"payload", STAT).to_bytes())
    events = []
    for i in range(len(data)):
        events += core.receive_data(data[i : i + 1], 0.0)
    assert [type(e) for e in events] == [Reply]


def test_ClientCore_connection_lost_fails_what_was_in_flight_and_restarts_xids() -> None:
    core = connected_core()
    core.request(OpCode.EXISTS, ExistsRequest("/a", False), 0.0)
    core.add_auth("digest", b"u:p", 0.0, "token")
    assert core.connection_lost() == ([1], ["token"])
    core.connect(1.0, 1.0)
    core.receive_data(handshake_reply(), 1.0)
    core.data_to_send()
    assert core.request(OpCode.EXISTS, ExistsRequest("/a", False), 1.0)[0] == 1


# --- liveness -----------------------------------------------------------------------------


def test_ClientCore_pings_when_idle_and_declares_a_silent_server_dead() -> None:
    """Ping after T/3 without sending; dead after 2T/3 without receiving."""
    core = connected_core(timeout=9000)
    assert core.next_timeout(0.0) == pytest.approx(3.0)
    assert core.tick(2.9) == b""
    ping = core.tick(3.0)
    ((header, _),) = requests(ping)
    assert header == RequestHeader(Xid.PING, OpCode.PING)
    assert core.tick(3.1) == b""
    core.receive_data(reply(Xid.PING, 0), 4.0)  # ping replies are consumed silently
    assert core.next_timeout(4.0) == pytest.approx(2.0)  # next ping at 6.0
    core.tick(6.0)
    with pytest.raises(ConnectionLossError):
        core.tick(10.0)


def test_ClientCore_handshake_times_out() -> None:
    core: ClientCore[str] = ClientCore(9000)
    core.connect(0.0, 1.5)
    assert core.next_timeout(0.5) == pytest.approx(1.0)
    core.tick(1.0)
    with pytest.raises(ConnectionLossError, match="handshake"):
        core.tick(1.5)


def test_ClientCore_ping_interval_is_capped_at_ten_seconds() -> None:
    core = connected_core(timeout=60000)
    assert core.ping_interval == 10.0


# --- credentials and watches across reconnects --------------------------------------------


def test_ClientCore_resends_credentials_then_watches_after_a_reconnect() -> None:
    """After the handshake: credentials first (READ may be needed), then setWatches
    relative to the last zxid; WatchesRestored once every batch is answered."""
    core = connected_core()
    auth = core.add_auth("digest", b"u:p", 0.0, "t1")
    ((header, reader),) = requests(auth)
    assert header.xid == Xid.AUTH and AuthPacket.read(reader).scheme == "digest"
    (event,) = core.receive_data(reply(Xid.AUTH, 0), 0.0)
    assert event == AuthReply(0, "digest", "t1")
    xid, _ = core.request(OpCode.GET_DATA, GetDataRequest("/d", True), 0.0, "w")
    core.receive_data(reply(xid, 0x10, 0, GetDataResponse(b"", STAT).to_bytes()), 0.0)
    core.connection_lost()
    core.connect(1.0, 1.0)
    assert core.data_to_send() == b""  # nothing before the handshake reply
    core.receive_data(handshake_reply(), 1.0)
    sent = requests(core.data_to_send())
    assert [h for h, _ in sent] == [
        RequestHeader(Xid.AUTH, OpCode.AUTH),
        RequestHeader(Xid.SET_WATCHES, OpCode.SET_WATCHES),
    ]
    assert SetWatches.read(sent[1][1]) == SetWatches(0x10, ("/d",), (), ())
    events = core.receive_data(reply(Xid.AUTH, 0) + reply(Xid.SET_WATCHES, 0x20), 1.0)
    assert events == [AuthReply(0, "digest", None), WatchesRestored(0x20, 0x10)]
    assert core.watch_zxid == 0x20


def test_ClientCore_rejected_credentials_are_forgotten() -> None:
    core = connected_core()
    core.add_auth("digest", b"bad", 0.0, "t")
    (event,) = core.receive_data(reply(Xid.AUTH, 0, ErrorCode.AUTH_FAILED), 0.0)
    assert event == AuthReply(ErrorCode.AUTH_FAILED, "digest", "t")
    assert core.credentials == []


def test_ClientCore_registers_watches_only_when_the_reply_confirms_them() -> None:
    """getData on a missing node sets nothing; exists on one sets an exist watch."""
    core = connected_core()
    x1, _ = core.request(OpCode.GET_DATA, GetDataRequest("/gone", True), 0.0, "get")
    x2, _ = core.request(OpCode.EXISTS, ExistsRequest("/gone", True), 0.0, "exists")
    x3, _ = core.request(OpCode.GET_CHILDREN, GetChildrenRequest("/p", True), 0.0, "kids")
    x4, _ = core.request(OpCode.ADD_WATCH, AddWatchRequest("/t", 1), 0.0, "tree")
    core.receive_data(
        reply(x1, 1, ErrorCode.NO_NODE)
        + reply(x2, 1, ErrorCode.NO_NODE)
        + reply(x3, 1, 0, b"\x00\x00\x00\x00")
        + reply(x4, 1, 0, b"\x00\x00\x00\x00"),
        0.0,
    )
    registry = core.registry
    assert not registry.has(WatchKind.DATA, "/gone")
    assert registry.watchers(WatchKind.EXIST, "/gone") == ["exists"]
    assert registry.watchers(WatchKind.CHILD, "/p") == ["kids"]
    assert registry.watchers(WatchKind.PERSISTENT_RECURSIVE, "/t") == ["tree"]
    (event,) = core.receive_data(notification(EventType.NODE_CREATED, "/gone"), 0.0)
    assert event == WatchEvent(EventType.NODE_CREATED, 3, "/gone", -1, ("exists",))
    (event,) = core.receive_data(notification(EventType.NODE_CREATED, "/t/x/y", 0x30), 0.0)
    assert event.watchers == ("tree",) and core.last_zxid == 0x30  # type: ignore[union-attr]


def test_ClientCore_one_shot_on_a_persistent_path_reasserts_the_persistent_watch() -> None:
    """ZOOKEEPER-4466 workaround: addWatch is sent again right after the one-shot; its
    reply is consumed by the core."""
    core = connected_core()
    xid, _ = core.request(OpCode.ADD_WATCH, AddWatchRequest("/p", 0), 0.0, "stream")
    core.receive_data(reply(xid, 1, 0, b"\x00\x00\x00\x00"), 0.0)
    xid, data = core.request(OpCode.GET_DATA, GetDataRequest("/p", True), 0.0, "once")
    assert [h.type for h, _ in requests(data)] == [OpCode.GET_DATA, OpCode.ADD_WATCH]
    events = core.receive_data(
        reply(xid, 2, 0, GetDataResponse(b"", STAT).to_bytes())
        + reply(xid + 1, 2, 0, b"\x00\x00\x00\x00"),
        0.0,
    )
    assert [type(e) for e in events] == [Reply]
    (event,) = core.receive_data(notification(EventType.NODE_DATA_CHANGED, "/p"), 0.0)
    assert set(event.watchers) == {"stream", "once"}  # type: ignore[union-attr]
    (event,) = core.receive_data(notification(EventType.NODE_DATA_CHANGED, "/p"), 0.0)
    assert event.watchers == ("stream",)  # type: ignore[union-attr]


def test_ClientCore_expired_notification_ends_the_session() -> None:
    core = connected_core()
    (event,) = core.receive_data(notification(EventType.NONE, "", -1, KeeperState.EXPIRED), 0.0)
    assert isinstance(event, SessionExpired) and core.phase is Phase.EXPIRED


def test_ClientCore_watch_zxid_holds_while_set_watches_are_outstanding() -> None:
    """A connection lost between two setWatches batches re-registers relative to the old
    zxid, not to a zxid the second batch never covered."""
    core = connected_core()
    for i in range(3):
        path = f"/{'x' * 70000}{i}"
        core.registry.add(WatchKind.DATA, path, f"w{i}")
    core.watch_zxid = 5
    core.connection_lost()
    core.connect(1.0, 1.0)
    core.receive_data(handshake_reply(), 1.0)
    batches = requests(core.data_to_send())
    assert len(batches) == 2
    assert core.receive_data(reply(Xid.SET_WATCHES, 50), 1.0) == []
    core.receive_data(notification(EventType.NODE_DATA_CHANGED, "/elsewhere", 60), 1.0)
    assert core.watch_zxid == 5
    core.connection_lost()
    core.connect(2.0, 1.0)
    core.receive_data(handshake_reply(), 2.0)
    for _, reader in requests(core.data_to_send()):
        assert SetWatches.read(reader).relative_zxid == 5


# --- the registry -------------------------------------------------------------------------


def test_WatchRegistry_materialize_follows_the_java_client() -> None:
    """Created/changed fire data and exist watches, child events child watches, deletion
    all three; persistent ones stay; recursive ones get descendants but no child events."""
    registry: WatchRegistry[str] = WatchRegistry()
    registry.add(WatchKind.DATA, "/a", "data")
    registry.add(WatchKind.EXIST, "/a", "exist")
    registry.add(WatchKind.CHILD, "/a", "child")
    registry.add(WatchKind.PERSISTENT, "/a", "persistent")
    registry.add(WatchKind.PERSISTENT_RECURSIVE, "/", "tree")
    assert registry.materialize(EventType.NODE_CHILDREN_CHANGED, "/a") == ["child", "persistent"]
    assert registry.materialize(EventType.NODE_DATA_CHANGED, "/a") == [
        "data",
        "exist",
        "persistent",
        "tree",
    ]
    assert registry.materialize(EventType.NODE_DELETED, "/a") == ["persistent", "tree"]
    assert registry.materialize(EventType.NODE_CREATED, "/b/c") == ["tree"]
    assert registry.materialize(EventType.NODE_CHILDREN_CHANGED, "/b") == []
    assert sorted(registry.drain()) == ["persistent", "tree"]
    assert registry.is_empty()


def test_WatchRegistry_uses_set_watches2_only_for_persistent_watches() -> None:
    registry: WatchRegistry[str] = WatchRegistry()
    registry.add(WatchKind.DATA, "/d", "w")
    registry.add(WatchKind.EXIST, "/e", "w")
    registry.add(WatchKind.CHILD, "/c", "w")
    assert registry.set_watches(7) == [
        (OpCode.SET_WATCHES, SetWatches(7, ("/d",), ("/e",), ("/c",)))
    ]
    registry.add(WatchKind.PERSISTENT, "/p", "w")
    registry.add(WatchKind.PERSISTENT_RECURSIVE, "/r", "w")
    ((op, record),) = registry.set_watches(7)
    assert op == OpCode.SET_WATCHES2
    assert record == SetWatches2(7, ("/d",), ("/e",), ("/c",), ("/p",), ("/r",))


def test_WatchRegistry_persistent_watches_carry_catch_up_entries() -> None:
    """A persistent watch on a node known to exist is also sent as a data (and child)
    watch, on a node known to be missing as an exist watch: the server then fires the
    change made while the client was away."""
    registry: WatchRegistry[str] = WatchRegistry()
    registry.add(WatchKind.PERSISTENT, "/p", "w")
    registry.add(WatchKind.PERSISTENT_RECURSIVE, "/r", "w")
    registry.add(WatchKind.PERSISTENT, "/unknown", "w")
    registry.note_exists("/p", True)
    registry.note_exists("/r", False)
    registry.note_exists("/not-persistent", True)
    ((_, record),) = registry.set_watches(1)
    assert record == SetWatches2(1, ("/p",), ("/r",), ("/p",), ("/p", "/unknown"), ("/r",))
    registry.materialize(EventType.NODE_DELETED, "/p")
    registry.materialize(EventType.NODE_CREATED, "/r")
    assert registry.known_exists("/p") is False and registry.known_exists("/r") is True
    assert registry.remove(WatchKind.PERSISTENT, "/p", "w")
    assert registry.known_exists("/p") is None


@given(
    st.lists(st.text(alphabet="abcdef", min_size=1, max_size=300), min_size=1, unique=True),
    st.integers(min_value=1, max_value=2000),
)
def test_WatchRegistry_batches_keep_every_watch_and_stay_near_the_limit(
    names: list[str], limit: int
) -> None:
    """Batches hold every path exactly once, and close as soon as they reach the limit."""
    registry: WatchRegistry[str] = WatchRegistry()
    for i, name in enumerate(names):
        kind = (WatchKind.DATA, WatchKind.EXIST, WatchKind.CHILD)[i % 3]
        registry.add(kind, f"/{name}", "w")
    batches = registry.set_watches(0, limit)
    seen: list[str] = []
    for op, record in batches:
        assert op == OpCode.SET_WATCHES
        paths = [*record.data_watches, *record.exist_watches, *record.child_watches]
        size = sum(len(p.encode()) + 4 for p in paths)
        longest = max(len(p.encode()) + 4 for p in paths)
        assert size < limit + longest
        seen += paths
    assert sorted(seen) == sorted(f"/{n}" for n in names)


# --- connect strings, paths, retries ------------------------------------------------------


def test_parse_connect_string() -> None:
    parsed = parse_connect_string("a:1,b,[::1]:3/app/x")
    assert parsed.hosts == (HostPort("a", 1), HostPort("b", 2181), HostPort("::1", 3))
    assert parsed.chroot == "/app/x"
    assert parse_connect_string("a:1/").chroot == ""
    assert str(HostPort("::1", 3)) == "[::1]:3"
    for bad in ("", ",", "a:0", "a:99999", "a:x", "[::1"):
        with pytest.raises(ValueError):
            parse_connect_string(bad)
    with pytest.raises(BadArgumentsError):
        parse_connect_string("a:1/app/")


def test_Chroot_maps_paths_both_ways() -> None:
    chroot = Chroot("/app")
    assert chroot.to_server("/") == "/app" and chroot.to_server("/x") == "/app/x"
    assert chroot.to_client("/app") == "/" and chroot.to_client("/app/x") == "/x"
    assert chroot.to_client("/apple") == "/apple"
    assert Chroot("").to_server("/x") == "/x"


@pytest.mark.parametrize(
    "path", ["", "x", "/a/", "//a", "/a//b", "/a/./b", "/a/..", "/a\x00", "/a\x1f", "/\ud800"]
)
def test_validate_path_rejects_bad_paths(path: str) -> None:
    with pytest.raises(BadArgumentsError):
        validate_path(path)


def test_validate_path_accepts_sequential_prefixes() -> None:
    assert validate_path("/", sequential=True) == "/"
    assert validate_path("/q/", sequential=True) == "/q/"
    assert validate_path("/zoo keeper/ü") == "/zoo keeper/ü"


def test_RetryPolicy_backoff_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(initial_delay=0.1, max_delay=1.0, multiplier=2.0, jitter=0.5)
    assert [policy.backoff(n, 0.0) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert policy.backoff(1, 0.999) == pytest.approx(0.05, rel=0.01)
    assert policy.allows(1, 0.0) and not policy.allows(10, 0.0)
    assert not policy.allows(1, 60.0)
    assert not RetryPolicy.never().allows(1, 0.0)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)


# --- purity and exports -------------------------------------------------------------------

CLIENT_DIR = Path(coord.__file__).parent / "client"
PURE = ["_core.py", "_registry.py", "_paths.py", "_retry.py"]
FORBIDDEN = {"anyio", "asyncio", "trio", "socket", "selectors", "ssl", "threading", "time",
             "random", "uvloop", "subprocess", "uuid"}  # fmt: skip


@pytest.mark.parametrize("name", PURE)
def test_client_core_modules_import_no_io_clock_or_randomness(name: str) -> None:
    """The client's decision logic is sans-IO (CONVENTIONS.md 1): no I/O, clock or RNG."""
    tree = ast.parse((CLIENT_DIR / name).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            assert f"{node.module}.py" in PURE, f"{name} imports non-pure {node.module}"
    assert names & FORBIDDEN == set()


def test_public_names_are_exported_on_purpose() -> None:
    """coord.client and coord export exactly their __all__, and every name resolves."""
    import coord.client

    for module in (coord, coord.client):
        assert sorted(module.__all__) == sorted(set(module.__all__))
        for name in module.__all__:
            assert getattr(module, name) is not None
    for name in ("connect", "connect_sync", "Client", "SyncClient", "ConnectionState",
                 "RetryPolicy", "Stat", "ACL", "Id", "NoNodeError", "CoordError"):  # fmt: skip
        assert name in coord.__all__
    assert coord.connect is coord.client.connect

"""Bad input and abuse, the cases test_server_robustness.py does not cover: wrong protocol
versions, garbage after the handshake, truncated frames, huge ACL lists, deep and long
paths, request floods, many watches, half-open sessions, and a bounded hypothesis fuzzer
feeding random frames to a running server.

Every case ends with a clear error reply or a closed connection for the offender, and an
unaffected server: a healthy kazoo session keeps working, ``ruok`` answers, the tree's
invariants hold, and the tree is unchanged by whatever the offender's connection was
refused.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.client import KazooClient

from coord.protocol import (
    ACL,
    ConnectRequest,
    CreateRequest,
    ErrorCode,
    ExistsRequest,
    GetAllChildrenNumberRequest,
    Id,
    OpCode,
    Perm,
    RequestHeader,
    frame,
)
from coord.testing._server import CoordServerThread

OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)


@pytest.fixture(scope="module")
def server() -> Iterator[CoordServerThread]:
    with CoordServerThread(
        tick_time=250,
        min_session_timeout=500,
        handshake_timeout=1.0,
        max_frame=64 * 1024,
        max_client_connections=50,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def healthy(server: CoordServerThread) -> Iterator[KazooClient]:
    client = KazooClient(hosts=server.address, timeout=5)
    client.start(timeout=5)
    client.ensure_path("/healthy")
    client.set("/healthy", b"ok")
    yield client
    client.stop()
    client.close()


class Raw:
    """A raw protocol connection."""

    def __init__(self, server: CoordServerThread, *, handshake: bool = True) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=5)
        if handshake:
            self.send(frame(ConnectRequest(0, 0, 4000, 0, bytes(16)).to_bytes()))
            self.frame()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, xid: int, op: int, body: bytes = b"") -> None:
        self.send(frame(RequestHeader(xid, op).to_bytes() + body))

    def exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError(f"closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    def frame(self) -> bytes:
        (length,) = struct.unpack(">i", self.exact(4))
        return self.exact(length)

    def reply(self) -> tuple[int, int, bytes]:
        data = self.frame()
        xid, _zxid, err = struct.unpack_from(">iqi", data)
        return xid, err, data[16:]

    def is_closed(self, within: float = 5.0) -> bool:
        self.sock.settimeout(within)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def _check_tree(server: CoordServerThread) -> None:
    """Every node's parent exists and lists it; every listed child exists."""

    def check() -> None:
        nodes = server.server.state.nodes
        for path, node in nodes.items():
            prefix = path if path != "/" else ""
            for name in node.children:
                assert f"{prefix}/{name}" in nodes, (path, name)
            if path != "/":
                parent, name = path.rsplit("/", 1)
                assert name in nodes[parent or "/"].children, path

    server.call(check)


def _digest(server: CoordServerThread) -> int:
    return int(server.call(server.server.state.digest))


def _assert_healthy(server: CoordServerThread, client: KazooClient) -> None:
    assert client.get("/healthy")[0] == b"ok"
    client.set("/healthy", b"ok")
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"ruok")
        assert sock.recv(16) == b"imok"
    _check_tree(server)


def test_Server_wrong_protocol_version_is_closed(server, healthy):
    """A ConnectRequest with another protocol version gets no session: closed."""
    before = _digest(server)
    for version in (1, -1, 2**31 - 1):
        raw = Raw(server, handshake=False)
        raw.send(frame(ConnectRequest(version, 0, 4000, 0, bytes(16)).to_bytes()))
        assert raw.is_closed()
        raw.close()
    assert _digest(server) == before
    _assert_healthy(server, healthy)


def test_Server_garbage_frame_after_handshake_is_closed(server, healthy):
    """A frame of random bytes in place of a request closes the connection."""
    before = _digest(server)
    raw = Raw(server)
    raw.send(frame(b"\x00\x00\x00\x01\x00\x00\x00\x01\xde\xad\xbe\xef" * 3))  # create, garbage
    assert raw.is_closed()
    raw = Raw(server)
    raw.send(frame(b"\x07"))  # shorter than a request header
    assert raw.is_closed()
    assert _digest(server) == before
    _assert_healthy(server, healthy)


def test_Server_truncated_frames(server, healthy):
    """Half a handshake frame then silence is cut off at handshake_timeout; a request frame
    cut off by the client closing is dropped without effect."""
    before = _digest(server)
    raw = Raw(server, handshake=False)
    raw.send(frame(ConnectRequest(0, 0, 4000, 0, bytes(16)).to_bytes())[:20])
    started = time.monotonic()
    assert raw.is_closed(within=5)
    assert time.monotonic() - started < 3  # handshake_timeout is 1 s
    raw.close()
    raw = Raw(server)
    request = frame(
        RequestHeader(1, OpCode.CREATE).to_bytes()
        + CreateRequest("/truncated", b"x" * 100, OPEN, 0).to_bytes()
    )
    raw.send(request[: len(request) // 2])
    raw.sock.shutdown(socket.SHUT_WR)
    assert raw.is_closed()
    raw.close()
    assert _digest(server) == before
    _assert_healthy(server, healthy)


def test_Server_huge_acl_count_is_closed_and_creates_nothing(server, healthy):
    """An ACL list claiming 2^31-1 entries in a small frame is malformed: closed."""
    before = _digest(server)
    raw = Raw(server)
    body = bytearray(CreateRequest("/huge-acl", b"", OPEN, 0).to_bytes())
    # The ACL count follows path and data: patch it to the largest int.
    offset = 4 + len("/huge-acl") + 4
    body[offset : offset + 4] = struct.pack(">i", 2**31 - 1)
    raw.request(1, OpCode.CREATE, bytes(body))
    assert raw.is_closed()
    assert _digest(server) == before
    _assert_healthy(server, healthy)


def test_Server_long_acl_list_within_the_frame_limit_is_served(server, healthy):
    """A 2000-entry ACL list (under max_frame) is validated, deduplicated and stored."""
    acl = tuple(ACL(Perm.READ, Id("ip", f"10.0.{i // 250}.{i % 250}")) for i in range(2000))
    raw = Raw(server)
    raw.request(1, OpCode.CREATE, CreateRequest("/long-acl", b"", acl + acl[:10], 0).to_bytes())
    assert raw.reply()[:2] == (1, 0)
    assert len(server.call(lambda: server.server.state.nodes["/long-acl"].acl)) == 2000
    bad = (*acl[:100], ACL(Perm.READ, Id("ip", "not-an-address")))
    raw.request(2, OpCode.CREATE, CreateRequest("/bad-acl", b"", bad, 0).to_bytes())
    assert raw.reply()[:2] == (2, ErrorCode.INVALID_ACL)
    raw.close()
    _assert_healthy(server, healthy)


def test_Server_deep_and_long_paths(server, healthy):
    """A 300-level chain and a 60 KB path name are handled without recursion or errors;
    a path past max_frame closes only its connection."""
    raw = Raw(server)
    path = ""
    burst = bytearray()
    for depth in range(300):
        path += "/d"
        burst += frame(
            RequestHeader(depth + 1, OpCode.CREATE).to_bytes()
            + CreateRequest(path, b"", OPEN, 0).to_bytes()
        )
    raw.send(bytes(burst))
    for depth in range(300):
        assert raw.reply()[:2] == (depth + 1, 0)
    raw.request(400, OpCode.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest("/d").to_bytes())
    xid, err, body = raw.reply()
    assert (xid, err, struct.unpack(">i", body)[0]) == (400, 0, 299)
    long_name = "/" + "n" * 60_000
    raw.request(401, OpCode.CREATE, CreateRequest(long_name, b"", OPEN, 0).to_bytes())
    assert raw.reply()[:2] == (401, 0)
    raw.request(402, OpCode.EXISTS, ExistsRequest("/" + "x" * 70_000, False).to_bytes())
    assert raw.is_closed()
    _assert_healthy(server, healthy)


def test_Server_request_flood_without_reading_replies(server, healthy):
    """A client pipelining 30000 requests and never reading its replies does not stall
    the healthy session; closing it frees the server."""
    raw = Raw(server)
    one = frame(RequestHeader(1, OpCode.EXISTS).to_bytes() + ExistsRequest("/x", False).to_bytes())
    raw.sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 3
    while sent < 30000 and time.monotonic() < deadline:
        try:
            raw.sock.send(one * 100)
            sent += 100
        except BlockingIOError:
            # The server stopped reading (its output is not being drained): healthy
            # clients must still be served meanwhile.
            _assert_healthy(server, healthy)
            time.sleep(0.01)
    _assert_healthy(server, healthy)
    raw.close()
    deadline = time.monotonic() + 5
    while server.call(lambda: len(server.server.connections)) > 1:
        assert time.monotonic() < deadline, "the flooder's connection was never released"
        time.sleep(0.02)
    _assert_healthy(server, healthy)


def test_Server_many_watches_are_released_with_the_connection(server, healthy):
    """20000 watches from one connection work, and all go when it closes."""
    count_before = server.call(server.server.watches.count)
    raw = Raw(server)
    burst = b"".join(
        frame(RequestHeader(i, OpCode.EXISTS).to_bytes() + ExistsRequest(f"/w{i}", True).to_bytes())
        for i in range(1, 20001)
    )
    raw.send(burst)
    for i in range(1, 20001):
        assert raw.reply()[:2] == (i, ErrorCode.NO_NODE)
    assert server.call(server.server.watches.count) == count_before + 20000
    healthy.create("/w7", b"")  # fires one of them
    xid, _err, _body = raw.reply()
    assert xid == -1
    healthy.delete("/w7")
    raw.close()
    deadline = time.monotonic() + 5
    while server.call(server.server.watches.count) != count_before:
        assert time.monotonic() < deadline, "watches of a closed connection leaked"
        time.sleep(0.02)
    _assert_healthy(server, healthy)


def test_Server_half_open_session_is_expired_and_closed(server, healthy):
    """A client that completes the handshake, then goes silent without closing, loses its
    session after the timeout and its connection is closed; its ephemerals go."""
    raw = Raw(server)
    raw.request(1, OpCode.CREATE, CreateRequest("/half-open", b"", OPEN, 1).to_bytes())
    assert raw.reply()[:2] == (1, 0)
    assert raw.is_closed(within=10)
    assert not healthy.exists("/half-open")
    _assert_healthy(server, healthy)


# --- fuzzing -----------------------------------------------------------------------------

_KNOWN_OPS = [int(op) for op in OpCode if int(op) > 0]


@st.composite
def _payloads(draw: st.DrawFn) -> bytes:
    """Random frames: a valid header with a random body, or random bytes entirely."""
    if draw(st.booleans()):
        xid = draw(st.integers(1, 1000))
        op = draw(st.sampled_from(_KNOWN_OPS) | st.integers(-(2**31), 2**31 - 1))
        body = draw(st.binary(max_size=200))
        return frame(RequestHeader(xid, op).to_bytes() + body)
    return draw(st.binary(min_size=1, max_size=300))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(handshake=st.booleans(), payloads=st.lists(_payloads(), min_size=1, max_size=4))
def test_Server_fuzzed_frames_never_hurt_the_server(server, healthy, handshake, payloads):
    """Whatever arrives, the offender gets replies or a closed connection, and the server
    keeps its invariants and keeps serving (a ping on the same connection is answered or
    the connection is closed, within a bound)."""
    try:
        raw = Raw(server, handshake=handshake)
    except (EOFError, OSError):
        pytest.fail("the server stopped accepting connections")
    try:
        for payload in payloads:
            raw.send(payload)
        raw.request(2**31 - 1, OpCode.PING)
        raw.sock.settimeout(3)
        try:
            while True:
                xid, _err, _body = raw.reply()
                if xid in (2**31 - 1, -2):  # our ping (or a ping's xid if fuzzed)
                    break
        except (EOFError, ConnectionResetError, BrokenPipeError, struct.error):
            pass  # closed: fine
        except TimeoutError:
            # Still waiting (e.g. a partial frame or handshake pending): the handshake
            # deadline or the next bytes decide; the server must be fine regardless.
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        raw.close()
    assert healthy.get("/healthy")[0] == b"ok"
    _check_tree(server)

"""Bad input and abuse never hurt the server or other sessions.

Each test opens a healthy kazoo session first, misbehaves on a raw socket, and then checks
that the offender was cut off (or answered with an error) while the healthy session still
works and the server still answers ``ruok``.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from coord.protocol import (
    ConnectRequest,
    ConnectResponse,
    ErrorCode,
    GetDataRequest,
    ReplyHeader,
    RequestHeader,
    frame,
)
from coord.testing._server import CoordServerThread


@pytest.fixture
def server() -> Iterator[CoordServerThread]:
    with CoordServerThread(
        tick_time=500, handshake_timeout=0.5, max_frame=4096, max_client_connections=20
    ) as server:
        yield server


@pytest.fixture
def healthy(server: CoordServerThread) -> Iterator[KazooClient]:
    client = KazooClient(hosts=server.address, timeout=5)
    client.start(timeout=5)
    client.create("/healthy", b"ok")
    yield client
    client.stop()
    client.close()


def _connect(server: CoordServerThread) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=5)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def _recv_frame(sock: socket.socket) -> bytes:
    (length,) = struct.unpack(">i", _recv_exact(sock, 4))
    return _recv_exact(sock, length)


def _is_closed(sock: socket.socket, within: float = 5.0) -> bool:
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _handshake(sock: socket.socket) -> ConnectResponse:
    sock.sendall(frame(ConnectRequest(0, 0, 4000, 0, bytes(16)).to_bytes()))
    return ConnectResponse.from_bytes(_recv_frame(sock))


def _assert_healthy(server: CoordServerThread, client: KazooClient) -> None:
    assert client.get("/healthy")[0] == b"ok"
    client.set("/healthy", b"ok")
    assert server.server.state.nodes["/healthy"].data == b"ok"
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"ruok")
        assert sock.recv(16) == b"imok"


def test_Server_oversized_frame_closes_only_that_connection(server, healthy):
    """A frame longer than max_frame closes the offender; other sessions carry on."""
    with _connect(server) as sock:
        _handshake(sock)
        body = RequestHeader(1, 4).to_bytes() + GetDataRequest("/x" * 5000, False).to_bytes()
        sock.sendall(frame(body))
        assert _is_closed(sock)
    _assert_healthy(server, healthy)


def test_Server_negative_frame_length_closes_connection(server, healthy):
    """A negative length prefix is malformed: the connection is closed."""
    with _connect(server) as sock:
        _handshake(sock)
        sock.sendall(struct.pack(">i", -5) + b"xxxx")
        assert _is_closed(sock)
    _assert_healthy(server, healthy)


def test_Server_truncated_record_closes_connection(server, healthy):
    """A frame whose record is cut short is a protocol error, not a crash."""
    with _connect(server) as sock:
        _handshake(sock)
        body = RequestHeader(1, 4).to_bytes() + b"\x00\x00\x00\x10/abc"
        sock.sendall(frame(body))
        assert _is_closed(sock)
    _assert_healthy(server, healthy)


def test_Server_garbage_handshake_closes_connection(server, healthy):
    """Random bytes in place of a ConnectRequest close the connection."""
    with _connect(server) as sock:
        sock.sendall(frame(b"\x01\x02garbage"))
        assert _is_closed(sock)
    _assert_healthy(server, healthy)


def test_Server_unknown_opcode_answers_unimplemented_then_closes(server, healthy):
    """An unknown opcode gets Unimplemented, then the connection closes (as ZooKeeper)."""
    with _connect(server) as sock:
        _handshake(sock)
        sock.sendall(frame(RequestHeader(7, 999).to_bytes()))
        reply = ReplyHeader.from_bytes(_recv_frame(sock)[:16])
        assert (reply.xid, reply.err) == (7, ErrorCode.UNIMPLEMENTED)
        assert _is_closed(sock)
    _assert_healthy(server, healthy)


def test_Server_slow_handshake_is_cut_off(server, healthy):
    """A client trickling its handshake is disconnected after handshake_timeout."""
    with _connect(server) as sock:
        request = frame(ConnectRequest(0, 0, 4000, 0, bytes(16)).to_bytes())
        started = time.monotonic()
        closed = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > 3:
                break
        assert closed or _is_closed(sock, within=1)
        assert time.monotonic() - started < 3
    _assert_healthy(server, healthy)


def test_Server_per_ip_connection_limit(server, healthy):
    """Connections past max_client_connections from one address are refused."""
    socks = []
    try:
        # The healthy client holds one connection already.
        for _ in range(19):
            sock = _connect(server)
            _handshake(sock)
            socks.append(sock)
        extra = _connect(server)
        assert _is_closed(extra)
        extra.close()
    finally:
        for sock in socks:
            sock.close()
    deadline = time.monotonic() + 5
    while server.call(lambda: len(server.server.connections)) > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    _assert_healthy(server, healthy)


def test_Server_reconnect_with_wrong_password_is_refused(server, healthy):
    """Reattaching a session with a wrong password gets timeout 0 (expired) and a close."""
    session_id = healthy.client_id[0]
    with _connect(server) as sock:
        sock.sendall(frame(ConnectRequest(0, 0, 4000, session_id, b"\x00" * 16).to_bytes()))
        response = ConnectResponse.from_bytes(_recv_frame(sock))
        assert response.time_out == 0
        assert _is_closed(sock)
    _assert_healthy(server, healthy)


def test_Server_four_letter_word_whitelist(server):
    """A word outside the whitelist gets ZooKeeper's refusal text."""
    server.replace_config(four_letter_words=("ruok",))
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"dump")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data == b"dump is not executed because it is not in the whitelist.\n"

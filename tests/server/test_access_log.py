"""The access log pairs each reply frame with the oldest request still unanswered.

Pure tests of :class:`coord.server._access.AccessLog`: requests are noted in read order,
the writer's output (replies, notifications, the connect response before them) is given
whole, and one ``coord.access`` line per reply comes out with its request's op and path.
"""

from __future__ import annotations

import logging
import struct

import pytest

from coord.protocol import OpCode
from coord.protocol._records import (
    CreateRequest,
    DeleteRequest,
    GetDataRequest,
    MultiOp,
    MultiRequest,
)
from coord.server._access import AccessLog, op_name

_REPLY = struct.Struct(">iiqi")


class _FakeConnection:
    """What AccessLog reads from a connection (a real one needs a server and a socket)."""

    session_id = 0x1A2B
    peer_name = "127.0.0.1:5000"
    timeout = 4000
    read_only = False


def _request(xid: int, op: int, record: object) -> bytes:
    return struct.pack(">ii", xid, op) + record.to_bytes()  # type: ignore[attr-defined]


def _reply(xid: int, zxid: int, err: int, body: bytes = b"") -> bytes:
    return _REPLY.pack(16 + len(body), xid, zxid, err) + body


def _notification(path: bytes) -> bytes:
    body = struct.pack(">iii", 3, 3, len(path)) + path
    return _REPLY.pack(16 + len(body), -1, -1, 0) + body


@pytest.fixture
def caplog_access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="coord.access")
    return caplog


def test_AccessLog_pairs_replies_in_order_skipping_notifications_and_the_handshake(
    caplog_access: pytest.LogCaptureFixture,
) -> None:
    connect_response = struct.pack(">iiiqi", 36, 0, 4000, 0x1A2B, 16) + bytes(17)
    access = AccessLog(_FakeConnection(), len(connect_response))  # type: ignore[arg-type]
    access.received(1, OpCode.CREATE, _request(1, OpCode.CREATE, CreateRequest("/a", b"", (), 0)))
    access.received(2, OpCode.GET_DATA, _request(2, OpCode.GET_DATA, GetDataRequest("/b", True)))
    access.received(-2, OpCode.PING, struct.pack(">ii", -2, OpCode.PING))
    output = (
        connect_response
        + _reply(1, 0x105, 0, b"\x00\x00\x00\x02/a")
        + _notification(b"/a")
        + _reply(2, 0x105, -101)
    )
    access.sending(output)
    access.sending(_reply(-2, 0x105, 0))
    connect, *records = caplog_access.records
    assert (connect.op, connect.timeout_ms, connect.read_only) == ("connect", 4000, False)  # type: ignore[attr-defined]
    fields = [(r.op, r.path, r.xid, r.zxid, r.err, r.result) for r in records]  # type: ignore[attr-defined]
    assert fields == [
        ("create", "/a", 1, "0x105", 0, "OK"),
        ("getData", "/b", 2, "0x105", -101, "NO_NODE"),
        ("ping", "", -2, "0x105", 0, "OK"),
    ]
    first = records[0]
    assert first.session == "0x1a2b" and first.client == "127.0.0.1:5000"  # type: ignore[attr-defined]
    assert first.latency_ms >= 0  # type: ignore[attr-defined]
    assert first.getMessage().startswith("session=0x1a2b client=127.0.0.1:5000 op=create path=/a")


def test_AccessLog_names_a_multis_paths(caplog_access: pytest.LogCaptureFixture) -> None:
    access = AccessLog(_FakeConnection(), 0)  # type: ignore[arg-type]
    multi = MultiRequest(
        (
            MultiOp(OpCode.CREATE, CreateRequest("/x", b"", (), 0)),
            MultiOp(OpCode.DELETE, DeleteRequest("/y", -1)),
        )
    )
    access.received(7, OpCode.MULTI, _request(7, OpCode.MULTI, multi))
    access.received(8, OpCode.GET_DATA, struct.pack(">ii", 8, OpCode.GET_DATA) + b"\x00")
    access.sending(_reply(7, 9, 0) + _reply(8, 9, -8))
    assert [(r.op, r.path) for r in caplog_access.records[1:]] == [
        ("multi", "/x,/y"),
        ("getData", ""),
    ]  # type: ignore[attr-defined]


def test_op_names_are_zookeepers() -> None:
    assert op_name(OpCode.GET_CHILDREN2) == "getChildren2"
    assert op_name(OpCode.CLOSE_SESSION) == "closeSession"
    assert op_name(9999) == "op9999"

"""Differential tests of wire-level corners kazoo never reaches: odd opcodes, odd paths.

Sent with :class:`RawClient` (coord's own codec over a socket); the expectations are
ZooKeeper 3.8's, and coord must meet them too.
"""

from __future__ import annotations

from typing import Any

import pytest
from compat_support import RawClient

from coord.protocol import (
    ACL,
    AddWatchRequest,
    CreateRequest,
    DeleteRequest,
    ErrorCode,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetEphemeralsRequest,
    GetEphemeralsResponse,
    Id,
    MultiOp,
    MultiRequest,
    OpCode,
    Perm,
    ReconfigRequest,
    SyncRequest,
    WhoAmIResponse,
)
from coord.protocol._jute import write_int, write_string

OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)


def alive(raw: RawClient) -> bool:
    """Whether the connection still answers."""
    try:
        return raw.call(OpCode.EXISTS, ExistsRequest("/", False)).header.err == 0
    except OSError:
        return False


class _RawBody:
    """A request body given as bytes (to send what no record would encode)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def write(self, out: bytearray) -> None:
        out += self.data


@pytest.mark.parametrize("path", ["/a//b", "relative", "/trailing/", "/\u0001"])
def test_protocol_reads_of_malformed_paths_are_no_node(target: Any, path: str) -> None:
    """getACL and getAllChildrenNumber do not validate the path: NoNode."""
    with RawClient(target.host, target.port) as raw:
        assert raw.call(OpCode.GET_ACL, GetACLRequest(path)).header.err == ErrorCode.NO_NODE
        reply = raw.call(OpCode.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest(path))
        assert reply.header.err == ErrorCode.NO_NODE


@pytest.mark.parametrize("prefix", ["", "/", " / ", "/no/such/prefix", "relative"])
def test_protocol_get_ephemerals_prefix_is_a_string(target: Any, root: str, prefix: str) -> None:
    """getEphemerals filters by string prefix, never validates it; "" and "/" (even padded
    with blanks) mean every ephemeral of the session."""
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 1))
        reply = raw.call(OpCode.GET_EPHEMERALS, GetEphemeralsRequest(prefix))
        assert reply.header.err == 0
        listed = GetEphemeralsResponse.from_bytes(reply.body).ephemerals
        expect_all = prefix.strip() in ("", "/")
        assert list(listed) == ([root] if expect_all else [])


def test_protocol_sync_echoes_any_path(target: Any) -> None:
    """sync answers with the path as sent, valid or not."""
    with RawClient(target.host, target.port) as raw:
        for path in ("/", "/missing", "relative", "/a//b"):
            reply = raw.call(OpCode.SYNC, SyncRequest(path))
            assert reply.header.err == 0
            expected = bytearray()
            write_string(expected, path)
            assert reply.body == bytes(expected)


def test_protocol_who_am_i(target: Any) -> None:
    """whoAmI lists the connection's identities: ip 127.0.0.1 for a plain client."""
    with RawClient(target.host, target.port) as raw:
        reply = raw.call(OpCode.WHO_AM_I, None)
        assert reply.header.err == 0
        infos = WhoAmIResponse.from_bytes(reply.body).client_info
        assert [(i.auth_scheme, i.user) for i in infos] == [("ip", "127.0.0.1")]


def test_protocol_unknown_opcode_unimplemented(target: Any) -> None:
    """An unknown opcode is answered Unimplemented. (ZooKeeper then also closes the
    connection; coord keeps it open -- not asserted.)"""
    with RawClient(target.host, target.port) as raw:
        assert raw.call(77, None).header.err == ErrorCode.UNIMPLEMENTED


def test_protocol_add_watch_does_not_validate_path(
    target: Any, request: pytest.FixtureRequest
) -> None:
    """addWatch registers on any path string, valid or not, and answers OK."""
    with RawClient(target.host, target.port) as raw:
        for path in ("relative", "/a//b", "/trailing/"):
            assert raw.call(OpCode.ADD_WATCH, AddWatchRequest(path, 0)).header.err == 0


def test_protocol_add_watch_unknown_mode(target: Any, request: pytest.FixtureRequest) -> None:
    """addWatch with an unknown mode is MarshallingError; the connection stays."""
    with RawClient(target.host, target.port) as raw:
        reply = raw.call(OpCode.ADD_WATCH, AddWatchRequest("/", 7))
        assert reply.header.err == ErrorCode.MARSHALLING_ERROR
        assert alive(raw)


def test_protocol_multi_unknown_op_type(
    target: Any, root: str, request: pytest.FixtureRequest
) -> None:
    """A multi with an op type that is no request at all is MarshallingError as a whole,
    and the connection stays open."""
    body = bytearray()
    write_int(body, 99)  # MultiHeader: type 99, done false, err -1
    body += b"\0"
    write_int(body, -1)
    CreateRequest(root, b"", OPEN, 0).write(body)
    write_int(body, -1)
    body += b"\1"
    write_int(body, -1)
    with RawClient(target.host, target.port) as raw:
        reply = raw.call(OpCode.MULTI, _RawBody(bytes(body)))  # type: ignore[arg-type]
        assert reply.header.err == ErrorCode.MARSHALLING_ERROR
        assert alive(raw)


def test_protocol_client_delete_container_is_bad_arguments(
    target: Any, root: str, request: pytest.FixtureRequest
) -> None:
    """deleteContainer (20) from a client is BadArguments: ZooKeeper reads its body as a
    raw path, which a DeleteRequest's length prefix makes invalid."""
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        reply = raw.call(OpCode.DELETE_CONTAINER, DeleteRequest(root, -1))
        assert reply.header.err == ErrorCode.BAD_ARGUMENTS
        assert raw.call(OpCode.EXISTS, ExistsRequest(root, False)).header.err == 0


def test_protocol_reconfig_disabled(target: Any, request: pytest.FixtureRequest) -> None:
    """reconfig on a standalone server without reconfigEnabled is ReconfigDisabled."""
    with RawClient(target.host, target.port) as raw:
        reply = raw.call(OpCode.RECONFIG, ReconfigRequest("", "", "", -1))
        assert reply.header.err == ErrorCode.RECONFIG_DISABLED


def test_protocol_reply_header_zxids(target: Any, root: str) -> None:
    """A write's reply header carries the write's zxid (also for a failed write); a read's
    carries the last zxid applied."""
    with RawClient(target.host, target.port) as raw:
        created = raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0)).header.zxid
        failed = raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0)).header
        assert (failed.err, failed.zxid) == (ErrorCode.NODE_EXISTS, created + 1)
        multi = raw.call(
            OpCode.MULTI,
            MultiRequest((MultiOp(OpCode.CREATE, CreateRequest(root + "/a", b"", OPEN, 0)),)),
        )
        assert multi.header.zxid == created + 2
        read = raw.call(OpCode.EXISTS, ExistsRequest(root, False)).header
        assert read.zxid >= created + 2

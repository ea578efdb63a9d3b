"""Jute records: round trips, golden encodings from the jute spec, and kazoo interop."""

from __future__ import annotations

import dataclasses
import struct
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kazoo.exceptions import EXCEPTIONS as KAZOO_EXCEPTIONS
from kazoo.protocol import serialization as kz
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL as KazooACL
from kazoo.security import Id as KazooId
from protocol_strategies import (
    INT32_MAX,
    INT64_MAX,
    MULTI_OP_RECORDS,
    binaries,
    int32s,
    int64s,
    int_fields,
    records,
    texts,
)

import coord.protocol
from coord.protocol import (
    ACL,
    ALL_RECORDS,
    REQUEST_TYPES,
    RESPONSE_TYPES,
    AuthPacket,
    CheckVersionRequest,
    CloseSessionRequest,
    ConnectRequest,
    ConnectResponse,
    Create2Response,
    CreateRequest,
    CreateResponse,
    DeleteRequest,
    ErrorCode,
    ErrorResponse,
    ExistsRequest,
    ExistsResponse,
    GetACLRequest,
    GetACLResponse,
    GetChildren2Request,
    GetChildren2Response,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    GetSASLRequest,
    Id,
    MultiHeader,
    MultiOp,
    MultiRequest,
    MultiResponse,
    MultiResult,
    OpCode,
    PingRequest,
    ProtocolError,
    Reader,
    ReconfigRequest,
    Record,
    ReplyHeader,
    RequestHeader,
    SetACLRequest,
    SetACLResponse,
    SetDataRequest,
    SetDataResponse,
    SetSASLResponse,
    Stat,
    SyncRequest,
    SyncResponse,
    WatcherEvent,
)

WORLD_ANYONE = ACL(31, Id("world", "anyone"))

# ``ustring``/``buffer`` encodings, written out so the golden bytes below read like the spec.
PATH_A = "00000002 2f61"  # "/a"
WORLD = "00000005" + b"world".hex()
ANYONE = "00000006" + b"anyone".hex()
DONE = "ffffffff 01 ffffffff"  # MultiHeader(-1, true, -1)


def _name(cls: type) -> str:
    return cls.__name__


def _all_record_subclasses() -> set[type[Record]]:
    # dataclass(slots=True) replaces each class, leaving the original in __subclasses__();
    # keep only the classes their module actually defines under that name.
    found: set[type[Record]] = set()
    todo = [Record]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if getattr(sys.modules[sub.__module__], sub.__qualname__, None) is sub:
                found.add(sub)
    return found


# --- coverage --------------------------------------------------------------------------


def test_ALL_RECORDS_every_class_has_a_strategy() -> None:
    """Every class in ALL_RECORDS has a hypothesis strategy (else its round trip is untested)."""
    missing = []
    for cls in ALL_RECORDS:
        try:
            records(cls)
        except TypeError as exc:
            missing.append(f"{cls.__name__}: {exc}")
    assert not missing, missing
    assert len(set(ALL_RECORDS)) == len(ALL_RECORDS)


def test_ALL_RECORDS_lists_every_public_record_class() -> None:
    """Every public Record subclass of coord.protocol is in ALL_RECORDS and exported.

    Records private to the server (log entry bodies) live outside coord.protocol.
    """
    public = {
        cls
        for cls in _all_record_subclasses()
        if not cls.__name__.startswith("_") and cls.__module__.startswith("coord.protocol")
    }
    assert public - set(ALL_RECORDS) == set()
    assert {cls.__name__ for cls in public} <= set(coord.protocol.__all__)


def test_REQUEST_TYPES_and_RESPONSE_TYPES_use_listed_records() -> None:
    """Every opcode with a request body has a response body, all of them in ALL_RECORDS."""
    assert set(REQUEST_TYPES) == set(RESPONSE_TYPES)
    assert set(REQUEST_TYPES.values()) <= set(ALL_RECORDS)
    assert set(RESPONSE_TYPES.values()) <= set(ALL_RECORDS)


def test_coord_protocol_all_names_exist() -> None:
    """Every name in coord.protocol.__all__ is defined, and none is listed twice."""
    assert len(set(coord.protocol.__all__)) == len(coord.protocol.__all__)
    for name in coord.protocol.__all__:
        assert hasattr(coord.protocol, name), name


def test_Record_classes_are_frozen_slotted_dataclasses() -> None:
    """Records with fields are frozen dataclasses with __slots__ (CONVENTIONS item 3)."""
    for cls in ALL_RECORDS:
        assert "__slots__" in cls.__dict__, cls
        if dataclasses.is_dataclass(cls):
            assert cls.__dataclass_params__.frozen, cls


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=_name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_Record_round_trips_through_bytes(cls: type[Record], data: st.DataObject) -> None:
    """from_bytes(to_bytes(r)) == r for every record of every class."""
    record = data.draw(records(cls))
    encoded = record.to_bytes()
    assert type(encoded) is bytes
    assert cls.from_bytes(encoded) == record
    assert cls.from_bytes(bytearray(encoded)) == record
    assert cls.from_bytes(memoryview(encoded)) == record


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=_name)
@settings(max_examples=15, deadline=None)
@given(data=st.data(), prefix=st.binary(max_size=8), suffix=st.binary(max_size=8))
def test_Record_reads_at_an_offset_and_stops_at_its_end(
    cls: type[Record], data: st.DataObject, prefix: bytes, suffix: bytes
) -> None:
    """write() appends to what is in the buffer; read() starts at Reader.pos and ends there."""
    record = data.draw(records(cls))
    out = bytearray(prefix)
    record.write(out)
    end = len(out)
    out += suffix
    reader = Reader(bytes(out), len(prefix))
    assert cls.read(reader) == record
    assert reader.pos == end


def _int_field_cases() -> list[tuple[type[Record], str, bool]]:
    return [(cls, name, is_long) for cls in ALL_RECORDS for name, is_long in int_fields(cls)]


@pytest.mark.parametrize(
    ("cls", "field", "is_long"),
    _int_field_cases(),
    ids=[f"{c.__name__}.{f}" for c, f, _ in _int_field_cases()],
)
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_Record_int_field_widths_match_jute(
    cls: type[Record], field: str, is_long: bool, data: st.DataObject
) -> None:
    """A jute int field holds exactly 32 bits and a long exactly 64 (as the strategies assume)."""
    record = data.draw(records(cls))
    top = INT64_MAX if is_long else INT32_MAX
    for value in (top, -top - 1):
        fits = dataclasses.replace(record, **{field: value})
        assert cls.from_bytes(fits.to_bytes()) == fits
    for value in (top + 1, -top - 2):
        too_big = dataclasses.replace(record, **{field: value})
        with pytest.raises((struct.error, OverflowError, ProtocolError)):
            too_big.to_bytes()


# --- golden encodings, written out from zookeeper.jute -----------------------------------


def test_ReplyHeader_golden_bytes() -> None:
    """ReplyHeader is int xid, long zxid, int err, big-endian."""
    golden = bytes.fromhex("00000001 0000000000000002 ffffff9b")
    assert ReplyHeader(1, 2, ErrorCode.NO_NODE).to_bytes() == golden
    assert ReplyHeader.from_bytes(golden) == ReplyHeader(1, 2, -101)


def test_RequestHeader_golden_bytes() -> None:
    """RequestHeader is int xid, int type."""
    golden = bytes.fromhex("00000005 00000004")
    assert RequestHeader(5, OpCode.GET_DATA).to_bytes() == golden
    assert RequestHeader.from_bytes(golden) == RequestHeader(5, 4)


def test_Stat_golden_bytes() -> None:
    """Stat is long czxid, mzxid, ctime, mtime; int version, cversion, aversion;
    long ephemeralOwner; int dataLength, numChildren; long pzxid."""
    golden = bytes.fromhex(
        "0000000000000001"
        "0000000000000002"
        "0000000000000003"
        "0000000000000004"
        "00000005"
        "00000006"
        "00000007"
        "0000000000000008"
        "00000009"
        "0000000a"
        "000000000000000b"
    )
    stat = Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    assert stat.to_bytes() == golden
    assert Stat.from_bytes(golden) == stat


def test_CreateRequest_golden_bytes_with_world_anyone_acl() -> None:
    """CreateRequest is ustring path, buffer data, vector<ACL> acl, int flags."""
    golden = bytes.fromhex(
        PATH_A + "00000001 78" + "00000001 0000001f" + WORLD + ANYONE + "00000000"
    )
    request = CreateRequest("/a", b"x", (WORLD_ANYONE,), 0)
    assert request.to_bytes() == golden
    assert CreateRequest.from_bytes(golden) == request


def test_CreateRequest_null_data_is_distinct_from_empty_data() -> None:
    """A null buffer (length -1) decodes to None, an empty one (length 0) to b''."""
    null = bytes.fromhex(PATH_A + "ffffffff 00000000 00000001")
    empty = bytes.fromhex(PATH_A + "00000000 00000000 00000001")
    assert CreateRequest("/a", None, (), 1).to_bytes() == null
    assert CreateRequest.from_bytes(null) == CreateRequest("/a", None, (), 1)
    assert CreateRequest.from_bytes(empty) == CreateRequest("/a", b"", (), 1)


def test_Reader_null_string_and_null_vector_decode_as_empty() -> None:
    """A null ustring decodes as '' and a null vector as an empty tuple."""
    assert GetDataRequest.from_bytes(bytes.fromhex("ffffffff 01")) == GetDataRequest("", True)
    assert GetChildrenResponse.from_bytes(bytes.fromhex("ffffffff")) == GetChildrenResponse(())
    assert CreateRequest.from_bytes(
        bytes.fromhex(PATH_A + "ffffffff ffffffff 00000000")
    ) == CreateRequest("/a", None, (), 0)


def test_GetDataRequest_golden_bytes_counts_utf8_bytes() -> None:
    """A ustring's length prefix counts UTF-8 bytes, not characters."""
    golden = bytes.fromhex("00000003 2fc3a9 01")  # "/é", watch
    assert GetDataRequest("/é", True).to_bytes() == golden
    assert GetDataRequest.from_bytes(golden) == GetDataRequest("/é", True)


def test_WatcherEvent_golden_bytes() -> None:
    """WatcherEvent is int type, int state, ustring path."""
    golden = bytes.fromhex("00000003 00000003" + PATH_A)
    assert WatcherEvent(3, 3, "/a").to_bytes() == golden
    assert WatcherEvent.from_bytes(golden) == WatcherEvent(3, 3, "/a")


CONNECT_REQUEST_NO_RO = bytes.fromhex(
    "00000000"  # protocolVersion
    "0000000000000010"  # lastZxidSeen
    "00007530"  # timeOut 30000
    "0000000000001234"  # sessionId
    "00000010" + "ab" * 16  # passwd
)


def test_ConnectRequest_golden_bytes_with_read_only() -> None:
    """ConnectRequest ends with the boolean readOnly byte."""
    request = ConnectRequest(0, 0x10, 30000, 0x1234, b"\xab" * 16, True)
    assert request.to_bytes() == CONNECT_REQUEST_NO_RO + b"\x01"
    assert ConnectRequest.from_bytes(CONNECT_REQUEST_NO_RO + b"\x01") == request
    assert ConnectRequest.from_bytes(CONNECT_REQUEST_NO_RO + b"\x00") == dataclasses.replace(
        request, read_only=False
    )


def test_ConnectRequest_without_read_only_byte_decodes_read_only_false() -> None:
    """A pre-3.4 ConnectRequest without the trailing readOnly byte decodes read_only False."""
    assert ConnectRequest.from_bytes(CONNECT_REQUEST_NO_RO) == ConnectRequest(
        0, 0x10, 30000, 0x1234, b"\xab" * 16, False
    )


def test_ConnectRequest_extra_byte_after_read_only_is_ProtocolError() -> None:
    """Bytes after the readOnly byte are not part of the record."""
    with pytest.raises(ProtocolError):
        ConnectRequest.from_bytes(CONNECT_REQUEST_NO_RO + b"\x00\x00")


def test_ConnectResponse_without_read_only_byte_decodes_read_only_false() -> None:
    """ConnectResponse is int protocolVersion, int timeOut, long sessionId, buffer passwd,
    optional boolean readOnly."""
    body = bytes.fromhex("00000000 00002710 0000000000000007 00000002 cafe")
    expected = ConnectResponse(0, 10000, 7, b"\xca\xfe", False)
    assert ConnectResponse.from_bytes(body) == expected
    assert ConnectResponse.from_bytes(body + b"\x01") == dataclasses.replace(
        expected, read_only=True
    )
    assert expected.to_bytes() == body + b"\x00"


def test_MultiRequest_golden_bytes_create_and_delete() -> None:
    """A multi is (MultiHeader(type, false, -1), op)* then the done header (-1, true, -1)."""
    golden = bytes.fromhex(
        "00000001 00 ffffffff"  # header: create
        + PATH_A
        + "00000000"  # data b""
        + "00000001 0000001f"  # one ACL: perms ALL,
        + WORLD  # scheme "world",
        + ANYONE  # id "anyone"
        + "00000000"  # flags
        + "00000002 00 ffffffff"  # header: delete
        + PATH_A
        + "ffffffff"  # version -1
        + DONE
    )
    multi = MultiRequest(
        (
            MultiOp(OpCode.CREATE, CreateRequest("/a", b"", (WORLD_ANYONE,), 0)),
            MultiOp(OpCode.DELETE, DeleteRequest("/a", -1)),
        )
    )
    assert multi.to_bytes() == golden
    assert MultiRequest.from_bytes(golden) == multi


def test_MultiRequest_empty_is_just_the_done_header() -> None:
    """An empty multi encodes as the done header alone."""
    assert MultiRequest(()).to_bytes() == bytes.fromhex(DONE)
    assert MultiRequest.from_bytes(bytes.fromhex(DONE)) == MultiRequest(())


def test_MultiResponse_golden_bytes_create_then_error() -> None:
    """A multi result is MultiHeader(type, false, err) then the body; errors are type -1 with
    an ErrorResponse body; delete/check results have no body."""
    golden = bytes.fromhex(
        "00000001 00 00000000"  # header: create, err 0
        + PATH_A  # CreateResponse "/a"
        + "00000002 00 00000000"  # header: delete, err 0; no body
        + "ffffffff 00 ffffff9b"  # header: error, err NO_NODE
        + "ffffff9b"  # ErrorResponse NO_NODE
        + DONE
    )
    response = MultiResponse(
        (
            MultiResult(OpCode.CREATE, 0, CreateResponse("/a")),
            MultiResult(OpCode.DELETE, 0, None),
            MultiResult(OpCode.ERROR, ErrorCode.NO_NODE, ErrorResponse(ErrorCode.NO_NODE)),
        )
    )
    assert response.to_bytes() == golden
    assert MultiResponse.from_bytes(golden) == response


def test_MultiHeader_golden_bytes() -> None:
    """MultiHeader is int type, boolean done, int err."""
    assert MultiHeader(-1, True, -1).to_bytes() == bytes.fromhex(DONE)
    assert MultiHeader.from_bytes(bytes.fromhex(DONE)) == MultiHeader(-1, True, -1)


def test_MultiRequest_unknown_op_type_is_ProtocolError() -> None:
    """An op type that cannot appear in a multi (e.g. ping) is a ProtocolError."""
    with pytest.raises(ProtocolError):
        MultiRequest.from_bytes(bytes.fromhex("0000000b 00 ffffffff" + DONE))


def test_Empty_records_encode_to_nothing() -> None:
    """Ping, closeSession and empty replies have no body; any byte after it is an error."""
    assert PingRequest().to_bytes() == b""
    assert PingRequest.from_bytes(b"") == PingRequest()
    assert CloseSessionRequest() != PingRequest()
    with pytest.raises(ProtocolError):
        PingRequest.from_bytes(b"\x00")


# --- kazoo interop: kazoo encodes requests, we decode; we encode replies, kazoo decodes --

acls = st.lists(st.builds(ACL, int32s, st.builds(Id, texts, texts)), max_size=3).map(tuple)
stats = records(Stat)


def _kazoo_acls(acl: tuple[ACL, ...]) -> list[KazooACL]:
    return [KazooACL(a.perms, KazooId(a.id.scheme, a.id.id)) for a in acl]


def _kazoo_stat(stat: Stat) -> ZnodeStat:
    return ZnodeStat(*dataclasses.astuple(stat))


@settings(max_examples=25, deadline=None)
@given(
    path=texts,
    data=st.none() | binaries,
    acl=acls,
    flags=int32s,
    version=int32s,
    w=st.booleans(),
)
def test_kazoo_requests_decode_as_our_records(
    path: str, data: bytes | None, acl: tuple[ACL, ...], flags: int, version: int, w: bool
) -> None:
    """Request bodies kazoo serializes decode to the equivalent coord record."""
    kacl = _kazoo_acls(acl)
    cases: list[tuple[bytes | bytearray, Record]] = [
        (kz.Create(path, data, kacl, flags).serialize(), CreateRequest(path, data, acl, flags)),
        (kz.Create2(path, data, kacl, flags).serialize(), CreateRequest(path, data, acl, flags)),
        (kz.Delete(path, version).serialize(), DeleteRequest(path, version)),
        (kz.Exists(path, w).serialize(), ExistsRequest(path, w)),
        (kz.GetData(path, w).serialize(), GetDataRequest(path, w)),
        (kz.SetData(path, data, version).serialize(), SetDataRequest(path, data, version)),
        (kz.GetACL(path).serialize(), GetACLRequest(path)),
        (kz.SetACL(path, kacl, version).serialize(), SetACLRequest(path, acl, version)),
        (kz.GetChildren(path, w).serialize(), GetChildrenRequest(path, w)),
        (kz.GetChildren2(path, w).serialize(), GetChildren2Request(path, w)),
        (kz.Sync(path).serialize(), SyncRequest(path)),
        (kz.CheckVersion(path, version).serialize(), CheckVersionRequest(path, version)),
        (kz.Close.serialize(), CloseSessionRequest()),
        (kz.Ping.serialize(), PingRequest()),
    ]
    for encoded, expected in cases:
        assert type(expected).from_bytes(bytes(encoded)) == expected


@settings(max_examples=25, deadline=None)
@given(zxid=int64s, timeout=int32s, session=int64s, passwd=binaries, ro=st.booleans(), auth=texts)
def test_kazoo_handshake_auth_and_sasl_decode_as_our_records(
    zxid: int, timeout: int, session: int, passwd: bytes, ro: bool, auth: str
) -> None:
    """kazoo's Connect, Auth, SASL and Reconfig bodies decode to our records."""
    connect = kz.Connect(0, zxid, timeout, session, passwd, ro).serialize()
    assert ConnectRequest.from_bytes(bytes(connect)) == ConnectRequest(
        0, zxid, timeout, session, passwd, ro
    )
    assert AuthPacket.from_bytes(kz.Auth(0, "digest", auth).serialize()) == AuthPacket(
        0, "digest", auth.encode()
    )
    assert GetSASLRequest.from_bytes(bytes(kz.SASL(passwd).serialize())) == GetSASLRequest(passwd)
    reconfig = kz.Reconfig(auth, "", "server.1=a:1:2", zxid).serialize()
    assert ReconfigRequest.from_bytes(bytes(reconfig)) == ReconfigRequest(
        auth, "", "server.1=a:1:2", zxid
    )


@settings(max_examples=25, deadline=None)
@given(path=texts, data=st.none() | binaries, acl=acls, version=int32s)
def test_kazoo_Transaction_decodes_as_our_MultiRequest(
    path: str, data: bytes | None, acl: tuple[ACL, ...], version: int
) -> None:
    """A kazoo transaction (create, delete, setData, check) decodes as our MultiRequest."""
    ops = [
        kz.Create(path, data, _kazoo_acls(acl), 1),
        kz.Delete(path, version),
        kz.SetData(path, data, version),
        kz.CheckVersion(path, version),
    ]
    expected = MultiRequest(
        (
            MultiOp(OpCode.CREATE, CreateRequest(path, data, acl, 1)),
            MultiOp(OpCode.DELETE, DeleteRequest(path, version)),
            MultiOp(OpCode.SET_DATA, SetDataRequest(path, data, version)),
            MultiOp(OpCode.CHECK, CheckVersionRequest(path, version)),
        )
    )
    assert MultiRequest.from_bytes(bytes(kz.Transaction(ops).serialize())) == expected


def test_MULTI_OP_RECORDS_agree_with_kazoo_opcodes() -> None:
    """The opcodes kazoo puts in a transaction are the ones our strategies pair with records."""
    assert MULTI_OP_RECORDS[kz.Create.type] is CreateRequest
    assert MULTI_OP_RECORDS[kz.Delete.type] is DeleteRequest
    assert MULTI_OP_RECORDS[kz.SetData.type] is SetDataRequest
    assert MULTI_OP_RECORDS[kz.CheckVersion.type] is CheckVersionRequest


@settings(max_examples=25, deadline=None)
@given(
    path=texts,
    data=st.none() | binaries,
    stat=stats,
    children=st.lists(texts, max_size=4),
    acl=acls,
)
def test_kazoo_decodes_our_replies(
    path: str, data: bytes | None, stat: Stat, children: list[str], acl: tuple[ACL, ...]
) -> None:
    """Reply bodies we encode decode in kazoo to the same values."""
    kstat = _kazoo_stat(stat)
    assert kz.GetData.deserialize(GetDataResponse(data, stat).to_bytes(), 0) == (data, kstat)
    assert kz.Reconfig.deserialize(GetDataResponse(data, stat).to_bytes(), 0) == (data, kstat)
    assert kz.SetData.deserialize(SetDataResponse(stat).to_bytes(), 0) == kstat
    assert kz.SetACL.deserialize(SetACLResponse(stat).to_bytes(), 0) == kstat
    exists = kz.Exists.deserialize(ExistsResponse(stat).to_bytes(), 0)
    assert exists == (kstat if stat.czxid != -1 else None)
    assert kz.Create.deserialize(CreateResponse(path).to_bytes(), 0) == path
    assert kz.Create2.deserialize(Create2Response(path, stat).to_bytes(), 0) == (path, kstat)
    assert kz.Sync.deserialize(SyncResponse(path).to_bytes(), 0) == path
    assert kz.GetChildren.deserialize(GetChildrenResponse(tuple(children)).to_bytes(), 0) == (
        children
    )
    assert kz.GetChildren2.deserialize(
        GetChildren2Response(tuple(children), stat).to_bytes(), 0
    ) == (children, kstat)
    assert kz.GetACL.deserialize(GetACLResponse(acl, stat).to_bytes(), 0) == (
        _kazoo_acls(acl),
        kstat,
    )
    token = data or b""
    assert kz.SASL.deserialize(SetSASLResponse(token).to_bytes(), 0)[0] == token


@settings(max_examples=25, deadline=None)
@given(
    xid=int32s,
    zxid=int64s,
    err=int32s,
    timeout=int32s,
    session=int64s,
    passwd=binaries,
    ro=st.booleans(),
    path=texts,
)
def test_kazoo_decodes_our_headers_events_and_handshake(
    xid: int,
    zxid: int,
    err: int,
    timeout: int,
    session: int,
    passwd: bytes,
    ro: bool,
    path: str,
) -> None:
    """kazoo reads our ReplyHeader, WatcherEvent and ConnectResponse as we wrote them."""
    header, offset = kz.ReplyHeader.deserialize(ReplyHeader(xid, zxid, err).to_bytes(), 0)
    assert (header.xid, header.zxid, header.err, offset) == (xid, zxid, err, 16)
    event, _ = kz.Watch.deserialize(WatcherEvent(xid, err, path).to_bytes(), 0)
    assert (event.type, event.state, event.path) == (xid, err, path)
    connect, _ = kz.Connect.deserialize(
        ConnectResponse(0, timeout, session, passwd, ro).to_bytes(), 0
    )
    assert (connect.time_out, connect.session_id, connect.passwd, connect.read_only) == (
        timeout,
        session,
        passwd,
        ro,
    )


@settings(max_examples=25, deadline=None)
@given(
    path=texts.filter(bool),
    stat=stats,
    err=st.sampled_from(sorted(code for code in KAZOO_EXCEPTIONS if code in set(ErrorCode))),
)
def test_kazoo_decodes_our_MultiResponse(path: str, stat: Stat, err: int) -> None:
    """kazoo's Transaction reads our multi results (create, delete, setData, check, error)."""
    response = MultiResponse(
        (
            MultiResult(OpCode.CREATE, 0, CreateResponse(path)),
            MultiResult(OpCode.DELETE, 0, None),
            MultiResult(OpCode.SET_DATA, 0, SetDataResponse(stat)),
            MultiResult(OpCode.CHECK, 0, None),
            MultiResult(OpCode.ERROR, err, ErrorResponse(err)),
        )
    )
    results = kz.Transaction.deserialize(response.to_bytes(), 0)
    assert results[:4] == [path, True, _kazoo_stat(stat), True]
    assert isinstance(results[4], KAZOO_EXCEPTIONS[err])
    assert len(results) == 5


def test_CreateRequest_read_decodes_each_acl_list_exactly_after_a_cached_one() -> None:
    """ACL lists are decoded through a cache keyed by their encoding (the last one is
    matched in place): an ACL extending, shortening or changing the cached one, and a
    malformed one, still decode to what was sent or fail."""
    anyone = ACL(31, Id("world", "anyone"))
    digest = ACL(1, Id("digest", "u:h"))
    for acl in [(anyone,), (anyone, digest), (anyone,), (digest,), (), (anyone,), (digest,)]:
        request = CreateRequest("/a", b"x", acl, 0)
        assert CreateRequest.from_bytes(request.to_bytes()) == request
    truncated = CreateRequest("/a", b"x", (anyone, digest), 0).to_bytes()[:-6]
    with pytest.raises(ProtocolError):
        CreateRequest.from_bytes(truncated)

"""The records of ZooKeeper's client protocol (``zookeeper.jute``), as frozen dataclasses.

Each record has ``write(out)`` appending its jute encoding to a ``bytearray`` and a
classmethod ``read(reader)`` decoding it; ``to_bytes()``/``from_bytes()`` wrap the two for
a whole buffer. Field names follow ``zookeeper.jute`` in snake_case. Records hold data
only -- no callbacks, no I/O.

Multi requests and responses are not flat jute records (each op is preceded by a
``MultiHeader`` and the list ends with a ``done`` header); :class:`MultiRequest` and
:class:`MultiResponse` implement that framing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self, TypeAlias

from ._codes import OpCode
from ._errors import ProtocolError
from ._jute import (
    INT,
    INT_INT,
    REPLY_HEADER,
    STAT,
    Reader,
    write_bool,
    write_buffer,
    write_int,
    write_long,
    write_string,
    write_strings,
)

_pack_int = INT.pack


class Record:
    """Base of every jute record."""

    __slots__ = ()

    def write(self, out: bytearray) -> None:
        raise NotImplementedError

    @classmethod
    def read(cls, r: Reader) -> Self:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        out = bytearray()
        self.write(out)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Self:
        """Decode exactly one record filling ``data``.

        Raises:
            ProtocolError: ``data`` is truncated, malformed, or longer than the record.
        """
        r = Reader(data)
        record = cls.read(r)
        r.expect_end(cls.__name__)
        return record


class _Empty(Record):
    """A record with no fields."""

    __slots__ = ()

    def write(self, out: bytearray) -> None:
        pass

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# --- org.apache.zookeeper.data ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Id(Record):
    """An identity: a scheme and an id within it (``world:anyone``, ``digest:u:hash``)."""

    scheme: str
    id: str

    def write(self, out: bytearray) -> None:
        write_string(out, self.scheme)
        write_string(out, self.id)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), r.read_string())


@dataclass(frozen=True, slots=True)
class ACL(Record):
    """One ACL entry: permission bits (:class:`Perm`) granted to an :class:`Id`."""

    perms: int
    id: Id

    def write(self, out: bytearray) -> None:
        write_int(out, self.perms)
        self.id.write(out)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_int(), Id.read(r))


def _write_acls(out: bytearray, acls: tuple[ACL, ...]) -> None:
    write_int(out, len(acls))
    for acl in acls:
        acl.write(out)


#: Decoded ACL lists by their encoding: requests nearly always carry one of a few ACLs
#: (world:anyone above all), so most creates decode no ACL record at all.
_acl_cache: dict[bytes, tuple[ACL, ...]] = {}
_ACL_CACHE_LIMIT = 1024


#: The last ACL list decoded through the cache and its encoding: checked first, in place.
_last_acl: tuple[bytes, tuple[ACL, ...]] = (b"", ())


def _read_acls(r: Reader) -> tuple[ACL, ...]:
    global _last_acl
    start = r.pos
    buf = r._buf
    encoded, acls = _last_acl
    # A jute vector's encoding is never a proper prefix of another one's, so if the bytes
    # here start with a known encoding, that is the whole vector (no copy, no parse).
    if encoded and isinstance(buf, bytes) and buf.startswith(encoded, start):
        r.pos = start + len(encoded)
        return acls
    count = r.read_count(12)
    buf = r._buf
    end = r._end
    pos = r.pos
    for _ in range(count):  # find the vector's extent without building records
        if pos + 8 > end:
            break
        pos += 4
        (length,) = INT.unpack_from(buf, pos)
        if length < 0 or pos + 4 + length + 4 > end:
            break
        pos += 4 + length
        (length,) = INT.unpack_from(buf, pos)
        if length < 0 or pos + 4 + length > end:
            break
        pos += 4 + length
    else:
        key = bytes(buf[start:pos])
        cached = _acl_cache.get(key)
        if cached is not None:
            r.pos = pos
            _last_acl = (key, cached)
            return cached
        acls = tuple([ACL.read(r) for _ in range(count)])
        if len(_acl_cache) >= _ACL_CACHE_LIMIT:
            _acl_cache.clear()
        _acl_cache[key] = acls
        _last_acl = (key, acls)
        return acls
    # Malformed: decode normally so the error says what is wrong.
    return tuple([ACL.read(r) for _ in range(count)])


@dataclass(frozen=True, slots=True)
class Stat(Record):
    """A znode's metadata, as every read returns it."""

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    data_length: int
    num_children: int
    pzxid: int

    def write(self, out: bytearray) -> None:
        out += STAT.pack(
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            self.cversion,
            self.aversion,
            self.ephemeral_owner,
            self.data_length,
            self.num_children,
            self.pzxid,
        )

    @classmethod
    def read(cls, r: Reader) -> Self:
        pos = r.pos
        if r.remaining < STAT.size:
            raise ProtocolError(f"truncated Stat at offset {pos}")
        r.pos = pos + STAT.size
        return cls(*STAT.unpack_from(r._buf, pos))


@dataclass(frozen=True, slots=True)
class ClientInfo(Record):
    """One authenticated identity of a session, as ``whoAmI`` reports it."""

    auth_scheme: str
    user: str

    def write(self, out: bytearray) -> None:
        write_string(out, self.auth_scheme)
        write_string(out, self.user)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), r.read_string())


# --- handshake ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectRequest(Record):
    """The first frame a client sends. ``read_only`` is absent from pre-3.4 clients."""

    protocol_version: int
    last_zxid_seen: int
    time_out: int
    session_id: int
    passwd: bytes
    read_only: bool = False

    def write(self, out: bytearray) -> None:
        write_int(out, self.protocol_version)
        write_long(out, self.last_zxid_seen)
        write_int(out, self.time_out)
        write_long(out, self.session_id)
        write_buffer(out, self.passwd)
        write_bool(out, self.read_only)

    @classmethod
    def read(cls, r: Reader) -> Self:
        version = r.read_int()
        zxid = r.read_long()
        timeout = r.read_int()
        session_id = r.read_long()
        passwd = r.read_bytes()
        read_only = r.read_bool() if r.remaining else False
        return cls(version, zxid, timeout, session_id, passwd, read_only)


@dataclass(frozen=True, slots=True)
class ConnectResponse(Record):
    """The server's answer to :class:`ConnectRequest`; ``time_out`` 0 means refused."""

    protocol_version: int
    time_out: int
    session_id: int
    passwd: bytes
    read_only: bool = False

    def write(self, out: bytearray) -> None:
        write_int(out, self.protocol_version)
        write_int(out, self.time_out)
        write_long(out, self.session_id)
        write_buffer(out, self.passwd)
        write_bool(out, self.read_only)

    @classmethod
    def read(cls, r: Reader) -> Self:
        version = r.read_int()
        timeout = r.read_int()
        session_id = r.read_long()
        passwd = r.read_bytes()
        read_only = r.read_bool() if r.remaining else False
        return cls(version, timeout, session_id, passwd, read_only)


# --- headers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestHeader(Record):
    """Precedes every request after the handshake."""

    xid: int
    type: int

    def write(self, out: bytearray) -> None:
        out += INT_INT.pack(self.xid, self.type)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_int(), r.read_int())


@dataclass(frozen=True, slots=True)
class ReplyHeader(Record):
    """Precedes every reply and notification: the request's xid, the server's zxid, a code."""

    xid: int
    zxid: int
    err: int

    def write(self, out: bytearray) -> None:
        out += REPLY_HEADER.pack(self.xid, self.zxid, self.err)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_int(), r.read_long(), r.read_int())


@dataclass(frozen=True, slots=True)
class MultiHeader(Record):
    """Precedes each op of a multi request or response; ``done`` ends the list."""

    type: int
    done: bool
    err: int

    def write(self, out: bytearray) -> None:
        write_int(out, self.type)
        write_bool(out, self.done)
        write_int(out, self.err)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_int(), r.read_bool(), r.read_int())


# --- requests and responses --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthPacket(Record):
    """``addauth``: credentials for ``scheme`` (sent with xid -4)."""

    type: int
    scheme: str
    auth: bytes

    def write(self, out: bytearray) -> None:
        write_int(out, self.type)
        write_string(out, self.scheme)
        write_buffer(out, self.auth)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_int(), r.read_string(), r.read_bytes())


@dataclass(frozen=True, slots=True)
class _PathWatch(Record):
    path: str
    watch: bool

    def write(self, out: bytearray) -> None:
        write_string(out, self.path)
        write_bool(out, self.watch)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), r.read_bool())


@dataclass(frozen=True, slots=True)
class _Path(Record):
    path: str

    def write(self, out: bytearray) -> None:
        write_string(out, self.path)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string())


@dataclass(frozen=True, slots=True)
class _PathVersion(Record):
    path: str
    version: int

    def write(self, out: bytearray) -> None:
        write_string(out, self.path)
        write_int(out, self.version)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), r.read_int())


@dataclass(frozen=True, slots=True)
class _PathInt(Record):
    path: str
    type: int

    def write(self, out: bytearray) -> None:
        write_string(out, self.path)
        write_int(out, self.type)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), r.read_int())


@dataclass(frozen=True, slots=True)
class _StatOnly(Record):
    stat: Stat

    def write(self, out: bytearray) -> None:
        self.stat.write(out)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(Stat.read(r))


@dataclass(frozen=True, slots=True)
class _Token(Record):
    token: bytes

    def write(self, out: bytearray) -> None:
        write_buffer(out, self.token)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_bytes())


@dataclass(frozen=True, slots=True)
class _Children(Record):
    children: tuple[str, ...]

    def write(self, out: bytearray) -> None:
        write_strings(out, self.children)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_strings())


@dataclass(frozen=True, slots=True)
class GetDataRequest(_PathWatch):
    """getData (4): read a node's data and Stat, optionally leaving a data watch."""


@dataclass(frozen=True, slots=True)
class ExistsRequest(_PathWatch):
    """exists (3): a node's Stat, optionally leaving a data or exist watch."""


@dataclass(frozen=True, slots=True)
class GetChildrenRequest(_PathWatch):
    """getChildren (8): child names, optionally leaving a child watch."""


@dataclass(frozen=True, slots=True)
class GetChildren2Request(_PathWatch):
    """getChildren2 (12): child names and the parent's Stat."""


@dataclass(frozen=True, slots=True)
class SetDataRequest(Record):
    """setData (5): replace a node's data if ``version`` matches (-1: any)."""

    path: str
    data: bytes | None
    version: int

    def write(self, out: bytearray) -> None:
        write_string(out, self.path)
        write_buffer(out, self.data)
        write_int(out, self.version)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), r.read_buffer(), r.read_int())


@dataclass(frozen=True, slots=True)
class SetDataResponse(_StatOnly):
    """Reply to setData: the node's new Stat."""


@dataclass(frozen=True, slots=True)
class ReconfigRequest(Record):
    """reconfig (16): incremental (joining/leaving) or non-incremental (new members)."""

    joining_servers: str
    leaving_servers: str
    new_members: str
    cur_config_id: int

    def write(self, out: bytearray) -> None:
        write_string(out, self.joining_servers)
        write_string(out, self.leaving_servers)
        write_string(out, self.new_members)
        write_long(out, self.cur_config_id)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), r.read_string(), r.read_string(), r.read_long())


@dataclass(frozen=True, slots=True)
class GetSASLRequest(_Token):
    """SASL (102) token from the client."""


@dataclass(frozen=True, slots=True)
class SetSASLRequest(_Token):
    """SASL token (legacy record)."""


@dataclass(frozen=True, slots=True)
class SetSASLResponse(_Token):
    """SASL challenge from the server."""


@dataclass(frozen=True, slots=True)
class CreateRequest(Record):
    """create (1), create2 (15), createContainer (19): ``flags`` is a :class:`CreateMode`."""

    path: str
    data: bytes | None
    acl: tuple[ACL, ...]
    flags: int

    def write(self, out: bytearray) -> None:
        write_string(out, self.path)
        write_buffer(out, self.data)
        _write_acls(out, self.acl)
        write_int(out, self.flags)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), r.read_buffer(), _read_acls(r), r.read_int())


@dataclass(frozen=True, slots=True)
class CreateTTLRequest(Record):
    """createTTL (21): a create whose node is removed when unmodified and childless for
    ``ttl`` milliseconds."""

    path: str
    data: bytes | None
    acl: tuple[ACL, ...]
    flags: int
    ttl: int

    def write(self, out: bytearray) -> None:
        write_string(out, self.path)
        write_buffer(out, self.data)
        _write_acls(out, self.acl)
        write_int(out, self.flags)
        write_long(out, self.ttl)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), r.read_buffer(), _read_acls(r), r.read_int(), r.read_long())


@dataclass(frozen=True, slots=True)
class DeleteRequest(_PathVersion):
    """delete (2) and deleteContainer (20): remove a childless node if ``version`` matches."""


@dataclass(frozen=True, slots=True)
class CheckVersionRequest(_PathVersion):
    """check (13): in a multi, fail unless the node's version matches."""


@dataclass(frozen=True, slots=True)
class GetAllChildrenNumberRequest(_Path):
    """getAllChildrenNumber (104): the number of descendants of a node."""


@dataclass(frozen=True, slots=True)
class GetMaxChildrenRequest(_Path):
    """Legacy record without an opcode."""


@dataclass(frozen=True, slots=True)
class GetMaxChildrenResponse(Record):
    """Legacy record without an opcode."""

    max: int

    def write(self, out: bytearray) -> None:
        write_int(out, self.max)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_int())


@dataclass(frozen=True, slots=True)
class SetMaxChildrenRequest(Record):
    """Legacy record without an opcode."""

    path: str
    max: int

    def write(self, out: bytearray) -> None:
        write_string(out, self.path)
        write_int(out, self.max)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), r.read_int())


@dataclass(frozen=True, slots=True)
class SyncRequest(_Path):
    """sync (9): catch this server up with the leader before later reads."""


@dataclass(frozen=True, slots=True)
class SyncResponse(_Path):
    """Reply to sync: the path."""


@dataclass(frozen=True, slots=True)
class GetACLRequest(_Path):
    """getACL (6)."""


@dataclass(frozen=True, slots=True)
class SetACLRequest(Record):
    """setACL (7): replace a node's ACL if ``version`` matches its aversion."""

    path: str
    acl: tuple[ACL, ...]
    version: int

    def write(self, out: bytearray) -> None:
        write_string(out, self.path)
        _write_acls(out, self.acl)
        write_int(out, self.version)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), _read_acls(r), r.read_int())


@dataclass(frozen=True, slots=True)
class SetACLResponse(_StatOnly):
    """Reply to setACL: the node's new Stat."""


@dataclass(frozen=True, slots=True)
class AddWatchRequest(Record):
    """addWatch (106): a persistent (``mode`` 0) or persistent-recursive (1) watch."""

    path: str
    mode: int

    def write(self, out: bytearray) -> None:
        write_string(out, self.path)
        write_int(out, self.mode)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), r.read_int())


@dataclass(frozen=True, slots=True)
class WatcherEvent(Record):
    """A watch notification (sent with xid -1): event type, keeper state, path."""

    type: int
    state: int
    path: str

    def write(self, out: bytearray) -> None:
        out += INT_INT.pack(self.type, self.state)
        write_string(out, self.path)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_int(), r.read_int(), r.read_string())


@dataclass(frozen=True, slots=True)
class ErrorResponse(Record):
    """A result code as a body: a failed op in a multi; also the body of addWatch."""

    err: int

    def write(self, out: bytearray) -> None:
        write_int(out, self.err)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_int())


@dataclass(frozen=True, slots=True)
class CreateResponse(_Path):
    """Reply to create: the created path (with its sequence suffix)."""


@dataclass(frozen=True, slots=True)
class Create2Response(Record):
    """Reply to create2, createContainer and createTTL: path and Stat."""

    path: str
    stat: Stat

    def write(self, out: bytearray) -> None:
        write_string(out, self.path)
        self.stat.write(out)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string(), Stat.read(r))


@dataclass(frozen=True, slots=True)
class ExistsResponse(_StatOnly):
    """Reply to exists for an existing node."""


@dataclass(frozen=True, slots=True)
class GetDataResponse(Record):
    """Reply to getData (and reconfig): data and Stat."""

    data: bytes | None
    stat: Stat

    def write(self, out: bytearray) -> None:
        write_buffer(out, self.data)
        self.stat.write(out)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_buffer(), Stat.read(r))


@dataclass(frozen=True, slots=True)
class GetChildrenResponse(_Children):
    """Reply to getChildren."""


@dataclass(frozen=True, slots=True)
class GetChildren2Response(Record):
    """Reply to getChildren2: child names and the parent's Stat."""

    children: tuple[str, ...]
    stat: Stat

    def write(self, out: bytearray) -> None:
        write_strings(out, self.children)
        self.stat.write(out)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_strings(), Stat.read(r))


@dataclass(frozen=True, slots=True)
class GetAllChildrenNumberResponse(Record):
    """Reply to getAllChildrenNumber."""

    total_number: int

    def write(self, out: bytearray) -> None:
        write_int(out, self.total_number)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_int())


@dataclass(frozen=True, slots=True)
class GetACLResponse(Record):
    """Reply to getACL: the ACL and the node's Stat."""

    acl: tuple[ACL, ...]
    stat: Stat

    def write(self, out: bytearray) -> None:
        _write_acls(out, self.acl)
        self.stat.write(out)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(_read_acls(r), Stat.read(r))


@dataclass(frozen=True, slots=True)
class CheckWatchesRequest(_PathInt):
    """checkWatches (17): is a watch of :class:`WatcherType` ``type`` set on ``path``?"""


@dataclass(frozen=True, slots=True)
class RemoveWatchesRequest(_PathInt):
    """removeWatches (18): remove the session's watches of ``type`` on ``path``."""


@dataclass(frozen=True, slots=True)
class GetEphemeralsRequest(Record):
    """getEphemerals (103): the session's ephemeral nodes under ``prefix_path``."""

    prefix_path: str

    def write(self, out: bytearray) -> None:
        write_string(out, self.prefix_path)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_string())


@dataclass(frozen=True, slots=True)
class GetEphemeralsResponse(Record):
    """Reply to getEphemerals."""

    ephemerals: tuple[str, ...]

    def write(self, out: bytearray) -> None:
        write_strings(out, self.ephemerals)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_strings())


@dataclass(frozen=True, slots=True)
class WhoAmIResponse(Record):
    """Reply to whoAmI (107): the session's authenticated identities."""

    client_info: tuple[ClientInfo, ...]

    def write(self, out: bytearray) -> None:
        write_int(out, len(self.client_info))
        for info in self.client_info:
            info.write(out)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(tuple([ClientInfo.read(r) for _ in range(r.read_count(8))]))


@dataclass(frozen=True, slots=True)
class _Watches(Record):
    relative_zxid: int
    data_watches: tuple[str, ...]
    exist_watches: tuple[str, ...]
    child_watches: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetWatches(_Watches):
    """setWatches (101, xid -8): re-register one-shot watches after a reconnect."""

    def write(self, out: bytearray) -> None:
        write_long(out, self.relative_zxid)
        write_strings(out, self.data_watches)
        write_strings(out, self.exist_watches)
        write_strings(out, self.child_watches)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_long(), r.read_strings(), r.read_strings(), r.read_strings())


@dataclass(frozen=True, slots=True)
class SetWatches2(_Watches):
    """setWatches2 (105, xid -8): as :class:`SetWatches` plus persistent watches."""

    persistent_watches: tuple[str, ...]
    persistent_recursive_watches: tuple[str, ...]

    def write(self, out: bytearray) -> None:
        write_long(out, self.relative_zxid)
        write_strings(out, self.data_watches)
        write_strings(out, self.exist_watches)
        write_strings(out, self.child_watches)
        write_strings(out, self.persistent_watches)
        write_strings(out, self.persistent_recursive_watches)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(
            r.read_long(),
            r.read_strings(),
            r.read_strings(),
            r.read_strings(),
            r.read_strings(),
            r.read_strings(),
        )


class CloseSessionRequest(_Empty):
    """closeSession (-11): no body."""

    __slots__ = ()


class PingRequest(_Empty):
    """ping (11, xid -2): no body."""

    __slots__ = ()


class WhoAmIRequest(_Empty):
    """whoAmI (107): no body."""

    __slots__ = ()


class EmptyResponse(_Empty):
    """The body of replies that carry none (delete, setWatches, ping, ...)."""

    __slots__ = ()


# --- multi ---------------------------------------------------------------------------------

MultiOpRequest: TypeAlias = (
    CreateRequest
    | CreateTTLRequest
    | DeleteRequest
    | SetDataRequest
    | CheckVersionRequest
    | GetChildrenRequest
    | GetDataRequest
)

_MULTI_OP_TYPES: dict[int, type[Record]] = {
    OpCode.CREATE: CreateRequest,
    OpCode.CREATE2: CreateRequest,
    OpCode.CREATE_CONTAINER: CreateRequest,
    OpCode.CREATE_TTL: CreateTTLRequest,
    OpCode.DELETE: DeleteRequest,
    OpCode.DELETE_CONTAINER: DeleteRequest,
    OpCode.SET_DATA: SetDataRequest,
    OpCode.CHECK: CheckVersionRequest,
    OpCode.GET_CHILDREN: GetChildrenRequest,
    OpCode.GET_DATA: GetDataRequest,
}

_DONE = MultiHeader(-1, True, -1).to_bytes()


@dataclass(frozen=True, slots=True)
class MultiOp:
    """One op of a multi or multiRead request: its opcode and request record."""

    type: int
    request: MultiOpRequest


@dataclass(frozen=True, slots=True)
class MultiRequest(Record):
    """multi (14) and multiRead (22): ops applied all-or-nothing (or read together)."""

    ops: tuple[MultiOp, ...]

    def write(self, out: bytearray) -> None:
        for op in self.ops:
            MultiHeader(op.type, False, -1).write(out)
            op.request.write(out)
        out += _DONE

    @classmethod
    def read(cls, r: Reader) -> Self:
        ops: list[MultiOp] = []
        while True:
            header = MultiHeader.read(r)
            if header.done:
                return cls(tuple(ops))
            record_type = _MULTI_OP_TYPES.get(header.type)
            if record_type is None:
                raise ProtocolError(f"invalid op type {header.type} in multi")
            request = record_type.read(r)
            ops.append(MultiOp(header.type, request))  # type: ignore[arg-type]


MultiResultBody: TypeAlias = (
    CreateResponse
    | Create2Response
    | SetDataResponse
    | GetChildrenResponse
    | GetDataResponse
    | ErrorResponse
    | None
)

_MULTI_RESULT_TYPES: dict[int, type[Record] | None] = {
    OpCode.CREATE: CreateResponse,
    OpCode.CREATE2: Create2Response,
    OpCode.CREATE_TTL: Create2Response,
    OpCode.CREATE_CONTAINER: Create2Response,
    OpCode.DELETE: None,
    OpCode.DELETE_CONTAINER: None,
    OpCode.CHECK: None,
    OpCode.SET_DATA: SetDataResponse,
    OpCode.GET_CHILDREN: GetChildrenResponse,
    OpCode.GET_DATA: GetDataResponse,
    OpCode.ERROR: ErrorResponse,
}


@dataclass(frozen=True, slots=True)
class MultiResult:
    """One result of a multi: its op type (-1 for an error), code, and body."""

    type: int
    err: int
    body: MultiResultBody


@dataclass(frozen=True, slots=True)
class MultiResponse(Record):
    """Reply to multi and multiRead: one result per op, in order."""

    results: tuple[MultiResult, ...]

    def write(self, out: bytearray) -> None:
        for result in self.results:
            MultiHeader(result.type, False, result.err).write(out)
            if result.body is not None:
                result.body.write(out)
        out += _DONE

    @classmethod
    def read(cls, r: Reader) -> Self:
        results: list[MultiResult] = []
        while True:
            header = MultiHeader.read(r)
            if header.done:
                return cls(tuple(results))
            if header.type not in _MULTI_RESULT_TYPES:
                raise ProtocolError(f"invalid result type {header.type} in multi response")
            body_type = _MULTI_RESULT_TYPES[header.type]
            body = None if body_type is None else body_type.read(r)
            results.append(MultiResult(header.type, header.err, body))  # type: ignore[arg-type]


#: The request record of each opcode (after the RequestHeader).
REQUEST_TYPES: dict[int, type[Record]] = {
    OpCode.CREATE: CreateRequest,
    OpCode.CREATE2: CreateRequest,
    OpCode.CREATE_CONTAINER: CreateRequest,
    OpCode.CREATE_TTL: CreateTTLRequest,
    OpCode.DELETE: DeleteRequest,
    OpCode.DELETE_CONTAINER: DeleteRequest,
    OpCode.EXISTS: ExistsRequest,
    OpCode.GET_DATA: GetDataRequest,
    OpCode.SET_DATA: SetDataRequest,
    OpCode.GET_ACL: GetACLRequest,
    OpCode.SET_ACL: SetACLRequest,
    OpCode.GET_CHILDREN: GetChildrenRequest,
    OpCode.GET_CHILDREN2: GetChildren2Request,
    OpCode.GET_ALL_CHILDREN_NUMBER: GetAllChildrenNumberRequest,
    OpCode.GET_EPHEMERALS: GetEphemeralsRequest,
    OpCode.SYNC: SyncRequest,
    OpCode.CHECK: CheckVersionRequest,
    OpCode.MULTI: MultiRequest,
    OpCode.MULTI_READ: MultiRequest,
    OpCode.PING: PingRequest,
    OpCode.AUTH: AuthPacket,
    OpCode.SET_WATCHES: SetWatches,
    OpCode.SET_WATCHES2: SetWatches2,
    OpCode.SASL: GetSASLRequest,
    OpCode.ADD_WATCH: AddWatchRequest,
    OpCode.REMOVE_WATCHES: RemoveWatchesRequest,
    OpCode.CHECK_WATCHES: CheckWatchesRequest,
    OpCode.WHO_AM_I: WhoAmIRequest,
    OpCode.CLOSE_SESSION: CloseSessionRequest,
    OpCode.RECONFIG: ReconfigRequest,
}

#: The reply body of each opcode when it succeeds.
RESPONSE_TYPES: dict[int, type[Record]] = {
    OpCode.CREATE: CreateResponse,
    OpCode.CREATE2: Create2Response,
    OpCode.CREATE_CONTAINER: Create2Response,
    OpCode.CREATE_TTL: Create2Response,
    OpCode.DELETE: EmptyResponse,
    OpCode.DELETE_CONTAINER: EmptyResponse,
    OpCode.EXISTS: ExistsResponse,
    OpCode.GET_DATA: GetDataResponse,
    OpCode.SET_DATA: SetDataResponse,
    OpCode.GET_ACL: GetACLResponse,
    OpCode.SET_ACL: SetACLResponse,
    OpCode.GET_CHILDREN: GetChildrenResponse,
    OpCode.GET_CHILDREN2: GetChildren2Response,
    OpCode.GET_ALL_CHILDREN_NUMBER: GetAllChildrenNumberResponse,
    OpCode.GET_EPHEMERALS: GetEphemeralsResponse,
    OpCode.SYNC: SyncResponse,
    OpCode.CHECK: EmptyResponse,
    OpCode.MULTI: MultiResponse,
    OpCode.MULTI_READ: MultiResponse,
    OpCode.PING: EmptyResponse,
    OpCode.AUTH: EmptyResponse,
    OpCode.SET_WATCHES: EmptyResponse,
    OpCode.SET_WATCHES2: EmptyResponse,
    OpCode.SASL: SetSASLResponse,
    OpCode.ADD_WATCH: ErrorResponse,
    OpCode.REMOVE_WATCHES: EmptyResponse,
    OpCode.CHECK_WATCHES: EmptyResponse,
    OpCode.WHO_AM_I: WhoAmIResponse,
    OpCode.CLOSE_SESSION: EmptyResponse,
    OpCode.RECONFIG: GetDataResponse,
}

#: Every record class, for tests and tools.
ALL_RECORDS: tuple[type[Record], ...] = (
    Id,
    ACL,
    Stat,
    ClientInfo,
    ConnectRequest,
    ConnectResponse,
    RequestHeader,
    ReplyHeader,
    MultiHeader,
    AuthPacket,
    GetDataRequest,
    ExistsRequest,
    GetChildrenRequest,
    GetChildren2Request,
    SetDataRequest,
    SetDataResponse,
    ReconfigRequest,
    GetSASLRequest,
    SetSASLRequest,
    SetSASLResponse,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    CheckVersionRequest,
    GetAllChildrenNumberRequest,
    GetMaxChildrenRequest,
    GetMaxChildrenResponse,
    SetMaxChildrenRequest,
    SyncRequest,
    SyncResponse,
    GetACLRequest,
    SetACLRequest,
    SetACLResponse,
    AddWatchRequest,
    WatcherEvent,
    ErrorResponse,
    CreateResponse,
    Create2Response,
    ExistsResponse,
    GetDataResponse,
    GetChildrenResponse,
    GetChildren2Response,
    GetAllChildrenNumberResponse,
    GetACLResponse,
    CheckWatchesRequest,
    RemoveWatchesRequest,
    GetEphemeralsRequest,
    GetEphemeralsResponse,
    WhoAmIResponse,
    SetWatches,
    SetWatches2,
    CloseSessionRequest,
    PingRequest,
    WhoAmIRequest,
    EmptyResponse,
    MultiRequest,
    MultiResponse,
)

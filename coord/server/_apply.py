"""The replicated state machine: ``apply(entry) -> result``, identical on every replica.

Theory of operation
-------------------
Every change to the replicated state -- a client write, a session created or closed, a
container or TTL node reaped -- is an :class:`Entry` in the log, stamped by the leader with
its zxid and time and carrying everything apply needs (the session id and the caller's
identities for ACL checks). :meth:`StateMachine.apply` is a pure function of the current
state and the entry: no clock, no randomness, no I/O. Errors such as ``NodeExists`` or
``BadVersion`` are *results* of apply, so every replica reaches the same verdict
(DESIGN.md decision 3). Apply returns the encoded reply body and the watch events the
change triggers; delivering them is the caller's business.

A zxid is consumed by every entry, failed or not, as in ZooKeeper (where a failed request
becomes an error txn).

Check order follows ZooKeeper's ``PrepRequestProcessor`` exactly, because clients can
observe it (e.g. deleting a missing node under a parent without DELETE permission is
``NoAuth``, not ``NoNode``).

Multi: ops run in order against the live tree, each recording how to undo itself; if one
fails, the ones before are undone and the results are ZooKeeper's: ``OK`` for ops before
the failure (rolled back), the failure's code, then ``RuntimeInconsistency`` for the rest.
The reply header of a failed multi carries code 0; the results carry the errors. A multi
holding anything but creates, delete, setData and check is ``MarshallingError`` as a
whole (ZooKeeper cannot decode it), and each create runs as the op its flags make it (see
:func:`_multi_op`).

Node kinds follow ZooKeeper's DataTree: the createContainer and createTTL opcodes make
containers and TTL nodes; create/create2 make ephemeral or persistent nodes from the flags
(the CONTAINER flag on a plain create gives a persistent node).

Paths are validated where ZooKeeper validates them, since the error is observable: create,
setData, setACL and check reject a malformed path with ``BadArguments``; delete only
rejects a path without ``/`` or with NUL (a malformed one is then ``NoNode``); reads do
not validate at all (``NoNode``), except exists, which rejects NUL.

Reads (:meth:`StateMachine.read`) run against the local replica only and never change it.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from coord.protocol import (
    ACL,
    AuthPacket,
    BadArgumentsError,
    BadVersionError,
    CheckVersionRequest,
    CloseSessionRequest,
    CoordError,
    CreateMode,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ErrorCode,
    EventType,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    Id,
    MarshallingError,
    MultiOp,
    MultiRequest,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OpCode,
    Perm,
    QuotaExceededError,
    Reader,
    Record,
    SessionExpiredError,
    SessionMovedError,
    SetACLRequest,
    SetDataRequest,
    SyncRequest,
    UnimplementedError,
)
from coord.protocol._jute import (
    INT,
    STAT,
    write_buffer,
    write_int,
    write_string,
    write_strings,
)
from coord.protocol._records import REQUEST_TYPES

from ._acl import AclPolicy
from ._quota import (
    LIMIT_NODE,
    STAT_NODE,
    QuotaIndex,
    exceeds,
    format_stats,
    limit_path,
    parse_stats,
    stat_path,
)
from ._tree import (
    CONTAINER_OWNER,
    MAX_TTL,
    Node,
    ephemeral_session,
    parent_of,
    system_nodes,
    ttl_of,
    ttl_owner,
    validate_path,
)

__all__ = [
    "ENTRY_CONFIG",
    "ENTRY_CONF_CHANGE",
    "ENTRY_NOOP",
    "ENTRY_SESSION_OWNER",
    "ApplyResult",
    "CreateSession",
    "Entry",
    "Noop",
    "Opaque",
    "Session",
    "StateMachine",
    "WatchEvent",
]

_quota_log = logging.getLogger("coord.server")
_INT_MIN = -(2**31)
_INT_MAX = 2**31 - 1
_pack_int = INT.pack
_MULTI_DONE = struct.pack(">i?i", -1, True, -1)
_pack_multi_header = struct.Struct(">i?i").pack

#: A watch event produced by apply: (EventType, path, ACL of that node). The ACL lets the
#: server deliver the event only to watchers allowed to READ the node (ZooKeeper 3.9.2,
#: CVE-2024-23944).
WatchEvent = tuple[int, str, tuple[ACL, ...]]


def _inc(value: int) -> int:
    """ZooKeeper's int counters (version, cversion, aversion) wrap like a Java int."""
    return _INT_MIN if value == _INT_MAX else value + 1


@dataclass(frozen=True, slots=True)
class CreateSession(Record):
    """The body of a createSession entry: negotiated timeout and the session's password."""

    timeout: int
    passwd: bytes

    def write(self, out: bytearray) -> None:
        write_int(out, self.timeout)
        write_buffer(out, self.passwd)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_int(), r.read_bytes())


_ENTRY_HEADER = struct.Struct(">qqqiQ")

#: Entry type of the empty entry a new ensemble leader commits (Raft's no-op, thesis §5.4.2).
#: Internal: never sent by a client. Applying it only advances ``last_zxid``.
ENTRY_NOOP = -100
#: Entry type of a consensus membership change (its body: the core's encoded change).
#: Internal; the driver hands it to the consensus core, apply ignores it.
ENTRY_CONF_CHANGE = -102
#: Entry type that moves a session to the member whose id is the top byte of its tag
#: (logged when a client reconnects to another ensemble member). Internal.
ENTRY_SESSION_OWNER = -101
#: Entry type that sets ``/zookeeper/config`` (body: :class:`Opaque`, the new data). Never
#: logged: the replication driver makes one when a membership change commits, from the
#: addresses the change carries, so every member applies it at the same zxid.
ENTRY_CONFIG = -103


@dataclass(frozen=True, slots=True)
class Opaque(Record):
    """A body of bytes the state machine does not interpret."""

    data: bytes

    def write(self, out: bytearray) -> None:
        write_buffer(out, self.data)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.read_bytes())


@dataclass(frozen=True, slots=True)
class Noop(Record):
    """The (empty) body of a no-op entry."""

    def write(self, out: bytearray) -> None:
        pass

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls()


class Entry:
    """One log entry: a write request (or session event) stamped by the leader.

    Treated as immutable once built. ``body``, when given, is the request's jute
    encoding as it arrived from the client, so encoding the entry does not re-encode it.
    """

    __slots__ = ("auth", "body", "request", "session_id", "tag", "time", "type", "zxid")

    def __init__(
        self,
        zxid: int,
        time: int,
        session_id: int,
        type: int,
        request: Record,
        auth: tuple[Id, ...] = (),
        body: bytes | None = None,
        tag: int = 0,
    ) -> None:
        self.zxid = zxid
        self.time = time
        self.session_id = session_id
        self.type = type
        self.request = request
        self.auth = auth
        self.body = body
        #: The proposing server's reference for this write (0: none). In an ensemble the
        #: server holding the client's connection finds its pending request by it when the
        #: entry is applied; its top byte is that server's id.
        self.tag = tag

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return (
            self.zxid == other.zxid
            and self.time == other.time
            and self.session_id == other.session_id
            and self.type == other.type
            and self.request == other.request
            and self.auth == other.auth
            and self.tag == other.tag
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Entry(zxid=0x{self.zxid:x}, time={self.time}, session_id=0x{self.session_id:x}, "
            f"type={self.type}, request={self.request!r}, auth={self.auth!r})"
        )

    def encode(self) -> bytes:
        """The entry's durable encoding (for the log and for replication)."""
        body = self.body
        if body is None:
            body = self.request.to_bytes()
        return b"".join(
            (
                _ENTRY_HEADER.pack(self.zxid, self.time, self.session_id, self.type, self.tag),
                _encode_auth(self.auth),
                body,
            )
        )

    @classmethod
    def decode(cls, data: bytes | memoryview) -> Entry:
        """Inverse of :meth:`encode`.

        Raises:
            ProtocolError: the bytes are not an entry.
        """
        r = Reader(data)
        zxid = r.read_long()
        time = r.read_long()
        session_id = r.read_long()
        op = r.read_int()
        tag = r.read_long() & 0xFFFF_FFFF_FFFF_FFFF
        auth = tuple([Id.read(r) for _ in range(r.read_count(8))])
        body_type = _ENTRY_BODY_TYPES.get(op) or REQUEST_TYPES.get(op)
        if body_type is None:
            from coord.protocol import ProtocolError

            raise ProtocolError(f"unknown entry type {op}")
        request = body_type.read(r)
        r.expect_end("entry")
        return cls(zxid, time, session_id, op, request, auth, None, tag)


_auth_encodings: dict[tuple[Id, ...], bytes] = {}
#: The same by the identity of the tuple (each connection keeps one tuple), holding the
#: tuple so that its id is not reused while the entry lives: no tuple hashing per write.
_auth_by_id: dict[int, tuple[tuple[Id, ...], bytes]] = {}


def _encode_auth(auth: tuple[Id, ...]) -> bytes:
    """The encoding of a list of identities; connections reuse a few, so it is cached."""
    known = _auth_by_id.get(id(auth))
    if known is not None and known[0] is auth:
        return known[1]
    encoded = _auth_encodings.get(auth)
    if encoded is None:
        out = bytearray()
        write_int(out, len(auth))
        for ident in auth:
            ident.write(out)
        encoded = bytes(out)
        if len(_auth_encodings) >= 4096:
            _auth_encodings.clear()
        _auth_encodings[auth] = encoded
    if len(_auth_by_id) >= 4096:
        _auth_by_id.clear()
    _auth_by_id[id(auth)] = (auth, encoded)
    return encoded


_ENTRY_BODY_TYPES: dict[int, type[Record]] = {
    OpCode.CREATE_SESSION: CreateSession,
    OpCode.CLOSE_SESSION: CloseSessionRequest,
    ENTRY_NOOP: Noop,
    ENTRY_SESSION_OWNER: Noop,
    ENTRY_CONF_CHANGE: Opaque,
    ENTRY_CONFIG: Opaque,
}


@dataclass(slots=True)
class ApplyResult:
    """What applying one entry produced: a result code, the reply body, watch events."""

    err: int
    body: bytes = b""
    events: list[WatchEvent] = field(default_factory=list)


@dataclass(slots=True)
class Session:
    """A session as the replicated state knows it."""

    session_id: int
    timeout: int
    passwd: bytes
    ephemerals: set[str] = field(default_factory=set)
    #: Id of the ensemble member the session is attached to (0: any, standalone). Writes
    #: proposed through another member are refused with SessionMoved, so a write delayed
    #: on the member a client left cannot overtake the writes it sent after moving.
    owner: int = 0


_Undo = list[Callable[[], None]]
#: By flag value: (CreateMode, is_ttl, is_sequential, is_ephemeral), so the write path
#: calls neither EnumType.__call__ nor the mode's properties.
_CREATE_MODE_KINDS: dict[int, tuple[CreateMode, bool, bool, bool]] = {
    int(mode): (mode, mode.is_ttl, mode.is_sequential, mode.is_ephemeral) for mode in CreateMode
}
# Opcodes and permissions as plain ints: comparing with an enum member costs a class
# attribute lookup each time.
_CREATE = int(OpCode.CREATE)
_CREATE_CONTAINER = int(OpCode.CREATE_CONTAINER)
_CREATE_TTL = int(OpCode.CREATE_TTL)
_SET_DATA = int(OpCode.SET_DATA)
_DELETE = int(OpCode.DELETE)
_SET_ACL = int(OpCode.SET_ACL)
_CHECK = int(OpCode.CHECK)
_MULTI = int(OpCode.MULTI)
_SYNC = int(OpCode.SYNC)
_CREATE_SESSION = int(OpCode.CREATE_SESSION)
_CLOSE_SESSION = int(OpCode.CLOSE_SESSION)
_DELETE_CONTAINER = int(OpCode.DELETE_CONTAINER)
_PERM_READ = int(Perm.READ)
_PERM_WRITE = int(Perm.WRITE)
_PERM_CREATE = int(Perm.CREATE)
_PERM_DELETE = int(Perm.DELETE)
_NODE_CREATED = int(EventType.NODE_CREATED)
_NODE_DELETED = int(EventType.NODE_DELETED)
_NODE_DATA_CHANGED = int(EventType.NODE_DATA_CHANGED)
_NODE_CHILDREN_CHANGED = int(EventType.NODE_CHILDREN_CHANGED)


class StateMachine:
    """The replicated state -- the data tree and the session table -- and its apply function.

    Args:
        acl: the ACL policy (auth schemes) shared by every replica.
        extended_types: allow TTL nodes (ZooKeeper's ``zookeeper.extendedTypesEnabled``).
        enforce_quota: fail writes past a quota's hard limits with QuotaExceeded
            (ZooKeeper's ``zookeeper.enforceQuota``; see :mod:`coord.server._quota`).
    """

    def __init__(
        self, acl: AclPolicy, *, extended_types: bool = True, enforce_quota: bool = False
    ) -> None:
        self.acl = acl
        self.extended_types = extended_types
        self.enforce_quota = enforce_quota
        self._quotas: QuotaIndex | None = None
        #: Inside a multi: each quota usage as it was before the multi (what checks see).
        self._usage_before: dict[str, bytes | None] | None = None
        self.nodes: dict[str, Node] = system_nodes()
        self.sessions: dict[int, Session] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        #: zxid of the last applied entry.
        self.last_zxid = 0
        #: Paths and session ids whose records changed since the owner last cleared
        #: these sets (what a durable store must rewrite; undone multi ops included).
        self.touched: set[str] = set()
        self.touched_sessions: set[int] = set()

    # --- apply -------------------------------------------------------------------------

    def apply(self, entry: Entry) -> ApplyResult:
        """Apply one committed entry; the same entry gives the same result everywhere."""
        if entry.zxid > self.last_zxid:
            self.last_zxid = entry.zxid
        op = entry.type
        try:
            if op < 0 or op == _DELETE_CONTAINER:
                # Session events and internal entries (all of them negative) and reaping.
                if op == _CREATE_SESSION:
                    return self._create_session(entry)
                if op == _CLOSE_SESSION:
                    return self._close_session(entry)
                if op == _DELETE_CONTAINER:
                    return self._reap(entry)
                if op in (ENTRY_NOOP, ENTRY_CONF_CHANGE):
                    return ApplyResult(0)
                if op == ENTRY_CONFIG:
                    assert isinstance(entry.request, Opaque)
                    return self._set_config(entry, entry.request.data)
            session = self.sessions.get(entry.session_id)
            if session is None:
                raise SessionExpiredError()
            if op == ENTRY_SESSION_OWNER:
                session.owner = entry.tag >> 56
                self.touched_sessions.add(entry.session_id)
                return ApplyResult(0)
            if session.owner and entry.tag and entry.tag >> 56 != session.owner:
                raise SessionMovedError()
            if op == _MULTI:
                assert isinstance(entry.request, MultiRequest)
                return self._multi(entry, entry.request)
            if op == _SYNC:
                # An ensemble's sync: a marker in the log; applied, this replica has caught
                # up with everything committed before it.
                assert isinstance(entry.request, SyncRequest)
                out = bytearray()
                write_string(out, entry.request.path)
                return ApplyResult(0, bytes(out))
            events: list[WatchEvent] = []
            body = self._write_op(entry, op, entry.request, events, None)
            return ApplyResult(0, body, events)
        except CoordError as exc:
            assert exc.code is not None
            return ApplyResult(int(exc.code))

    def _write_op(
        self,
        entry: Entry,
        op: int,
        request: Record,
        events: list[WatchEvent],
        undo: _Undo | None,
    ) -> bytes:
        if op == _SET_DATA:
            assert isinstance(request, SetDataRequest)
            return self._set_data(entry, request, events, undo).stat_bytes()
        if op in _CREATE_OPS:
            assert isinstance(request, (CreateRequest, CreateTTLRequest))
            path, node = self._create(entry, op, request, events, undo)
            encoded = path.encode("utf-8")
            if op == _CREATE:
                return _pack_int(len(encoded)) + encoded
            return b"".join((_pack_int(len(encoded)), encoded, node.stat_bytes()))
        if op == _DELETE:
            assert isinstance(request, DeleteRequest)
            self._delete(entry, request.path, request.version, events, undo)
            return b""
        if op == _SET_ACL:
            assert isinstance(request, SetACLRequest)
            return self._set_acl(entry, request).stat_bytes()
        if op == _CHECK:
            assert isinstance(request, CheckVersionRequest)
            self._check(entry, request)
            return b""
        raise UnimplementedError(f"opcode {op} is not a write")

    def _lookup(self, path: str) -> Node:
        node = self.nodes.get(path)
        if node is None:
            raise NoNodeError(path=path)
        return node

    def _create(
        self,
        entry: Entry,
        op: int,
        request: CreateRequest | CreateTTLRequest,
        events: list[WatchEvent],
        undo: _Undo | None,
    ) -> tuple[str, Node]:
        kind = _CREATE_MODE_KINDS.get(request.flags)
        if kind is None:
            raise BadArgumentsError(f"unknown create mode {request.flags}")
        mode, is_ttl, is_sequential, is_ephemeral = kind
        ttl = request.ttl if isinstance(request, CreateTTLRequest) else -1
        if is_ttl and not self.extended_types:
            raise UnimplementedError("TTL nodes are disabled (extended types are off)")
        if op == _CREATE_TTL and not is_ttl:
            raise BadArgumentsError("createTTL needs a TTL mode")
        if is_ttl:
            if not 0 < ttl <= MAX_TTL:
                raise BadArgumentsError(f"TTL must be in 1..{MAX_TTL} ms, got {ttl}")
        elif ttl >= 0:
            raise BadArgumentsError(f"TTL not valid for mode {mode.name}")
        path = request.path
        cut = path.rfind("/")
        if cut == -1 or "\0" in path:
            raise BadArgumentsError(f"invalid path {path!r}", path=path)
        parent_path = path[:cut] or "/"
        auth = entry.auth
        acl = self.acl.fixup(request.acl, auth, path)
        parent = self._lookup(parent_path)
        self.acl.check(parent.acl, _PERM_CREATE, auth, path)
        if is_sequential:
            path = f"{path}{parent.cversion:010d}"
        validate_path(path)
        if path in self.nodes:
            raise NodeExistsError(path=path)
        if ephemeral_session(parent.ephemeral_owner):
            raise NoChildrenForEphemeralsError(path=path)
        data = request.data
        if self.enforce_quota:
            self._check_quota(path, 1, len(data) if data else 0)
        # As ZooKeeper's DataTree: the opcode makes a container (whatever the flags), the
        # flags make an ephemeral; create with the CONTAINER flag is a persistent node.
        if op == _CREATE_CONTAINER:
            owner = CONTAINER_OWNER
        elif op == _CREATE_TTL:
            owner = ttl_owner(ttl)
        elif is_ephemeral:
            owner = entry.session_id
        else:
            owner = 0
        zxid = entry.zxid
        node = Node(request.data, acl, zxid, entry.time, owner)
        name = path[cut + 1 :]
        if undo is not None:
            old_cversion, old_pzxid = parent.cversion, parent.pzxid
            undo.append(lambda: self._remove(path, parent, name, node))
            undo.append(lambda: _restore_parent(parent, old_cversion, old_pzxid))
        self.nodes[path] = node
        parent.add_child(name)
        parent.cversion = _inc(parent.cversion)
        parent.pzxid = zxid
        if owner:
            self._index(path, node)
        self._quota_created(path, parent_path, name, node, undo)
        events.append((_NODE_CREATED, path, acl))
        events.append((_NODE_CHILDREN_CHANGED, parent_path, parent.acl))
        touched = self.touched
        touched.add(path)
        touched.add(parent_path)
        return path, node

    def _index(self, path: str, node: Node) -> None:
        owner = node.ephemeral_owner
        session_id = ephemeral_session(owner)
        if session_id:
            session = self.sessions.get(session_id)
            if session is not None:
                session.ephemerals.add(path)
        elif owner == CONTAINER_OWNER:
            self.containers.add(path)
        elif ttl_of(owner) is not None:
            self.ttls.add(path)

    def _remove(self, path: str, parent: Node, name: str, node: Node) -> None:
        """Unlink a node (no checks, no versions): for delete and for undoing a create."""
        del self.nodes[path]
        parent.discard_child(name)
        owner = node.ephemeral_owner
        if owner:
            session_id = ephemeral_session(owner)
            if session_id:
                session = self.sessions.get(session_id)
                if session is not None:
                    session.ephemerals.discard(path)
            else:  # a container or a TTL node
                self.containers.discard(path)
                self.ttls.discard(path)

    def _delete(
        self,
        entry: Entry,
        path: str,
        version: int,
        events: list[WatchEvent],
        undo: _Undo | None,
        *,
        check_acl: bool = True,
    ) -> None:
        # ZooKeeper's getParentPathAndValidate: no full path validation here, so a
        # malformed path that cannot exist (``/a/``, ``/a//b``) is NoNode, not BadArguments.
        if "/" not in path or "\0" in path:
            raise BadArgumentsError(f"invalid path {path!r}", path=path)
        if path in _SPECIAL_PATHS:
            raise BadArgumentsError(f"{path} is a system node and cannot be deleted", path=path)
        parent_path, name = parent_of(path)
        parent = self._lookup(parent_path)
        if check_acl:
            self.acl.check(parent.acl, _PERM_DELETE, entry.auth, path)
        node = self._lookup(path)
        if version != -1 and version != node.version:
            raise BadVersionError(path=path)
        if node.children:
            raise NotEmptyError(path=path)
        if undo is not None:
            old_cversion, old_pzxid = parent.cversion, parent.pzxid
            undo.append(lambda: self._relink(path, parent, name, node))
            undo.append(lambda: _restore_parent(parent, old_cversion, old_pzxid))
        self._remove(path, parent, name, node)
        self._quota_removed(path, parent_path, name, node, undo)
        # cversion counts creates only (see _tree); the reported one still goes up.
        parent.pzxid = entry.zxid
        events.append((_NODE_DELETED, path, node.acl))
        events.append((_NODE_CHILDREN_CHANGED, parent_path, parent.acl))
        touched = self.touched
        touched.add(path)
        touched.add(parent_path)

    def _relink(self, path: str, parent: Node, name: str, node: Node) -> None:
        self.nodes[path] = node
        parent.add_child(name)
        if node.ephemeral_owner:
            self._index(path, node)

    def _set_data(
        self,
        entry: Entry,
        request: SetDataRequest,
        events: list[WatchEvent],
        undo: _Undo | None,
    ) -> Node:
        path = request.path
        validate_path(path)
        node = self._lookup(path)
        self.acl.check(node.acl, _PERM_WRITE, entry.auth, path)
        new_size = len(request.data) if request.data else 0
        old_size = len(node.data) if node.data else 0
        if self.enforce_quota:
            self._check_quota(path, 0, new_size - old_size)
        version = request.version
        if version != -1 and version != node.version:
            raise BadVersionError(path=path)
        if undo is not None:
            saved = (node.data, node.version, node.mzxid, node.mtime)
            undo.append(lambda: _restore_data(node, saved))
        node.data = request.data
        if new_size != old_size:
            self._quota_account(path, 0, new_size - old_size, undo)
        node.version = _inc(node.version)
        node.mzxid = entry.zxid
        node.mtime = entry.time
        events.append((_NODE_DATA_CHANGED, path, node.acl))
        self.touched.add(path)
        return node

    def _set_config(self, entry: Entry, data: bytes) -> ApplyResult:
        """A committed membership change: ``/zookeeper/config`` gets the new configuration
        (a data change: mzxid and mtime move, data watches fire; its version reads -1, as
        in ZooKeeper). The result is the reconfig reply: the new data and the Stat."""
        path = "/zookeeper/config"
        node = self.nodes[path]
        node.data = data
        # ZooKeeper's DataTree.processReconfig sets it with version -1, which it stores.
        node.version = -1
        node.mzxid = entry.zxid
        node.mtime = entry.time
        self.touched.add(path)
        body = bytearray()
        write_buffer(body, data)
        body += node.stat_bytes()
        return ApplyResult(0, bytes(body), [(_NODE_DATA_CHANGED, path, node.acl)])

    def _set_acl(self, entry: Entry, request: SetACLRequest) -> Node:
        path = request.path
        validate_path(path)
        acl = self.acl.fixup(request.acl, entry.auth, path)
        node = self._lookup(path)
        self.acl.check(node.acl, Perm.ADMIN, entry.auth, path)
        version = request.version
        if version != -1 and version != node.aversion:
            raise BadVersionError(path=path)
        node.acl = acl
        node.aversion = _inc(node.aversion)
        self.touched.add(path)
        return node

    def _check(self, entry: Entry, request: CheckVersionRequest) -> None:
        path = request.path
        validate_path(path)
        node = self._lookup(path)
        self.acl.check(node.acl, Perm.READ, entry.auth, path)
        if request.version != -1 and request.version != node.version:
            raise BadVersionError(path=path)

    def _multi(self, entry: Entry, request: MultiRequest) -> ApplyResult:
        for op in request.ops:
            if op.type not in _MULTI_WRITE_OPS:
                # ZooKeeper fails to decode a multi mixing reads (or deleteContainer) in.
                raise MarshallingError(f"opcode {op.type} is not allowed in multi")
        undo: _Undo = []
        events: list[WatchEvent] = []
        bodies: list[tuple[int, bytes]] = []
        failed_at = -1
        failure = 0
        self._usage_before = {}
        try:
            for index, (op_type, op_request) in enumerate(map(_multi_op, request.ops)):
                try:
                    body = self._write_op(entry, op_type, op_request, events, undo)
                    bodies.append((_MULTI_RESULT_TYPE.get(op_type, op_type), body))
                except CoordError as exc:
                    assert exc.code is not None
                    failed_at, failure = index, int(exc.code)
                    break
        finally:
            self._usage_before = None
        out = bytearray()
        if failed_at < 0:
            for op_type, body in bodies:
                out += _pack_multi_header(op_type, False, 0)
                out += body
            out += _MULTI_DONE
            return ApplyResult(0, bytes(out), events)
        for step in reversed(undo):
            step()
        for index in range(len(request.ops)):
            if index < failed_at:
                code = 0
            elif index == failed_at:
                code = failure
            else:
                code = ErrorCode.RUNTIME_INCONSISTENCY
            out += _pack_multi_header(-1, False, code)
            out += _pack_int(code)
        out += _MULTI_DONE
        return ApplyResult(0, bytes(out))

    # --- quotas (coord/server/_quota.py) -------------------------------------------------

    def quota_index(self) -> QuotaIndex:
        """The quota roots of the current tree (rebuilt if the node map was replaced)."""
        index = self._quotas
        if index is None or index.nodes is not self.nodes:
            index = self._quotas = QuotaIndex(self.nodes)
        return index

    def _check_quota(self, path: str, count_diff: int, bytes_diff: int) -> None:
        """Raise QuotaExceeded if the write takes its quota root past a hard limit."""
        root = self.quota_index().root_of(path)
        if root is None:
            return
        limits = self.nodes.get(limit_path(root))
        usage_path = stat_path(root)
        usage = self.nodes.get(usage_path)
        if limits is None or usage is None:
            return
        current = parse_stats(usage.data)
        if self._usage_before is not None and usage_path in self._usage_before:
            # ZooKeeper checks the ops of a multi against the committed tree, i.e. the
            # usage before the multi (a delete earlier in the multi frees nothing for a
            # create after it). Taking the larger of that and the running usage refuses
            # whatever ZooKeeper refuses, and also the multi that ZooKeeper would let
            # overshoot a hard limit op by op.
            before = parse_stats(self._usage_before[usage_path])
            for key in ("count", "bytes"):
                current[key] = max(current.get(key, -1), before.get(key, -1))
        hard, message = exceeds(parse_stats(limits.data), current, count_diff, bytes_diff)
        if hard:
            raise QuotaExceededError(f"Quota exceeded: {root} [{message}]", path=root)

    def _quota_account(
        self, path: str, count_diff: int, bytes_diff: int, undo: _Undo | None
    ) -> None:
        """Add a write's effect to the usage of the quota root containing ``path``."""
        root = self.quota_index().root_of(path)
        if root is None:
            return
        usage_path = stat_path(root)
        usage = self.nodes.get(usage_path)
        if usage is None:
            return
        before = usage.data
        if self._usage_before is not None:
            self._usage_before.setdefault(usage_path, before)
        stats = parse_stats(before)
        stats["count"] = stats.get("count", -1) + count_diff
        stats["bytes"] = stats.get("bytes", -1) + bytes_diff
        usage.data = format_stats(stats)
        self.touched.add(usage_path)
        if undo is not None:
            undo.append(lambda: setattr(usage, "data", before))
        limits_node = self.nodes.get(limit_path(root))
        if limits_node is not None:
            limits = parse_stats(limits_node.data)
            for key in ("count", "bytes"):
                limit = limits.get(key, -1)
                if -1 < limit < stats[key] and (key == "count" or bytes_diff > 0):
                    _quota_log.warning(
                        "Quota exceeded: %s %s=%d limit=%d", root, key, stats[key], limit
                    )

    def _quota_created(
        self, path: str, parent_path: str, name: str, node: Node, undo: _Undo | None
    ) -> None:
        root = QuotaIndex.quota_root_of_node(parent_path)
        if root is not None and root != "/":
            index = self.quota_index()
            if name == LIMIT_NODE and root not in index.roots:
                index.roots.add(root)
                if undo is not None:
                    undo.append(lambda: index.roots.discard(root))
            elif name == STAT_NODE:
                count, size = index.usage(root)
                node.data = format_stats({"count": count, "bytes": size})
        data = node.data
        self._quota_account(path, 1, len(data) if data else 0, undo)

    def _quota_removed(
        self, path: str, parent_path: str, name: str, node: Node, undo: _Undo | None
    ) -> None:
        if name == LIMIT_NODE:
            root = QuotaIndex.quota_root_of_node(parent_path)
            index = self.quota_index()
            if root is not None and root in index.roots:
                index.roots.discard(root)
                if undo is not None:
                    undo.append(lambda: index.roots.add(root))
        data = node.data
        self._quota_account(path, -1, -(len(data) if data else 0), undo)

    # --- sessions and reaping ----------------------------------------------------------

    def _create_session(self, entry: Entry) -> ApplyResult:
        request = entry.request
        assert isinstance(request, CreateSession)
        self.sessions[entry.session_id] = Session(
            entry.session_id, request.timeout, request.passwd, owner=entry.tag >> 56
        )
        self.touched_sessions.add(entry.session_id)
        return ApplyResult(0)

    def _close_session(self, entry: Entry) -> ApplyResult:
        session = self.sessions.get(entry.session_id)
        if session is None:
            raise SessionExpiredError()
        if session.owner and entry.tag and entry.tag >> 56 != session.owner:
            raise SessionMovedError()
        del self.sessions[entry.session_id]
        events: list[WatchEvent] = []
        for path in sorted(session.ephemerals, reverse=True):
            node = self.nodes.get(path)
            if node is None:
                continue
            parent_path, name = parent_of(path)
            parent = self.nodes[parent_path]
            del self.nodes[path]
            parent.discard_child(name)
            self._quota_removed(path, parent_path, name, node, None)
            parent.pzxid = entry.zxid
            events.append((EventType.NODE_DELETED, path, node.acl))
            events.append((EventType.NODE_CHILDREN_CHANGED, parent_path, parent.acl))
            self.touched.add(path)
            self.touched.add(parent_path)
        self.touched_sessions.add(entry.session_id)
        return ApplyResult(0, b"", events)

    def _reap(self, entry: Entry) -> ApplyResult:
        """Delete a container or TTL node if it is still a candidate at the entry's time."""
        request = entry.request
        assert isinstance(request, DeleteRequest)
        node = self._lookup(request.path)
        if node.children:
            raise NotEmptyError(path=request.path)
        ttl = ttl_of(node.ephemeral_owner)
        if node.ephemeral_owner == CONTAINER_OWNER:
            if node.cversion <= 0:
                raise BadVersionError(path=request.path)
        elif ttl is None or ttl == 0 or entry.time - node.mtime <= ttl:
            raise BadVersionError(path=request.path)
        events: list[WatchEvent] = []
        self._delete(entry, request.path, -1, events, None, check_acl=False)
        return ApplyResult(0, b"", events)

    def reap_candidates(self, now: int) -> list[str]:
        """Containers emptied after having children and TTL nodes expired at ``now`` (ms)."""
        nodes = self.nodes
        out = [
            path
            for path in self.containers
            if not nodes[path].children and nodes[path].cversion > 0
        ]
        for path in self.ttls:
            node = nodes[path]
            ttl = ttl_of(node.ephemeral_owner)
            if not node.children and ttl and now - node.mtime > ttl:
                out.append(path)
        return sorted(out)

    # --- reads -------------------------------------------------------------------------

    def read(self, op: int, request: Record, auth: tuple[Id, ...], session_id: int) -> bytes:
        """Answer a read against this replica; returns the encoded reply body.

        Raises:
            CoordError: the read's ZooKeeper error (NoNode, NoAuth, BadArguments, ...).
        """
        acl = self.acl
        if op == OpCode.GET_DATA:
            assert isinstance(request, GetDataRequest)
            node = self._read_node(request.path)
            acl.check(node.acl, Perm.READ, auth, request.path)
            out = bytearray()
            write_buffer(out, node.data)
            out += node.stat_bytes()
            return bytes(out)
        if op == OpCode.EXISTS:
            assert isinstance(request, ExistsRequest)
            if "\0" in request.path:
                # The one read ZooKeeper validates (FinalRequestProcessor's exists).
                raise BadArgumentsError("path contains a null character", path=request.path)
            node = self._read_node(request.path)
            acl.check(node.acl, Perm.READ, auth, request.path)
            return node.stat_bytes()
        if op == OpCode.GET_CHILDREN or op == OpCode.GET_CHILDREN2:
            assert isinstance(request, (GetChildrenRequest, GetChildren2Request))
            node = self._read_node(request.path)
            acl.check(node.acl, Perm.READ, auth, request.path)
            out = bytearray()
            write_strings(out, node.children)
            if op == OpCode.GET_CHILDREN2:
                out += node.stat_bytes()
            return bytes(out)
        if op == OpCode.GET_ACL:
            assert isinstance(request, GetACLRequest)
            node = self._read_node(request.path)
            acl.check(node.acl, Perm.READ | Perm.ADMIN, auth, request.path)
            entries = node.acl
            if not acl.allows(node.acl, Perm.ADMIN, auth):
                entries = tuple(_mask_digest(entry) for entry in entries)
            out = bytearray()
            write_int(out, len(entries))
            for entry in entries:
                entry.write(out)
            out += node.stat_bytes()
            return bytes(out)
        if op == OpCode.GET_ALL_CHILDREN_NUMBER:
            assert isinstance(request, GetAllChildrenNumberRequest)
            node = self._read_node(request.path)
            acl.check(node.acl, Perm.READ, auth, request.path)
            return _pack_int(self._count_descendants(request.path, node))
        if op == OpCode.GET_EPHEMERALS:
            assert isinstance(request, GetEphemeralsRequest)
            prefix = request.prefix_path
            session = self.sessions.get(session_id)
            owned = sorted(session.ephemerals) if session is not None else []
            if prefix and prefix.strip() != "/":
                owned = [path for path in owned if path.startswith(prefix)]
            out = bytearray()
            write_strings(out, owned)
            return bytes(out)
        if op == OpCode.MULTI_READ:
            assert isinstance(request, MultiRequest)
            return self._multi_read(request, auth, session_id)
        raise UnimplementedError(f"opcode {op} is not a read")

    def _read_node(self, path: str) -> Node:
        # Reads do not validate the path (as ZooKeeper's FinalRequestProcessor): a path
        # that cannot exist is simply NoNode.
        node = self.nodes.get(path)
        if node is None:
            raise NoNodeError(path=path)
        return node

    def _count_descendants(self, path: str, node: Node) -> int:
        total = 0
        stack = [(path, node)]
        nodes = self.nodes
        while stack:
            base, current = stack.pop()
            prefix = base if base != "/" else ""
            for name in current.children:
                total += 1
                child_path = f"{prefix}/{name}"
                child = nodes[child_path]
                if child.children:
                    stack.append((child_path, child))
        return total

    def _multi_read(self, request: MultiRequest, auth: tuple[Id, ...], session_id: int) -> bytes:
        for op in request.ops:
            if op.type not in (OpCode.GET_DATA, OpCode.GET_CHILDREN):
                raise MarshallingError(f"opcode {op.type} is not allowed in multiRead")
        out = bytearray()
        for op in request.ops:
            try:
                body = self.read(op.type, op.request, auth, session_id)
            except CoordError as exc:
                code = int(exc.code or ErrorCode.SYSTEM_ERROR)
                out += _pack_multi_header(-1, False, code)
                out += _pack_int(code)
                continue
            out += _pack_multi_header(op.type, False, 0)
            out += body
        out += _MULTI_DONE
        return bytes(out)

    # --- helpers for the server and for tests ------------------------------------------

    def get(self, path: str) -> Node | None:
        """The node at ``path``, if any."""
        return self.nodes.get(path)

    def digest(self) -> int:
        """An order-independent hash of the whole tree, to compare replicas."""
        total = 0
        for path, node in self.nodes.items():
            total ^= hash((path, node.data, node.acl, node.stat_bytes()))
        return total


#: Nodes ZooKeeper's ``DataTree.isSpecialPath`` protects from deletion.
_SPECIAL_PATHS = frozenset({"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"})

_MULTI_WRITE_OPS = frozenset(
    {
        OpCode.CREATE,
        OpCode.CREATE2,
        OpCode.CREATE_CONTAINER,
        OpCode.CREATE_TTL,
        OpCode.DELETE,
        OpCode.SET_DATA,
        OpCode.CHECK,
    }
)


_CREATE_OPS = frozenset({OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL})
#: The result type of each create in a multi (FinalRequestProcessor's CreateResult).
_MULTI_RESULT_TYPE: dict[int, int] = {
    OpCode.CREATE_CONTAINER: OpCode.CREATE2,
    OpCode.CREATE_TTL: OpCode.CREATE2,
}


def _multi_op(op: MultiOp) -> tuple[int, Record]:
    """The op a multi really runs: ZooKeeper rebuilds each create from its flags.

    The server decodes a multi into ``Op.create(path, data, acl, flags[, ttl])``, whose
    type follows the flags, not the opcode sent: CONTAINER flags make a createContainer,
    TTL flags (with a TTL request) a createTTL, anything else a plain create -- so create2
    answers with a path only, and a TTL request without TTL flags forgets its TTL.
    """
    request = op.request
    if op.type not in _CREATE_OPS:
        return op.type, request
    assert isinstance(request, (CreateRequest, CreateTTLRequest))
    flags = request.flags
    if flags == CreateMode.CONTAINER:
        return OpCode.CREATE_CONTAINER, _plain_create(request)
    if isinstance(request, CreateTTLRequest):
        if flags in (CreateMode.PERSISTENT_WITH_TTL, CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL):
            return OpCode.CREATE_TTL, request
        return OpCode.CREATE, _plain_create(request)
    return OpCode.CREATE, request


def _plain_create(request: CreateRequest | CreateTTLRequest) -> CreateRequest:
    if isinstance(request, CreateRequest):
        return request
    return CreateRequest(request.path, request.data, request.acl, request.flags)


def _restore_parent(parent: Node, cversion: int, pzxid: int) -> None:
    parent.cversion = cversion
    parent.pzxid = pzxid


def _restore_data(node: Node, saved: tuple[bytes | None, int, int, int]) -> None:
    node.data, node.version, node.mzxid, node.mtime = saved


def _mask_digest(entry: ACL) -> ACL:
    if entry.id.scheme != "digest":
        return entry
    user = entry.id.id.split(":", 1)[0]
    return ACL(entry.perms, Id("digest", f"{user}:x"))


# Silence "imported but unused" for names kept for callers' isinstance checks.
_ = (AuthPacket, MultiOp, STAT)

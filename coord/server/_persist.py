"""Encoding of the applied state for the store, and rebuilding it at start-up.

Theory of operation
-------------------
The store keeps one record per znode and one per session (``_storage.py``); this module
turns :class:`~coord.server._tree.Node` and :class:`~coord.server._apply.Session` into
those records and back. A node record holds the stored Stat fields, the data and the ACL;
children are not stored but rebuilt from the paths (the store yields parents before
children), as are the session -> ephemerals index and the container and TTL sets, so no
derived fact can disagree with the records it derives from.

Records are versioned by their first byte so the format can evolve.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from coord.protocol import ACL, Id, ProtocolError, Reader
from coord.protocol._jute import INT, write_int, write_string

from ._apply import Session, StateMachine
from ._storage import LogStore, StoreCorruptedError
from ._tree import (
    CONTAINER_OWNER,
    NO_CHILDREN,
    Node,
    ephemeral_session,
    parent_of,
    system_nodes,
    ttl_of,
)

__all__ = ["decode_node", "decode_session", "encode_node", "encode_session", "load_state"]

_NODE_V1 = 1
_NODE_FIXED = struct.Struct(">BqqqqqiiiqB")  # version, 5 longs, 3 ints, owner, has-data
_SESSION = struct.Struct(">Bi")
#: Distinct ACL encodings :func:`load_state` remembers (bounded for trees of unique ACLs).
_ACL_CACHE_LIMIT = 65536
_SESSION_V2 = struct.Struct(">BiB")


#: Encoded ACL lists by the identity of the tuple (nodes share a few ACL tuples), holding
#: the tuple so that its id is not reused while the entry lives.
_acl_encodings: dict[int, tuple[tuple[ACL, ...], bytes]] = {}
_pack_int = INT.pack
_unpack_int = INT.unpack_from


def _encode_acl(acl: tuple[ACL, ...]) -> bytes:
    known = _acl_encodings.get(id(acl))
    if known is not None and known[0] is acl:
        return known[1]
    out = bytearray()
    write_int(out, len(acl))
    for entry in acl:
        write_int(out, entry.perms)
        write_string(out, entry.id.scheme)
        write_string(out, entry.id.id)
    encoded = bytes(out)
    if len(_acl_encodings) >= 4096:
        _acl_encodings.clear()
    _acl_encodings[id(acl)] = (acl, encoded)
    return encoded


def encode_node(node: Node) -> bytes:
    """A znode's record (without its children)."""
    data = node.data
    fixed = _NODE_FIXED.pack(
        _NODE_V1,
        node.czxid,
        node.mzxid,
        node.pzxid,
        node.ctime,
        node.mtime,
        node.version,
        node.cversion,
        node.aversion,
        node.ephemeral_owner,
        0 if data is None else 1,
    )
    if data is None:
        return fixed + _encode_acl(node.acl)
    return b"".join((fixed, _pack_int(len(data)), data, _encode_acl(node.acl)))


def decode_node(record: bytes, acls: dict[bytes, tuple[ACL, ...]] | None = None) -> Node:
    """Inverse of :func:`encode_node`; ``acls`` (ACL lists by their encoding, filled in
    by this function) interns equal ACL lists and spares decoding them again.

    Raises:
        ProtocolError: the record is malformed.
    """
    if len(record) < _NODE_FIXED.size or record[0] != _NODE_V1:
        raise ProtocolError("not a version-1 node record")
    (
        _,
        czxid,
        mzxid,
        pzxid,
        ctime,
        mtime,
        version,
        cversion,
        aversion,
        owner,
        has_data,
    ) = _NODE_FIXED.unpack_from(record)
    r = Reader(record, _NODE_FIXED.size)
    data: bytes | None = None
    if has_data:
        # Reader.read_bytes, inlined (once per node at start-up).
        start = _NODE_FIXED.size + 4
        if len(record) >= start:
            (length,) = _unpack_int(record, _NODE_FIXED.size)
            if 0 <= length <= len(record) - start:
                data = bytes(record[start : start + length])
                r.pos = start + length
        if data is None:
            data = r.read_bytes()  # raises ProtocolError, saying what is wrong
    # The ACL ends the record, and a tree holds few distinct ACLs: with ``acls``, each
    # distinct encoding is decoded once (a third of a large restart was ACL decoding),
    # and equal ACLs share one tuple.
    tail = bytes(record[r.pos :]) if acls is not None else b""
    acl = acls.get(tail) if acls is not None else None
    if acl is None:
        acl = tuple(
            ACL(r.read_int(), Id(r.read_string(), r.read_string())) for _ in range(r.read_count(12))
        )
        r.expect_end("node record")
        if acls is not None and len(acls) < _ACL_CACHE_LIMIT:
            acls[tail] = acl
    node = Node.__new__(Node)
    node.data = data
    node.acl = acl
    node.czxid = czxid
    node.mzxid = mzxid
    node.pzxid = pzxid
    node.ctime = ctime
    node.mtime = mtime
    node.version = version
    node.cversion = cversion
    node.aversion = aversion
    node.ephemeral_owner = owner
    node.children = NO_CHILDREN  # type: ignore[assignment]
    return node


def encode_session(session: Session) -> bytes:
    """A session's record: its timeout, owner (ensemble member id) and password."""
    return _SESSION_V2.pack(2, session.timeout, session.owner) + session.passwd


def decode_session(session_id: int, record: bytes) -> Session:
    """Inverse of :func:`encode_session` (version 1 records have no owner)."""
    if len(record) >= _SESSION_V2.size and record[0] == 2:
        _, timeout, owner = _SESSION_V2.unpack_from(record)
        return Session(session_id, timeout, bytes(record[_SESSION_V2.size :]), owner=owner)
    if len(record) < _SESSION.size or record[0] != 1:
        raise ProtocolError("not a version-1 or version-2 session record")
    _, timeout = _SESSION.unpack_from(record)
    return Session(session_id, timeout, bytes(record[_SESSION.size :]))


def load_state(
    store: LogStore, state: StateMachine, progress: Callable[[int], None] | None = None
) -> int:
    """Fill a fresh ``state`` from the store's applied records; returns the node count.

    Raises:
        StoreCorruptedError: a record is damaged or the tree is inconsistent (a node
            whose parent is missing).
    """
    sessions: dict[int, Session] = {}
    for session_id, record in store.iter_sessions():
        try:
            sessions[session_id] = decode_session(session_id, record)
        except ProtocolError as exc:
            raise StoreCorruptedError(
                f"session record 0x{session_id:x} is damaged: {exc}"
            ) from None
    nodes: dict[str, Node] = {}
    acls: dict[bytes, tuple[ACL, ...]] = {}
    count = 0
    for path, record in store.iter_nodes():
        try:
            nodes[path] = decode_node(record, acls)
        except ProtocolError as exc:
            raise StoreCorruptedError(f"node record {path} is damaged: {exc}") from None
        count += 1
        if progress is not None and count % 100_000 == 0:
            progress(count)
    state.sessions = sessions
    if not nodes:
        return 0
    # The system nodes are stored only once something changed them; the rest come
    # from the fresh tree.
    for path, node in system_nodes().items():
        if path not in nodes:
            node.children = NO_CHILDREN  # type: ignore[assignment]
            nodes[path] = node
    for path, node in nodes.items():
        if path != "/":
            parent_path, name = parent_of(path)
            parent = nodes.get(parent_path)
            if parent is None:
                raise StoreCorruptedError(f"node record {path} has no parent record")
            parent.add_child(name)
        owner = node.ephemeral_owner
        if owner:
            session_id = ephemeral_session(owner)
            if session_id:
                session = sessions.get(session_id)
                if session is not None:
                    session.ephemerals.add(path)
            elif owner == CONTAINER_OWNER:
                state.containers.add(path)
            elif ttl_of(owner) is not None:
                state.ttls.add(path)
    state.nodes = nodes
    return count

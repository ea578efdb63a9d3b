"""The applied state survives a restart exactly: records in, the same tree out."""

from __future__ import annotations

from pathlib import Path

import pytest

from coord.plugins.builtin.rocksdb_store import RocksDBStore
from coord.protocol import (
    ACL,
    CloseSessionRequest,
    CreateRequest,
    Id,
    OpCode,
    Perm,
    ProtocolError,
    SetDataRequest,
)
from coord.server import AclPolicy, DigestScheme, Entry, IpScheme, StateMachine, WorldScheme
from coord.server._apply import CreateSession
from coord.server._persist import decode_node, encode_node, encode_session, load_state
from coord.server._storage import StoreBatch
from coord.server._tree import Node

OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)
SESSION = 0x1234


def _machine() -> StateMachine:
    schemes = {s.name: s for s in (WorldScheme(), DigestScheme(), IpScheme())}
    return StateMachine(AclPolicy(schemes))


def _snapshot(sm: StateMachine) -> dict[str, object]:
    return {
        path: (node.data, node.acl, node.stat_bytes(), sorted(node.children))
        for path, node in sm.nodes.items()
    }


@pytest.mark.anyio
async def test_load_state_rebuilds_the_tree_including_system_nodes(tmp_path: Path) -> None:
    """Only touched records are stored; loading them gives back the identical tree,
    /zookeeper and its children included, with sessions and their ephemerals."""
    sm = _machine()
    zxid = 0

    def apply(op: int, request: object, session: int = SESSION) -> None:
        nonlocal zxid
        zxid += 1
        result = sm.apply(Entry(zxid, 1000 + zxid, session, op, request))  # type: ignore[arg-type]
        assert result.err == 0, (op, result.err)

    apply(OpCode.CREATE_SESSION, CreateSession(4000, b"p" * 16))
    apply(OpCode.CREATE_SESSION, CreateSession(4000, b"q" * 16), session=SESSION + 1)
    apply(OpCode.CREATE, CreateRequest("/a", b"x", OPEN, 0))
    apply(OpCode.CREATE, CreateRequest("/a/e", None, OPEN, 1))
    apply(OpCode.CREATE, CreateRequest("/a-b", b"", OPEN, 0))
    apply(OpCode.CREATE, CreateRequest("/c", b"", OPEN, 0), session=SESSION + 1)
    apply(OpCode.CREATE, CreateRequest("/c/e", b"", OPEN, 1), session=SESSION + 1)
    apply(OpCode.SET_DATA, SetDataRequest("/a", b"y", -1))
    apply(OpCode.CLOSE_SESSION, CloseSessionRequest(), session=SESSION + 1)
    batch = StoreBatch(
        nodes={p: (encode_node(sm.nodes[p]) if p in sm.nodes else None) for p in sm.touched},
        sessions={
            s: (encode_session(sm.sessions[s]) if s in sm.sessions else None)
            for s in sm.touched_sessions
        },
        applied_index=0,
    )
    assert "/zookeeper" not in batch.nodes
    store = RocksDBStore.open(tmp_path / "d")
    await store.write(batch)
    await store.close()
    store = RocksDBStore.open(tmp_path / "d")
    loaded = _machine()
    try:
        load_state(store, loaded)
    finally:
        await store.close()
    assert _snapshot(loaded) == _snapshot(sm)
    assert set(loaded.sessions) == {SESSION}
    assert loaded.sessions[SESSION].ephemerals == {"/a/e"}
    assert loaded.sessions[SESSION].passwd == b"p" * 16


def test_decode_node_acl_cache_keeps_each_nodes_own_acl() -> None:
    """Decoding with an ACL cache (as load_state does) gives every node its own ACL and
    data, shares one tuple between equal ACLs, and still rejects a damaged ACL."""
    digest = (ACL(Perm.READ, Id("world", "anyone")), ACL(Perm.ALL, Id("digest", "u:h")))
    nodes = [
        Node(b"a", OPEN, 1, 10),
        Node(None, digest, 2, 20, 7),
        Node(b"", OPEN, 3, 30),
        Node(b"b" * 300, digest, 4, 40),
    ]
    acls: dict[bytes, tuple[ACL, ...]] = {}
    decoded = [decode_node(encode_node(node), acls) for node in nodes]
    for node, copy in zip(nodes, decoded, strict=True):
        assert (copy.data, copy.acl, copy.stat_bytes()) == (node.data, node.acl, node.stat_bytes())
    assert decoded[0].acl is decoded[2].acl
    assert decoded[1].acl is decoded[3].acl
    damaged = encode_node(Node(b"c", OPEN, 5, 50))[:-1]
    with pytest.raises(ProtocolError):
        decode_node(damaged, acls)
    truncated_data = encode_node(Node(b"d" * 10, OPEN, 6, 60))[:60]
    with pytest.raises(ProtocolError):
        decode_node(truncated_data, acls)

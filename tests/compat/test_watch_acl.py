"""Watch events go only to watchers allowed to READ the node (ZooKeeper 3.9.2).

Apache ZooKeeper 3.8.0 (the differential reference) still has CVE-2024-23944: a
persistent-recursive watch reveals the names of children the watcher may not read. coord
implements the fix, so these tests run against coord alone.
"""

from __future__ import annotations

from compat_support import RawClient

from coord.protocol import (
    ACL,
    AddWatchMode,
    AddWatchRequest,
    AuthPacket,
    CreateRequest,
    EventType,
    ExistsRequest,
    Id,
    OpCode,
    Perm,
    SetDataRequest,
)
from coord.server import digest_id

OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)


def test_Watch_recursive_watch_hides_nodes_the_watcher_cannot_read(coord_server, root):
    """A recursive watcher sees events for readable nodes only; names of others stay secret."""
    secret_acl = (ACL(Perm.ALL, Id("digest", digest_id("alice", "pw"))),)
    with (
        RawClient(coord_server.host, coord_server.port) as watcher,
        RawClient(coord_server.host, coord_server.port) as alice,
    ):
        assert alice.call(OpCode.AUTH, AuthPacket(0, "digest", b"alice:pw"), xid=-4).header.err == 0
        assert alice.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0)).header.err == 0
        reply = watcher.call(
            OpCode.ADD_WATCH, AddWatchRequest(root, AddWatchMode.PERSISTENT_RECURSIVE)
        )
        assert reply.header.err == 0
        secret = f"{root}/secret-user-alice"
        public = f"{root}/public"
        assert alice.call(OpCode.CREATE, CreateRequest(secret, b"", secret_acl, 0)).header.err == 0
        assert alice.call(OpCode.SET_DATA, SetDataRequest(secret, b"x", -1)).header.err == 0
        assert alice.call(OpCode.CREATE, CreateRequest(public, b"", OPEN, 0)).header.err == 0
        # A round trip on the watcher's connection: its notifications are in by now.
        assert watcher.call(OpCode.EXISTS, ExistsRequest(public, False)).header.err == 0
        seen = [(event.type, event.path) for event in watcher.notifications]
        assert seen == [(EventType.NODE_CREATED, public)]

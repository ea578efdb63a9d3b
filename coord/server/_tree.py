"""The data tree: znodes, their Stat, and ZooKeeper's path rules.

Theory of operation
-------------------
The tree is a flat map from absolute path to :class:`Node` (as ZooKeeper's
``NodeHashMap``), each node holding the names of its children, so lookups are one dict
access and listing children needs no scan. Nodes are mutated only by the state machine
(:mod:`coord.server._apply`), which applies committed log entries in order; everything here
is pure and single-threaded.

Stat fields are stored on the node and packed on demand: ``dataLength`` and
``numChildren`` are derived from the data and the children set, so they can never
disagree with them.

``cversion`` is stored as ZooKeeper stores it (``StatPersisted``): the number of child
*creations*, which is also the next sequential suffix. Deletions do not touch it. The
Stat a client sees reports ``2 * cversion - numChildren`` (ZooKeeper's
``DataNode.copyStat``), i.e. creations plus deletions for a node whose children were all
created through it -- so a delete bumps the reported cversion, yet sequential numbers
count creates only. The system nodes, whose children were never "created", report
negative values (``/zookeeper``: -2), as in ZooKeeper.

Ephemeral owners use ZooKeeper's encoding (``EphemeralType.java``): a session id for an
ephemeral node, ``Long.MIN_VALUE`` for a container, and ``0xff`` in the high byte with the
TTL in the low 40 bits for a TTL node. Only a session id is shown to clients: the Stat of
a container or TTL node reports ephemeralOwner 0 (``DataNode.getClientEphemeralOwner``).
"""

from __future__ import annotations

from coord.protocol import ACL, BadArgumentsError, Stat
from coord.protocol._jute import STAT

from ._acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE

__all__ = [
    "CONTAINER_OWNER",
    "MAX_TTL",
    "NO_CHILDREN",
    "Node",
    "ephemeral_session",
    "parent_of",
    "ttl_of",
    "ttl_owner",
    "validate_path",
]

CONTAINER_OWNER = -(2**63)
_TTL_MARK = 0xFF << 56
MAX_TTL = (1 << 40) - 1

_pack_stat = STAT.pack
#: The children of every leaf (see Node.children).
NO_CHILDREN: frozenset[str] = frozenset()


def ttl_owner(ttl: int) -> int:
    """The ephemeralOwner value marking a TTL node (a signed 64-bit value)."""
    return (_TTL_MARK | ttl) - (1 << 64)


def ttl_of(owner: int) -> int | None:
    """The TTL encoded in an ephemeralOwner, or ``None`` if it is not a TTL node."""
    unsigned = owner & 0xFFFF_FFFF_FFFF_FFFF
    if owner != CONTAINER_OWNER and unsigned >> 56 == 0xFF:
        return unsigned & MAX_TTL
    return None


def ephemeral_session(owner: int) -> int:
    """The owning session of a normal ephemeral node, or 0 for any other kind of node."""
    if owner == 0 or owner == CONTAINER_OWNER or (owner & 0xFFFF_FFFF_FFFF_FFFF) >> 56 == 0xFF:
        return 0
    return owner


class Node:
    """One znode: data, ACL, the stored Stat fields, and the names of its children."""

    __slots__ = (
        "acl",
        "aversion",
        "children",
        "ctime",
        "cversion",
        "czxid",
        "data",
        "ephemeral_owner",
        "mtime",
        "mzxid",
        "pzxid",
        "version",
    )

    def __init__(
        self,
        data: bytes | None,
        acl: tuple[ACL, ...],
        zxid: int,
        time: int,
        ephemeral_owner: int = 0,
    ) -> None:
        self.data = data
        self.acl = acl
        self.czxid = zxid
        self.mzxid = zxid
        self.pzxid = zxid
        self.ctime = time
        self.mtime = time
        self.version = 0
        self.cversion = 0
        self.aversion = 0
        self.ephemeral_owner = ephemeral_owner
        #: Names of the children. A leaf shares one empty frozenset (no set per leaf:
        #: most nodes are leaves), so change it only through add_child/discard_child.
        self.children: set[str] = NO_CHILDREN  # type: ignore[assignment]

    def add_child(self, name: str) -> None:
        """Link a child's name (the first one gives the node a set of its own)."""
        children = self.children
        if children:
            children.add(name)
        else:
            self.children = {name}

    def discard_child(self, name: str) -> None:
        """Unlink a child's name, if present."""
        children = self.children
        if children:  # an empty one may be the shared frozenset
            children.discard(name)

    def stat_bytes(self) -> bytes:
        """The jute encoding of this node's Stat."""
        data = self.data
        children = len(self.children)
        owner = self.ephemeral_owner
        if owner and (owner == CONTAINER_OWNER or (owner & 0xFFFF_FFFF_FFFF_FFFF) >> 56 == 0xFF):
            owner = 0  # as ephemeral_session(): only a session id is shown
        # _reported_cversion, inlined: this runs for every write's reply.
        cversion = (self.cversion * 2 - children) & 0xFFFF_FFFF
        if cversion >> 31:
            cversion -= 1 << 32
        return _pack_stat(
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            cversion,
            self.aversion,
            owner,
            0 if data is None else len(data),
            children,
            self.pzxid,
        )

    def stat(self) -> Stat:
        """This node's Stat as a record (for tools and tests; replies use stat_bytes)."""
        return Stat.from_bytes(self.stat_bytes())


def _reported_cversion(creates: int, children: int) -> int:
    """ZooKeeper's ``cversion * 2 - numChildren``, in Java int arithmetic."""
    value = (creates * 2 - children) & 0xFFFF_FFFF
    return value - (1 << 32) if value >> 31 else value


def _bad(path: str, reason: str) -> BadArgumentsError:
    return BadArgumentsError(f"invalid path {path!r}: {reason}", path=path)


def validate_path(path: str) -> None:
    """Check a path as ZooKeeper's ``PathUtils.validatePath`` does.

    Raises:
        BadArgumentsError: the path is empty, relative, has an empty segment (``/a//b``),
            a trailing ``/``, a ``.`` or ``..`` segment, or a control or unassigned character.
    """
    if not path:
        raise _bad(path, "empty")
    if path[0] != "/":
        raise _bad(path, "must start with /")
    if len(path) == 1:
        return
    if path[-1] == "/":
        raise _bad(path, "must not end with /")
    if path.isascii() and "//" not in path and "/." not in path and path.isprintable():
        # Fast path: printable ASCII with no empty or dot segment needs no further scan.
        return
    for segment in path[1:].split("/"):
        if not segment:
            raise _bad(path, "empty node name")
        if segment in (".", ".."):
            raise _bad(path, "relative paths not allowed")
    for ch in path:
        c = ord(ch)
        if c == 0:
            raise _bad(path, "null character")
        if c <= 0x1F or 0x7F <= c <= 0x9F or 0xD800 <= c <= 0xF8FF or 0xFFF0 <= c <= 0xFFFF:
            raise _bad(path, f"invalid character U+{c:04X}")


def parent_of(path: str) -> tuple[str, str]:
    """Split a valid non-root path into (parent path, child name)."""
    cut = path.rfind("/")
    return (path[:cut] or "/"), path[cut + 1 :]


def system_nodes() -> dict[str, Node]:
    """The nodes every fresh tree has: ``/``, ``/zookeeper``, its ``config`` and ``quota``."""
    root = Node(b"", OPEN_ACL_UNSAFE, 0, 0)
    zookeeper = Node(b"", OPEN_ACL_UNSAFE, 0, 0)
    quota = Node(b"", OPEN_ACL_UNSAFE, 0, 0)
    config = Node(b"", READ_ACL_UNSAFE, 0, 0)
    # ZooKeeper sets this ACL with DataTree.setACL(path, acl, -1), storing aversion -1.
    config.aversion = -1
    root.add_child("zookeeper")
    zookeeper.add_child("quota")
    zookeeper.add_child("config")
    return {
        "/": root,
        "/zookeeper": zookeeper,
        "/zookeeper/quota": quota,
        "/zookeeper/config": config,
    }

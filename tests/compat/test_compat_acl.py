"""Differential tests of ACLs and authentication, on coord and Apache ZooKeeper.

One documented difference: ZooKeeper 3.8 does not check READ on ``exists``; 3.9 does, and
coord implements the 3.9 rule. The test of it asserts each server's own behaviour.

ZooKeeper keeps a connection's identities in a hash set, so the order of the entries an
``auth`` ACL expands to follows Java's hashing; the tests compare those lists sorted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from compat_support import RawClient, error_name, wait_for_state
from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NoNodeError,
)
from kazoo.protocol.states import KazooState
from kazoo.security import (
    ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_digest_acl,
    make_digest_acl_credential,
)

from coord.protocol import CreateRequest, ErrorCode, OpCode

ALL = Permissions.ALL
WORLD = Id("world", "anyone")


def alice_acl(**perms: bool) -> ACL:
    return make_digest_acl("alice", "secret", **perms)


def acl_key(acl: ACL) -> tuple[int, str, str]:
    return (acl.perms, acl.id.scheme, acl.id.id)


def test_acl_default_world_anyone(zk: KazooClient, root: str) -> None:
    """A node created with kazoo's default ACL is world:anyone with every permission."""
    zk.create(root)
    acls, stat = zk.get_acls(root)
    assert [acl_key(a) for a in acls] == [(ALL, "world", "anyone")]
    assert stat == zk.exists(root)


def test_acl_digest_needs_auth(connect: Callable[..., KazooClient], root: str) -> None:
    """A digest ACL admits only a client authenticated as that user (addauth digest)."""
    owner = connect(auth_data=[("digest", "alice:secret")])
    owner.create(root, b"x", acl=[alice_acl(all=True)])
    assert owner.get(root)[0] == b"x"
    anonymous = connect()
    with pytest.raises(NoAuthError):
        anonymous.get(root)
    anonymous.add_auth("digest", "alice:wrong")
    with pytest.raises(NoAuthError):
        anonymous.get(root)
    anonymous.add_auth("digest", "alice:secret")
    assert anonymous.get(root)[0] == b"x"


def test_acl_get_acls_masks_digest_without_admin(
    connect: Callable[..., KazooClient], root: str
) -> None:
    """getACL needs READ or ADMIN; without ADMIN, digest ids are shown as ``user:x``."""
    owner = connect(auth_data=[("digest", "alice:secret")])
    owner.create(root, acl=[alice_acl(all=True), ACL(Permissions.READ, WORLD)])
    full = owner.get_acls(root)[0]
    assert [acl_key(a) for a in full] == [
        (ALL, "digest", make_digest_acl_credential("alice", "secret")),
        (Permissions.READ, "world", "anyone"),
    ]
    anonymous = connect()
    masked = anonymous.get_acls(root)[0]
    assert [acl_key(a) for a in masked] == [
        (ALL, "digest", "alice:x"),
        (Permissions.READ, "world", "anyone"),
    ]
    owner.create(root + "/admin-only", acl=[ACL(Permissions.ADMIN, WORLD), alice_acl(read=True)])
    assert len(anonymous.get_acls(root + "/admin-only")[0]) == 2
    owner.create(root + "/none", acl=[alice_acl(all=True)])
    with pytest.raises(NoAuthError):
        anonymous.get_acls(root + "/none")


# Each operation and the permission it needs, as (operation, node ACL perms lacking it).
def _ops(zk: KazooClient, path: str) -> dict[str, Callable[[], object]]:
    return {
        "get": lambda: zk.get(path),
        "get_children": lambda: zk.get_children(path),
        "set": lambda: zk.set(path, b"new"),
        "create_child": lambda: zk.create(path + "/child"),
        "delete_child": lambda: zk.delete(path + "/existing"),
        "delete_missing_child": lambda: zk.delete(path + "/missing"),
        "set_acls": lambda: zk.set_acls(path, OPEN_ACL_UNSAFE),
        "get_acls": lambda: zk.get_acls(path),
    }


NEEDS = {
    "get": Permissions.READ,
    "get_children": Permissions.READ,
    "set": Permissions.WRITE,
    "create_child": Permissions.CREATE,
    "delete_child": Permissions.DELETE,
    "delete_missing_child": Permissions.DELETE,
    "set_acls": Permissions.ADMIN,
    "get_acls": Permissions.READ | Permissions.ADMIN,
}


@pytest.mark.parametrize(
    "missing",
    [
        Permissions.READ,
        Permissions.WRITE,
        Permissions.CREATE,
        Permissions.DELETE,
        Permissions.ADMIN,
    ],
    ids=["READ", "WRITE", "CREATE", "DELETE", "ADMIN"],
)
def test_acl_no_auth_for_each_permission(zk: KazooClient, root: str, missing: int) -> None:
    """Every operation needing a permission the ACL lacks fails with NoAuth, and only those.

    (A delete of a missing child is NoAuth, not NoNode: the parent's DELETE is checked
    first.)
    """
    zk.create(root)
    path = root + "/node"
    zk.create(path)
    zk.create(path + "/existing")
    zk.set_acls(path, [ACL(ALL & ~missing, WORLD)])
    outcomes = {name: error_name(op) for name, op in _ops(zk, path).items()}
    allowed = {"ok": "ok", "delete_missing_child": "NoNodeError"}
    expected = {
        name: allowed.get(name, "ok") if needed & ~missing else "NoAuthError"
        for name, needed in NEEDS.items()
    }
    assert outcomes == expected


def test_acl_exists_read_check_differs(target: Any, zk: KazooClient, root: str) -> None:
    """exists on a node without READ: ZooKeeper 3.8 answers (it checks no ACL), coord
    implements ZooKeeper 3.9's READ check and answers NoAuth."""
    zk.create(root, acl=[ACL(ALL & ~Permissions.READ, WORLD)])
    if target.kind == "zookeeper":
        assert zk.exists(root) is not None
    else:
        with pytest.raises(NoAuthError):
            zk.exists(root)
    assert zk.exists(root + "/missing") is None


def test_acl_set_acls_versions(zk: KazooClient, root: str) -> None:
    """setACL checks the expected aversion and increments it; data version is untouched."""
    zk.create(root)
    stat = zk.set_acls(root, [*READ_ACL_UNSAFE, ACL(Permissions.ADMIN, WORLD)], version=0)
    assert (stat.aversion, stat.version) == (1, 0)
    with pytest.raises(BadVersionError):
        zk.set_acls(root, OPEN_ACL_UNSAFE, version=0)
    assert zk.set_acls(root, OPEN_ACL_UNSAFE, version=1).aversion == 2
    assert zk.set_acls(root, OPEN_ACL_UNSAFE).aversion == 3
    with pytest.raises(NoNodeError):
        zk.set_acls(root + "/missing", OPEN_ACL_UNSAFE)


def test_acl_set_acls_invalid_checked_before_admin(zk: KazooClient, root: str) -> None:
    """setACL validates the new ACL before checking ADMIN: InvalidACL beats NoAuth."""
    zk.create(root, acl=READ_ACL_UNSAFE)
    with pytest.raises(InvalidACLError):
        zk.set_acls(root, [ACL(ALL, Id("nosuch", "x"))])
    with pytest.raises(NoAuthError):
        zk.set_acls(root, OPEN_ACL_UNSAFE)


def test_acl_auth_scheme_needs_authentication(zk: KazooClient, root: str) -> None:
    """The ``auth`` pseudo-scheme is InvalidACL for a client with no authenticated id
    (its ip identity does not count)."""
    with pytest.raises(InvalidACLError):
        zk.create(root, acl=[ACL(ALL, Id("auth", ""))])
    assert zk.exists(root) is None


def test_acl_auth_scheme_expands_to_every_identity(
    connect: Callable[..., KazooClient], root: str
) -> None:
    """``auth`` becomes one entry per authenticated id of the caller; the id text is
    ignored; entries are not deduplicated after the expansion."""
    client = connect(auth_data=[("digest", "u1:p1"), ("digest", "u2:p2")])
    u1 = make_digest_acl_credential("u1", "p1")
    u2 = make_digest_acl_credential("u2", "p2")
    client.create(root, acl=[ACL(ALL, Id("auth", "ignored"))])
    assert sorted(acl_key(a) for a in client.get_acls(root)[0]) == [
        (ALL, "digest", u1),
        (ALL, "digest", u2),
    ]
    client.create(
        root + "/dup", acl=[ACL(ALL, Id("auth", "")), make_digest_acl("u1", "p1", all=True)]
    )
    assert sorted(acl_key(a) for a in client.get_acls(root + "/dup")[0]) == [
        (ALL, "digest", u1),
        (ALL, "digest", u1),
        (ALL, "digest", u2),
    ]
    other = connect(auth_data=[("digest", "u2:p2")])
    assert other.get(root)[0] == b""


def test_acl_duplicates_removed(zk: KazooClient, root: str) -> None:
    """Identical entries in a request are stored once, in first-seen order."""
    read = ACL(Permissions.READ, WORLD)
    write = ACL(Permissions.WRITE, WORLD)
    zk.create(root, acl=[read, read, write, read])
    assert [acl_key(a) for a in zk.get_acls(root)[0]] == [acl_key(read), acl_key(write)]


def test_acl_empty_is_invalid(target: Any, root: str) -> None:
    """An empty ACL (which kazoo would replace by its default) is InvalidACL."""
    with RawClient(target.host, target.port) as raw:
        reply = raw.call(OpCode.CREATE, CreateRequest(root, b"", (), 0))
        assert reply.header.err == ErrorCode.INVALID_ACL


def test_acl_unusual_perms_kept(zk: KazooClient, root: str) -> None:
    """Perms are stored as given, even 0 or bits beyond ALL."""
    zk.create(root)
    zk.create(root + "/big", acl=[ACL(Permissions.READ | 64, WORLD)])
    assert [a.perms for a in zk.get_acls(root + "/big")[0]] == [65]
    zk.create(root + "/zero", acl=[ACL(0, WORLD)])
    with pytest.raises(NoAuthError):
        zk.get(root + "/zero")


# (scheme, id, accepted, readable by a plain client from 127.0.0.1)
ACL_IDS = [
    ("digest", "a:b:", True, False),
    ("digest", ":b", True, False),
    ("digest", "a:", False, False),
    ("digest", "a:b:c", False, False),
    ("digest", "a", False, False),
    ("ip", "127.0.0.1", True, True),
    ("ip", "127.0.0.0/8", True, True),
    ("ip", "127.1.2.3/8", True, True),
    ("ip", "10.0.0.0/8", True, False),
    ("ip", "0.0.0.0/0", True, True),
    ("ip", "127.000.0.1", True, True),
    ("ip", "+127.0.0.1", True, True),
    ("ip", "127.0.0.1/+8", True, True),
    ("ip", "127.1", False, False),
    ("ip", "127.0.0.1/33", False, False),
    ("ip", "127.0.0.1/-1", False, False),
    ("ip", "127.0.0.1/ 8", False, False),
    ("ip", "256.0.0.1", False, False),
    ("ip", "localhost", False, False),
    ("world", "anyone", True, True),
    ("world", "other", False, False),
    ("auth", "", False, False),
    ("nosuch", "x", False, False),
    ("super", "x", False, False),
    ("sasl", "x", False, False),
]


@pytest.mark.parametrize(
    ("scheme", "ident", "accepted", "readable"), ACL_IDS, ids=[f"{s}:{i}" for s, i, *_ in ACL_IDS]
)
def test_acl_id_validation_and_matching(
    zk: KazooClient, root: str, scheme: str, ident: str, accepted: bool, readable: bool
) -> None:
    """Which ACL ids each scheme accepts, and whether a client on 127.0.0.1 matches them."""
    zk.create(root)
    path = root + "/n"
    if not accepted:
        with pytest.raises(InvalidACLError):
            zk.create(path, acl=[ACL(ALL, Id(scheme, ident))])
        return
    zk.create(path, acl=[ACL(ALL, Id(scheme, ident))])
    assert error_name(lambda: zk.get(path)) == ("ok" if readable else "NoAuthError")


def test_acl_add_auth_unknown_scheme_fails_connection(
    connect: Callable[..., KazooClient],
) -> None:
    """addauth with an unknown scheme (or ``world``) is AuthFailed and loses the client."""
    for scheme in ("nosuch", "world"):
        client = connect()
        with pytest.raises(AuthFailedError):
            client.add_auth(scheme, "x")
        assert wait_for_state(client, KazooState.LOST)


def test_acl_add_auth_lenient_schemes(connect: Callable[..., KazooClient], root: str) -> None:
    """``addauth digest`` accepts text without a colon (the whole text is the user), and
    ``addauth ip`` succeeds (the connection's address is already its ip identity)."""
    client = connect()
    client.add_auth("digest", "nocolon")
    client.add_auth("ip", "10.1.2.3")
    client.create(root, acl=[ACL(ALL, Id("auth", ""))])
    ids = sorted(acl_key(a) for a in client.get_acls(root)[0])
    assert len(ids) == 1
    assert ids[0][1] == "digest"
    assert ids[0][2].startswith("nocolon:")

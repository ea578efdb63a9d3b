"""The ACL matrix: every operation x every permission x every scheme, on coord and on
Apache ZooKeeper (differential).

Both servers are configured alike for this module: a superuser digest (``super_digest`` /
``-Dzookeeper.DigestAuthenticationProvider.superDigest``), SASL DIGEST-MD5 users ``bob``
and ``carol`` (``sasl_users`` / a JAAS ``Server`` section with ``user_bob`` and
``user_carol``, plus the ``sasl`` auth provider), and carol as SASL superuser
(``sasl_super_user`` / ``-Dzookeeper.superUser``). For each scheme a node's ACL grants
exactly one permission (or none) to the scheme's identity of a "subject" session, and
every operation is tried by that session; each outcome is compared with the rule (the
permission each operation needs, as ZooKeeper's ``PrepRequestProcessor`` and
``FinalRequestProcessor`` check it):

- create (and create in a multi) needs CREATE on the parent, delete DELETE on the parent;
- getData, getChildren and check (in a multi) need READ; setData WRITE; setACL ADMIN;
- getACL needs READ or ADMIN;
- exists needs READ on coord (ZooKeeper 3.9's rule); ZooKeeper 3.8 checks nothing;
- sync checks nothing on ZooKeeper 3.8; coord checks nothing either;
- reconfig is ReconfigDisabled whatever the ACL (standalone, reconfig disabled);
- a superuser passes every check.

Requests kazoo does not send (getChildren2, getAllChildrenNumber, getEphemerals,
addWatch, whoAmI, multiRead, create2, createContainer, createTTL) are sent over the raw
protocol by a digest-authenticated session, for every permission.

One server and one subject session per scheme and target; nodes are fresh per test.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from compat_support import RawClient, error_name, kazoo_client
from kazoo.client import KazooClient
from kazoo.security import ACL, Id, Permissions

from coord.protocol import ACL as CoordACL
from coord.protocol import (
    AddWatchRequest,
    AuthPacket,
    CreateRequest,
    CreateTTLRequest,
    ErrorCode,
    GetAllChildrenNumberRequest,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    MultiOp,
    MultiRequest,
    OpCode,
    Reader,
    WhoAmIRequest,
)
from coord.protocol import Id as CoordId
from coord.server import digest_id
from coord.testing import CoordServerThread, ZooKeeperProcess, require_zookeeper, run_zkcli

SUPER_PASSWORD = "super-secret"
SUPER_DIGEST = digest_id("super", SUPER_PASSWORD)
SASL_USER, SASL_PASSWORD = "bob", "bobsecret"
SASL_SUPER, SASL_SUPER_PASSWORD = "carol", "carolsecret"
ALICE = digest_id("alice", "secret")
MALLORY = digest_id("mallory", "pw")

READ, WRITE, CREATE, DELETE, ADMIN = (
    Permissions.READ,
    Permissions.WRITE,
    Permissions.CREATE,
    Permissions.DELETE,
    Permissions.ADMIN,
)
PERMISSIONS = {"READ": READ, "WRITE": WRITE, "CREATE": CREATE, "DELETE": DELETE, "ADMIN": ADMIN}
#: Permission cases: one permission each, and none at all.
CASES = {**PERMISSIONS, "none": 0}

#: What each operation needs; 0 = no check; None = not decided by the ACL.
NEEDS: dict[str, int | None] = {
    "getData": READ,
    "exists": READ,
    "getChildren": READ,
    "getACL": READ | ADMIN,
    "setData": WRITE,
    "setACL": ADMIN,
    "create": CREATE,
    "delete": DELETE,
    "multi.create": CREATE,
    "multi.setData": WRITE,
    "multi.check": READ,
    "multi.delete": DELETE,
    "sync": 0,
    "reconfig": None,
}

JAAS = f"""Server {{
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_{SASL_USER}="{SASL_PASSWORD}"
    user_{SASL_SUPER}="{SASL_SUPER_PASSWORD}";
}};
"""


@dataclass
class Target:
    kind: str
    address: str


@pytest.fixture(scope="module")
def coord_secure() -> Iterator[CoordServerThread]:
    with CoordServerThread(
        tick_time=500,
        super_digest=SUPER_DIGEST,
        sasl_users=(f"{SASL_USER}={SASL_PASSWORD}", f"{SASL_SUPER}={SASL_SUPER_PASSWORD}"),
        sasl_super_user=SASL_SUPER,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def zookeeper_secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperProcess]:
    require_zookeeper()
    jaas = tmp_path_factory.mktemp("jaas") / "jaas.conf"
    jaas.write_text(JAAS)
    with ZooKeeperProcess(
        tick_time=500,
        extra_config={
            "authProvider.1": "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
        },
        system_properties={
            "zookeeper.DigestAuthenticationProvider.superDigest": SUPER_DIGEST,
            "java.security.auth.login.config": str(jaas),
            "zookeeper.superUser": SASL_SUPER,
        },
    ) as zk:
        yield zk


@pytest.fixture(scope="module", params=["coord", "zookeeper"])
def secure(request: pytest.FixtureRequest) -> Target:
    if request.param == "coord":
        server: CoordServerThread = request.getfixturevalue("coord_secure")
        return Target("coord", server.address)
    zk: ZooKeeperProcess = request.getfixturevalue("zookeeper_secure")
    return Target("zookeeper", zk.address)


@pytest.fixture(scope="module")
def sessions(secure: Target) -> Iterator[Callable[..., KazooClient]]:
    """Started kazoo sessions of ``secure``, cached by their credentials for the module."""
    cache: dict[str, KazooClient] = {}
    with ExitStack() as stack:

        def get(key: str, **kwargs: Any) -> KazooClient:
            if key not in cache:
                cache[key] = stack.enter_context(kazoo_client(secure.address, **kwargs))
            return cache[key]

        yield get


def super_session(sessions: Callable[..., KazooClient]) -> KazooClient:
    return sessions("super", auth_data=[("digest", f"super:{SUPER_PASSWORD}")])


def alice_session(sessions: Callable[..., KazooClient]) -> KazooClient:
    return sessions("alice", auth_data=[("digest", "alice:secret")])


def sasl_session(sessions: Callable[..., KazooClient]) -> KazooClient:
    options = {"mechanism": "DIGEST-MD5", "username": SASL_USER, "password": SASL_PASSWORD}
    return sessions("sasl", sasl_options=options)


def sasl_super_session(sessions: Callable[..., KazooClient]) -> KazooClient:
    options = {"mechanism": "DIGEST-MD5", "username": SASL_SUPER, "password": SASL_SUPER_PASSWORD}
    return sessions("sasl-super", sasl_options=options)


@dataclass
class Scheme:
    """How a scheme is exercised: the subject's session, the id it is granted, and the id
    of somebody else (for the ``none`` case)."""

    subject: Callable[[Callable[..., KazooClient]], KazooClient]
    granted: Id | None  # None: the ``auth`` pseudo-scheme, written by the subject itself
    other: Id
    superuser: bool = False


SCHEMES = {
    "world": Scheme(lambda s: s("anonymous"), Id("world", "anyone"), Id("digest", MALLORY)),
    "digest": Scheme(alice_session, Id("digest", ALICE), Id("digest", MALLORY)),
    "auth": Scheme(alice_session, None, Id("digest", MALLORY)),
    "ip": Scheme(lambda s: s("anonymous"), Id("ip", "127.0.0.1"), Id("ip", "10.0.0.1")),
    "ip-cidr": Scheme(lambda s: s("anonymous"), Id("ip", "127.0.0.0/8"), Id("ip", "10.0.0.0/8")),
    "sasl": Scheme(sasl_session, Id("sasl", SASL_USER), Id("sasl", "mallory")),
    "super": Scheme(super_session, Id("digest", MALLORY), Id("digest", MALLORY), superuser=True),
    "sasl-super": Scheme(
        sasl_super_session, Id("digest", MALLORY), Id("digest", MALLORY), superuser=True
    ),
}


def _commit(zk: KazooClient, build: Callable[[Any], None]) -> None:
    """Run a one-op multi; raise the op's error as kazoo reports it."""
    transaction = zk.transaction()
    build(transaction)
    for result in transaction.commit():
        if isinstance(result, Exception):
            raise result


def _operations(zk: KazooClient, path: str, acl: list[ACL]) -> dict[str, Callable[[], object]]:
    """Each operation on node ``path`` (reads first: the writes change the node); setACL
    writes the node's own ``acl`` back, so it changes nothing the others see."""
    return {
        "getData": lambda: zk.get(path),
        "exists": lambda: zk.exists(path),
        "getChildren": lambda: zk.get_children(path),
        "getACL": lambda: zk.get_acls(path),
        "multi.check": lambda: _commit(zk, lambda t: t.check(path, 0)),
        "sync": lambda: zk.sync(path),
        "reconfig": lambda: zk.reconfig(joining=None, leaving="9", new_members=None),
        "setData": lambda: zk.set(path, b"changed"),
        "multi.setData": lambda: _commit(zk, lambda t: t.set_data(path, b"again")),
        "create": lambda: zk.create(path + "/new"),
        "multi.create": lambda: _commit(zk, lambda t: t.create(path + "/new2")),
        "delete": lambda: zk.delete(path + "/existing"),
        "multi.delete": lambda: _commit(zk, lambda t: t.delete(path + "/existing2")),
        "setACL": lambda: zk.set_acls(path, acl),
    }


def expected(target: Target, scheme: Scheme, perms: int, op: str) -> str:
    needs = NEEDS[op]
    if op == "reconfig":
        return "ReconfigDisabledError"
    if target.kind == "zookeeper" and op == "exists":
        needs = 0  # ZooKeeper 3.8 checks no ACL on exists (3.9 and coord check READ)
    if scheme.superuser or needs == 0 or (needs or 0) & perms:
        return "ok"
    return "NoAuthError"


@pytest.mark.parametrize("scheme_name", list(SCHEMES))
def test_acl_matrix(
    secure: Target, sessions: Callable[..., KazooClient], root: str, scheme_name: str
) -> None:
    """Each operation succeeds exactly when the node's ACL grants its permission to one of
    the session's identities (or the session is a superuser); otherwise NoAuth."""
    scheme = SCHEMES[scheme_name]
    admin = super_session(sessions)
    subject = scheme.subject(sessions)
    admin.create(root)
    outcomes: dict[tuple[str, str], str] = {}
    wanted: dict[tuple[str, str], str] = {}
    for case, perms in CASES.items():
        path = f"{root}/{case}"
        admin.create(path, b"data")
        admin.create(path + "/existing")
        admin.create(path + "/existing2")
        if scheme.granted is None:  # the auth pseudo-scheme, expanded for the subject
            acl = [ACL(perms, Id("auth", ""))] if perms else [ACL(ADMIN, scheme.other)]
            subject.set_acls(path, acl)
        else:
            granted = scheme.granted if perms else scheme.other
            acl = [ACL(perms or Permissions.ALL, granted)]
            admin.set_acls(path, acl)
        stored = admin.get_acls(path)[0]
        for op, run in _operations(subject, path, stored).items():
            outcomes[(case, op)] = error_name(run)
            wanted[(case, op)] = expected(secure, scheme, perms, op)
    assert outcomes == wanted


def test_acl_matrix_sasl_wrong_password_fails(secure: Target) -> None:
    """A SASL DIGEST-MD5 login with a wrong password is refused (AuthFailed) and the
    session ends, on both servers alike."""
    options = {"mechanism": "DIGEST-MD5", "username": SASL_USER, "password": "wrong"}
    client = KazooClient(hosts=secure.address, timeout=5.0, sasl_options=options)
    try:
        started = error_name(lambda: client.start(timeout=10))
        attempt = error_name(lambda: client.create("/sasl-should-not-exist"))
        # kazoo's start() returns; the server's AuthFailed reply ends the session.
        assert (started, attempt, client.state) == ("ok", "AuthFailedError", "LOST")
    finally:
        client.stop()
        client.close()


def test_acl_matrix_sasl_id_validation(
    secure: Target, sessions: Callable[..., KazooClient], root: str
) -> None:
    """sasl ACL ids are Kerberos-style names: ``a@b@c`` is InvalidACL on both servers."""
    admin = super_session(sessions)
    admin.create(root)
    outcomes = {}
    for ident in ("bob", "zk/host@EXAMPLE.COM", "user@REALM", "a@b@c", "a/b/c@R"):
        outcomes[ident] = error_name(
            lambda ident=ident: admin.create(
                f"{root}/{len(outcomes)}", acl=[ACL(31, Id("sasl", ident))]
            )
        )
    assert outcomes == {
        "bob": "ok",
        "zk/host@EXAMPLE.COM": "ok",
        "user@REALM": "ok",
        "a@b@c": "InvalidACLError",
        "a/b/c@R": "InvalidACLError",
    }


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_acl_ip_ipv6_cidr_on_coord() -> None:
    """coord only (ZooKeeper 3.8 rejects IPv6 ids): a client on ::1 matches ip ACLs by
    IPv6 address and prefix, never IPv4 ones."""
    with CoordServerThread(host="::1") as server, kazoo_client(f"[::1]:{server.port}") as zk:
        zk.create("/v6")
        cases = {
            "::1": "ok",
            "::1/128": "ok",
            "::/0": "ok",
            "::0:1/127": "ok",
            "2001:db8::/32": "NoAuthError",
            "::2/128": "NoAuthError",
            "127.0.0.1": "NoAuthError",
            "0.0.0.0/0": "NoAuthError",
        }
        outcomes = {}
        for n, ident in enumerate(cases):
            path = f"/v6/{n}"
            zk.create(
                path, b"x", acl=[ACL(READ, Id("ip", ident)), ACL(ADMIN, Id("world", "anyone"))]
            )
            outcomes[ident] = error_name(lambda path=path: zk.get(path))
        assert outcomes == cases


# --- requests kazoo does not send, over the raw protocol --------------------------------


def _raw_operations(path: str) -> dict[str, tuple[int, Any]]:
    open_acl = (CoordACL(31, CoordId("world", "anyone")),)
    return {
        "getChildren2": (OpCode.GET_CHILDREN2, GetChildrenRequest(path, False)),
        "getAllChildrenNumber": (OpCode.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest(path)),
        "getEphemerals": (OpCode.GET_EPHEMERALS, GetEphemeralsRequest(path)),
        "addWatch": (OpCode.ADD_WATCH, AddWatchRequest(path, 0)),
        "whoAmI": (OpCode.WHO_AM_I, WhoAmIRequest()),
        "multiRead.getData": (
            OpCode.MULTI_READ,
            MultiRequest((MultiOp(OpCode.GET_DATA, GetDataRequest(path, False)),)),
        ),
        "create2": (OpCode.CREATE2, CreateRequest(path + "/c2", b"", open_acl, 0)),
        "createContainer": (OpCode.CREATE_CONTAINER, CreateRequest(path + "/cc", b"", open_acl, 4)),
        "createTTL": (OpCode.CREATE_TTL, CreateTTLRequest(path + "/ct", b"", open_acl, 5, 60000)),
    }


#: What each raw request needs (both servers agree; addWatch and getEphemerals check no ACL).
RAW_NEEDS = {
    "getChildren2": READ,
    "getAllChildrenNumber": READ,
    "getEphemerals": 0,
    "addWatch": 0,
    "whoAmI": 0,
    "multiRead.getData": READ,
    "create2": CREATE,
    "createContainer": CREATE,
    "createTTL": CREATE,
}


@pytest.mark.parametrize("case", list(CASES))
def test_acl_matrix_raw_requests(
    secure: Target, sessions: Callable[..., KazooClient], root: str, case: str
) -> None:
    """Requests kazoo does not send, by a digest-authenticated raw session: each needs
    its permission on the node (create*: on the parent); multiRead reports NoAuth per op."""
    admin = super_session(sessions)
    perms = CASES[case]
    grantee = Id("digest", ALICE if perms else MALLORY)
    admin.create(root, b"data", acl=[ACL(perms or Permissions.ALL, grantee)])
    host, port = secure.address.rsplit(":", 1)
    outcomes: dict[str, str] = {}
    with RawClient(host, int(port)) as raw:
        auth = raw.call(OpCode.AUTH, AuthPacket(0, "digest", b"alice:secret"), xid=-4)
        assert auth.header.err == 0
        for name, (op, request) in _raw_operations(root).items():
            reply = raw.call(op, request)
            err = reply.header.err
            if op == OpCode.MULTI_READ and err == 0:
                reader = Reader(reply.body)
                if reader.read_int() == -1:  # MultiHeader(type=-1 error, done, err)
                    reader.read_bool()
                    reader.read_int()
                    err = reader.read_int()
            outcomes[name] = "ok" if err == 0 else ErrorCode(err).name
    assert outcomes == {
        name: "ok" if needs == 0 or needs & perms else "NO_AUTH"
        for name, needs in RAW_NEEDS.items()
    }


def test_acl_matrix_sasl_java_client(
    secure: Target, root: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """zkCli (the Java client) logs in with SASL DIGEST-MD5 from a JAAS ``Client``
    section; its session is ``sasl:bob`` on both servers."""
    jaas = tmp_path_factory.mktemp("client-jaas") / "client.conf"
    jaas.write_text(
        "Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        f'  username="{SASL_USER}"\n  password="{SASL_PASSWORD}";\n}};\n'
    )
    result = run_zkcli(
        secure.address,
        f"create {root} x sasl:{SASL_USER}:cdrwa",
        f"get {root}",
        f"getAcl {root}",
        "whoami",
        jvm_options=[f"-Djava.security.auth.login.config={jaas}"],
    )
    outputs = [(o.stdout, o.stderr) for o in result.outputs]
    assert outputs[0] == ("", f"Created {root}")
    assert outputs[1] == ("x", "")
    assert outputs[2] == (f"'sasl,'{SASL_USER}\n: cdrwa", "")
    header, *identities = outputs[3][0].splitlines()
    # ZooKeeper keeps a session's identities in a hash set: compare them unordered.
    assert (header, sorted(identities)) == ("Auth scheme: User", ["ip: 127.0.0.1", "sasl: bob"])

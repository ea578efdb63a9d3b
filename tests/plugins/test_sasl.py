"""SASL DIGEST-MD5 (coord/server/_sasl.py): the sans-IO server against pure-sasl's client
(what kazoo uses), and the exchange through a real server with kazoo. The same flow
against Apache ZooKeeper is in tests/compat/test_compat_acl_matrix.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kazoo.client import KazooClient
from kazoo.security import ACL, Id
from puresasl.client import SASLClient

from coord.protocol import AuthFailedError
from coord.protocol import Id as CoordId
from coord.server import ConfigError, DigestMD5Server, ServerConfig
from coord.server._sasl import DIGEST_MD5_REALM
from coord.testing import CoordServerThread

USERS = {"bob": "bobsecret", "日本": "パスワード"}


def client(user: str, password: str, **kwargs: Any) -> SASLClient:
    return SASLClient(
        DIGEST_MD5_REALM,
        service="zookeeper",
        mechanism="DIGEST-MD5",
        username=user,
        password=password,
        **kwargs,
    )


def exchange(server: DigestMD5Server, sasl: SASLClient) -> None:
    """Run kazoo's loop: empty first token, then answer challenges until complete."""
    challenge = None
    while not sasl.complete:
        response = sasl.process(challenge)
        if sasl.complete and not response:
            break
        challenge = server.evaluate(response or b"")


@pytest.mark.parametrize("user", list(USERS))
def test_DigestMD5Server_authenticates_a_pure_sasl_client(user: str) -> None:
    server = DigestMD5Server(USERS, "nonce-1234567890")
    sasl = client(user, USERS[user])
    exchange(server, sasl)
    assert sasl.complete and server.complete  # the client checked rspauth too
    assert server.identities() == [CoordId("sasl", user)]


def test_DigestMD5Server_hashes_latin1_text_as_latin1() -> None:
    """RFC 2831 (and the JDK's server and client): text that fits ISO 8859-1 is hashed in
    it even with charset=utf-8; pure-sasl always hashes UTF-8, so a user or password with
    such characters (but none beyond) fails from kazoo, as it would with the JDK server."""
    server = DigestMD5Server({"é": "x"}, "nonce-1234567890")
    with pytest.raises(AuthFailedError):
        exchange(server, client("é", "x"))


@pytest.mark.parametrize(
    ("user", "password"), [("bob", "wrong"), ("nobody", "bobsecret"), ("BOB", "bobsecret")]
)
def test_DigestMD5Server_rejects_bad_credentials(user: str, password: str) -> None:
    server = DigestMD5Server(USERS, "nonce-1234567890")
    with pytest.raises(AuthFailedError):
        exchange(server, client(user, password))
    assert not server.complete and server.identities() == []


def _response(server: DigestMD5Server) -> bytes:
    sasl = client("bob", "bobsecret")
    sasl.process(None)
    return sasl.process(server.evaluate(b""))


def test_DigestMD5Server_challenge_is_what_zookeeper_sends() -> None:
    challenge = DigestMD5Server(USERS, "abc").evaluate(b"")
    assert challenge == (
        b'realm="zk-sasl-md5",nonce="abc",qop="auth",charset=utf-8,algorithm=md5-sess'
    )


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda r: r.replace(b'digest-uri="zookeeper/', b'digest-uri="other/'), "digest-uri"),
        (lambda r: r.replace(b"nc=00000001", b"nc=00000002"), "nonce count"),
        (lambda r: r.replace(b'nonce="', b'nonce="x'), "nonce"),
        (lambda r: r.replace(b"response=", b"response=0"), "failed"),
        (lambda r: r.replace(b"qop=auth", b"qop=auth-conf"), "qop"),
        (lambda r: r + b',username="bob"', "twice"),
        (lambda r: b"garbage without equals", "malformed"),
        (lambda r: b"", "lacks"),
    ],
    ids=["uri", "nc", "nonce", "response", "qop", "repeated", "garbage", "empty"],
)
def test_DigestMD5Server_rejects_tampered_responses(change: Any, why: str) -> None:
    server = DigestMD5Server(USERS, "nonce-1234567890")
    response = _response(server)
    with pytest.raises(AuthFailedError, match=why):
        server.evaluate(change(response))
    assert not server.complete


def test_DigestMD5Server_bounds_the_work_on_hostile_responses() -> None:
    """Responses are parsed in linear time and limited to RFC 2831's 4096 bytes."""
    import time

    for hostile in (b"a=" + b" " * 4000 + b"x", b'a="' + b"\\" * 1990, b"a=b," * 1000):
        server = DigestMD5Server(USERS, "nonce-1234567890")
        server.evaluate(b"")
        started = time.perf_counter()
        with pytest.raises(AuthFailedError):
            server.evaluate(hostile)
        assert time.perf_counter() - started < 0.5
    server = DigestMD5Server(USERS, "nonce-1234567890")
    server.evaluate(b"")
    with pytest.raises(AuthFailedError, match="too long"):
        server.evaluate(b"x" * 5000)


def test_DigestMD5Server_rejects_initial_response_and_extra_steps() -> None:
    with pytest.raises(AuthFailedError, match="no initial response"):
        DigestMD5Server(USERS, "n").evaluate(b"username=bob")
    server = DigestMD5Server(USERS, "nonce-1234567890")
    exchange(server, client("bob", "bobsecret"))
    with pytest.raises(AuthFailedError, match="over"):
        server.evaluate(b"")


def test_sasl_users_config_is_validated() -> None:
    assert ServerConfig(sasl_users=("bob=a=b",)).sasl_credentials == {"bob": "a=b"}
    with pytest.raises(ConfigError, match='"name=password"'):
        ServerConfig(sasl_users=("bob",))
    with pytest.raises(ConfigError, match="twice"):
        ServerConfig(sasl_users=("bob=a", "bob=b"))


@pytest.fixture
def sasl_server() -> Iterator[CoordServerThread]:
    with CoordServerThread(sasl_users=("bob=bobsecret", "carol=c")) as server:
        yield server


def _kazoo(address: str, user: str, password: str) -> KazooClient:
    options = {"mechanism": "DIGEST-MD5", "username": user, "password": password}
    zk = KazooClient(hosts=address, timeout=10.0, sasl_options=options)
    zk.start(timeout=10)
    return zk


def test_sasl_kazoo_identity_is_sasl_user(sasl_server: CoordServerThread) -> None:
    """A kazoo client logged in as bob has ``sasl:bob``: it passes a ``sasl:bob`` ACL, carol
    does not, and the ``auth`` ACL of bob's session expands to ``sasl:bob``."""
    bob = _kazoo(sasl_server.address, "bob", "bobsecret")
    carol = _kazoo(sasl_server.address, "carol", "c")
    try:
        bob.create("/bob", b"b", acl=[ACL(31, Id("sasl", "bob"))])
        assert bob.get("/bob")[0] == b"b"
        bob.create("/auth", acl=[ACL(31, Id("auth", ""))])
        assert [(a.id.scheme, a.id.id) for a in bob.get_acls("/auth")[0]] == [("sasl", "bob")]
        from kazoo.exceptions import NoAuthError

        with pytest.raises(NoAuthError):
            carol.get("/bob")
    finally:
        for zk in (bob, carol):
            zk.stop()
            zk.close()


def test_sasl_without_users_answers_a_null_token() -> None:
    """With no SASL users the scheme is absent and a SASL request gets a null token (the
    server's previous behaviour), which pure-sasl treats as a protocol error."""
    with CoordServerThread() as server:
        assert "sasl" not in server.server.acl.schemes


def test_sasl_super_user_is_superuser_once_logged_in() -> None:
    from coord.server._acl import SUPER

    server = DigestMD5Server(USERS, "nonce-1234567890", super_user="bob")
    exchange(server, client("bob", "bobsecret"))
    assert server.identities() == [CoordId("sasl", "bob"), SUPER]
    with pytest.raises(ConfigError, match="not one of sasl_users"):
        ServerConfig(sasl_users=("bob=x",), sasl_super_user="carol")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=200).map(str.encode))
def test_DigestMD5Server_random_responses_fail_cleanly(token: bytes) -> None:
    """Whatever the client sends as its response, the answer is AuthFailed (or, for a
    well-formed and correct one, success): never another exception."""
    server = DigestMD5Server(USERS, "nonce-1234567890")
    server.evaluate(b"")
    try:
        server.evaluate(token)
    except AuthFailedError:
        assert not server.complete

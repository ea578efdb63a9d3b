"""The built-in auth schemes keep the auth scheme contract (coord.testing's suite)."""

from __future__ import annotations

from typing import Any

import pytest

from coord.server._acl import DigestScheme, IpScheme, WorldScheme, digest_id
from coord.server._sasl import SaslDigestScheme
from coord.testing import AuthSchemeConformance

ALICE = digest_id("alice", "secret")


class TestWorldScheme(AuthSchemeConformance):
    valid_credentials: list[bytes] = []
    invalid_credentials = [b"anyone", b""]
    valid_ids = ["anyone"]
    invalid_ids = ["", "everyone", "anyone "]
    matching = [("x", "anyone", True), ("anyone", "anyone", True)]

    @pytest.fixture
    def scheme(self) -> WorldScheme:
        return WorldScheme()


class TestDigestScheme(AuthSchemeConformance):
    valid_credentials = [b"alice:secret", b"nocolon", "é:日本".encode()]
    invalid_credentials: list[bytes] = []  # as ZooKeeper: any text is a digest identity
    valid_ids = [ALICE, "a:b:", ":b"]
    invalid_ids = ["a", "a:", "a:b:c", ""]
    matching = [
        (ALICE, ALICE, True),
        (digest_id("alice", "wrong"), ALICE, False),
        (ALICE, ALICE.upper(), False),
    ]

    @pytest.fixture
    def scheme(self) -> DigestScheme:
        return DigestScheme()


class TestIpScheme(AuthSchemeConformance):
    valid_credentials = [b"anything"]  # addauth ip adds the connection's own address
    invalid_credentials: list[bytes] = []
    valid_ids = ["127.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "::1", "2001:db8::/32", "::/0"]
    invalid_ids = ["127.1", "127.0.0.1/33", "::1/129", "localhost", "", "1.2.3.4/-1"]
    matching = [
        ("127.0.0.1", "127.0.0.0/8", True),
        ("127.0.0.1", "10.0.0.0/8", False),
        ("10.1.2.3", "10.1.0.0/16", True),
        ("10.2.2.3", "10.1.0.0/16", False),
        ("2001:db8::7", "2001:db8::/32", True),
        ("2001:db9::7", "2001:db8::/32", False),
        ("::1", "::1", True),
        ("::1", "127.0.0.1", False),  # families never match each other
        ("127.0.0.1", "::/0", False),
        ("1.2.3.4", "0.0.0.0/0", True),
    ]

    @pytest.fixture
    def scheme(self) -> IpScheme:
        return IpScheme()


class TestSaslScheme(AuthSchemeConformance):
    """``sasl`` identities come from SASL negotiation (tests/plugins/test_sasl.py);
    ``addauth sasl`` always fails, as in ZooKeeper."""

    valid_credentials: list[bytes] = []
    invalid_credentials = [b"bob:bobsecret", b""]
    valid_ids = ["bob", "zookeeper/host@EXAMPLE.COM", "user@REALM", ""]
    invalid_ids = ["a@b@c", "a/b/c@R"]
    matching = [("bob", "bob", True), ("alice", "bob", False), ("super", "bob", True)]

    @pytest.fixture
    def scheme(self) -> SaslDigestScheme:
        return SaslDigestScheme({"bob": "bobsecret"})

    @pytest.fixture
    def server_config(self) -> dict[str, Any]:
        return {"sasl_users": ("bob=bobsecret",)}

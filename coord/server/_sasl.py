"""SASL DIGEST-MD5, as ZooKeeper's server speaks it to kazoo and the Java client.

Theory of operation
-------------------
A client that is configured for SASL sends SASL requests (opcode 102, a token each) right
after the session is established; the server answers each with a token until the
mechanism completes, then the session has the identity ``sasl:<user>``. ZooKeeper uses
the JDK's DIGEST-MD5 server (RFC 2831) with the protocol ``zookeeper`` and the server name
``zk-sasl-md5`` (the realm, and the host part of the ``digest-uri``), and users from the
JAAS section ``Server { DigestLoginModule required user_<name>="<password>"; }``; coord
takes the same users from ``ServerConfig.sasl_users``. The exchange:

1. client: an empty token (DIGEST-MD5 has no initial response);
2. server: the challenge ``realm="zk-sasl-md5",nonce="...",qop="auth",charset=utf-8,
   algorithm=md5-sess``;
3. client: the digest response (``username``, ``nonce``, ``cnonce``, ``nc``, ``qop``,
   ``digest-uri``, ``response``); the server checks it with the user's password;
4. server: ``rspauth=<hex>``, proving it knows the password too; the exchange is complete.

Any failure (unknown user, wrong password, wrong nonce or digest-uri, a token out of turn)
is ``AuthFailed`` and the server closes the connection, as ZooKeeper does. Only the
``auth`` quality of protection is offered (no integrity or confidentiality layer: use TLS).

:class:`DigestMD5Server` is sans-IO (the nonce is an argument); :class:`SaslDigestScheme`
is the ``sasl`` ACL scheme with ZooKeeper's ``SASLAuthenticationProvider`` semantics;
:func:`handle_sasl` is what a connection calls for each SASL request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from coord.protocol import AuthFailedError, Id, OpCode, SetSASLResponse

from ._acl import SUPER, PeerInfo, SaslExchange, SaslScheme

if TYPE_CHECKING:
    from ._server import Connection

__all__ = ["DIGEST_MD5_REALM", "DigestMD5Server", "SaslDigestScheme", "handle_sasl"]

#: ZooKeeper's fixed server name for DIGEST-MD5 (``SaslQuorumServerCallbackHandler``).
DIGEST_MD5_REALM: Final = "zk-sasl-md5"
#: The SASL service (protocol) name of ZooKeeper.
SERVICE: Final = "zookeeper"

_NULL_TOKEN: Final = b"\xff\xff\xff\xff"
# One directive: name=value or name="quoted value" (backslash escapes inside quotes).
_DIRECTIVE = re.compile(rb'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"\s*|([^,"]*))(?:,|$)')
#: RFC 2831 2.1.2: "The size of a digest-response is less than 4096 bytes."
MAX_RESPONSE = 4096


def _parse(token: bytes) -> dict[str, bytes]:
    """The directives of a DIGEST-MD5 message; AuthFailedError if malformed or repeated."""
    if len(token) >= MAX_RESPONSE:
        raise AuthFailedError("DIGEST-MD5 response too long")
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(token):
        match = _DIRECTIVE.match(token, pos)
        if match is None or match.end() == pos:
            raise AuthFailedError("malformed DIGEST-MD5 response")
        name = match.group(1).decode("ascii").lower()
        quoted, plain = match.group(2), match.group(3)
        value = re.sub(rb"\\(.)", rb"\1", quoted) if quoted is not None else (plain or b"").strip()
        if name in out:
            raise AuthFailedError(f"DIGEST-MD5 directive {name!r} given twice")
        out[name] = value
        pos = match.end()
    return out


def _text_bytes(text: str) -> bytes:
    """RFC 2831 with ``charset=utf-8``: ISO 8859-1 when the text fits in it, else UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _hex_md5(data: bytes) -> bytes:
    return hashlib.md5(data).hexdigest().encode("ascii")


class DigestMD5Server:
    """The server side of one DIGEST-MD5 exchange (sans-IO).

    Args:
        users: user name -> password.
        nonce: the server nonce (random, at least 16 bytes of entropy, no quotes).
        super_user: the user who also gets the superuser identity (``super:``).
        realm: the realm and server name (ZooKeeper: ``zk-sasl-md5``).
        service: the protocol part of the expected ``digest-uri``.
    """

    mechanism: Final = "DIGEST-MD5"

    def __init__(
        self,
        users: Mapping[str, str],
        nonce: str,
        *,
        realm: str = DIGEST_MD5_REALM,
        service: str = SERVICE,
        super_user: str | None = None,
    ) -> None:
        self._users = users
        self._super_user = super_user
        self._nonce = nonce.encode("ascii")
        self._realm = realm
        self._digest_uri = f"{service}/{realm}".encode()
        self._step = 0
        self.complete = False
        #: The authenticated user, once complete.
        self.user: str | None = None

    def evaluate(self, token: bytes) -> bytes | None:
        """Answer the client's ``token``; see the module docstring for the steps.

        Raises:
            AuthFailedError: the token is not what this step expects, or the client's
                credentials are wrong.
        """
        step, self._step = self._step, self._step + 1
        if step == 0:
            if token:
                raise AuthFailedError("DIGEST-MD5 has no initial response")
            return (
                f'realm="{self._realm}",nonce="{self._nonce.decode()}",qop="auth",'
                "charset=utf-8,algorithm=md5-sess"
            ).encode("ascii")
        if step == 1:
            return self._verify(token)
        raise AuthFailedError("the DIGEST-MD5 exchange is already over")

    def _verify(self, token: bytes) -> bytes:
        d = _parse(token)
        for name in ("username", "nonce", "cnonce", "nc", "response"):
            if name not in d:
                raise AuthFailedError(f"DIGEST-MD5 response lacks {name}")
        if d.get("qop", b"auth") != b"auth":
            raise AuthFailedError("only qop=auth is offered")
        if not hmac.compare_digest(d["nonce"], self._nonce):
            raise AuthFailedError("DIGEST-MD5 nonce mismatch")
        if d["nc"] != b"00000001":
            raise AuthFailedError("DIGEST-MD5 nonce count must be 00000001")
        realm = d.get("realm", self._realm.encode())
        if realm.decode("utf-8", "replace") != self._realm:
            raise AuthFailedError("DIGEST-MD5 realm mismatch")
        uri = d.get("digest-uri", b"")
        if uri != self._digest_uri:
            raise AuthFailedError(
                f"DIGEST-MD5 digest-uri must be {self._digest_uri.decode()!r}, not "
                f"{uri.decode('utf-8', 'replace')!r}"
            )
        user = d["username"].decode("utf-8", "replace")
        password = self._users.get(user)
        if password is None:
            raise AuthFailedError("unknown SASL user")
        authzid = d.get("authzid")
        if authzid is not None and authzid.decode("utf-8", "replace") != user:
            raise AuthFailedError("SASL authorization id differs from the user")
        key = hashlib.md5(_text_bytes(user) + b":" + realm + b":" + _text_bytes(password)).digest()
        a1 = key + b":" + self._nonce + b":" + d["cnonce"]
        if authzid is not None:
            a1 += b":" + authzid
        ha1 = _hex_md5(a1)

        def kd(a2: bytes) -> bytes:
            tail = b":".join([self._nonce, d["nc"], d["cnonce"], b"auth", _hex_md5(a2)])
            return _hex_md5(ha1 + b":" + tail)

        expected = kd(b"AUTHENTICATE:" + uri)
        if not hmac.compare_digest(expected, d["response"].lower()):
            raise AuthFailedError("SASL authentication failed")
        self.complete = True
        self.user = user
        return b"rspauth=" + kd(b":" + uri)

    def identities(self) -> list[Id]:
        """``[sasl:<user>]`` once complete (and ``super:`` for the super user), else ``[]``."""
        if not self.complete or self.user is None:
            return []
        if self.user == self._super_user:
            return [Id("sasl", self.user), SUPER]
        return [Id("sasl", self.user)]


# KerberosName's pattern: primary[/instance]@REALM; a name without "@" is a bare service.
_KERBEROS_NAME = re.compile(r"[^/@]*(/[^/@]*)?@[^/@]*")


class SaslDigestScheme:
    """The ``sasl`` scheme: identities ``sasl:<user>`` from SASL DIGEST-MD5.

    ACL semantics of ZooKeeper's ``SASLAuthenticationProvider``: an id is valid when it is
    a Kerberos-style name (no ``@``, or ``primary[/instance]@REALM``); the caller
    ``sasl:super`` matches every ``sasl`` entry; ``addauth sasl`` always fails (SASL is
    negotiated with SASL requests, not ``addauth``).

    Args:
        users: user name -> password (``ServerConfig.sasl_credentials``).
        super_user: a user who is superuser once logged in (``sasl_super_user``).
    """

    name = "sasl"
    is_authenticated = True

    def __init__(self, users: Mapping[str, str], super_user: str | None = None) -> None:
        self.users = dict(users)
        self.super_user = super_user

    def connection_ids(self, peer: PeerInfo) -> list[Id]:
        return []

    def authenticate(self, peer: PeerInfo, credentials: bytes) -> list[Id]:
        raise AuthFailedError("sasl identities come from SASL negotiation, not addauth")

    def is_valid(self, acl_id: str) -> bool:
        return "@" not in acl_id or _KERBEROS_NAME.fullmatch(acl_id) is not None

    def matches(self, caller_id: str, acl_id: str) -> bool:
        return caller_id == "super" or caller_id == acl_id

    def user_name(self, caller_id: str) -> str:
        return caller_id

    def start_sasl(self, peer: PeerInfo) -> SaslExchange:
        return DigestMD5Server(self.users, secrets.token_urlsafe(24), super_user=self.super_user)


def handle_sasl(connection: Connection, token: bytes) -> bytes:
    """Serve one SASL request of ``connection``; the reply body.

    Without a SASL scheme loaded (no ``sasl_users``), answer a null token, as before.

    Raises:
        AuthFailedError: the exchange failed; the connection is marked closing (the
            error reply is still sent), as ZooKeeper closes it.
    """
    server = connection.server
    exchange: Any = getattr(connection, "sasl", None)
    if exchange is None:
        scheme = next((s for s in server.acl.schemes.values() if isinstance(s, SaslScheme)), None)
        if scheme is None:
            return _NULL_TOKEN
        exchange = connection.sasl = scheme.start_sasl(connection.peer)
    try:
        answer = exchange.evaluate(token)
    except AuthFailedError:
        connection.closing = True
        server.auditor.authentication(
            OpCode.SASL,
            "sasl",
            False,
            session=connection.session_id,
            client=connection.peer_name,
            ids=connection.auth,
        )
        raise
    if exchange.complete and not getattr(connection, "sasl_done", False):
        connection.sasl_done = True
        connection.auth = tuple(dict.fromkeys((*connection.auth, *exchange.identities())))
        server.auditor.authentication(
            OpCode.SASL,
            "sasl",
            True,
            session=connection.session_id,
            client=connection.peer_name,
            ids=connection.auth,
        )
    return _NULL_TOKEN if answer is None else SetSASLResponse(answer).to_bytes()

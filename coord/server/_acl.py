"""ACL checks and authentication schemes: who may do what to a znode.

Theory of operation
-------------------
A znode's ACL is a list of (perms, Id) entries; an operation needing permission ``p`` is
allowed when some entry grants ``p`` and its Id matches one of the caller's identities
(``world:anyone`` matches everyone, and an identity of scheme ``super`` passes every
check). Identities come from schemes: ``ip`` gives every connection one automatically,
``digest`` adds one per ``addauth``. Matching and validation are pure functions of ids,
so the same :class:`AclPolicy` gives the same answer on every replica -- the ACL check is
part of the deterministic apply (DESIGN.md decision 3), and every replica must run the
same auth scheme plugins.

Semantics follow ZooKeeper's ``PrepRequestProcessor.fixupACL`` and
``ZooKeeperServer.checkACL``: an empty ACL is invalid; the ``auth`` pseudo-scheme expands
to every authenticated identity of the caller (and is invalid without one); an Id of an
unknown scheme, or one its scheme rejects, is invalid; duplicates are removed.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from coord.protocol import ACL, Id, InvalidACLError, NoAuthError, Perm

__all__ = [
    "ANYONE",
    "OPEN_ACL_UNSAFE",
    "READ_ACL_UNSAFE",
    "AclPolicy",
    "AuthScheme",
    "DigestScheme",
    "IpScheme",
    "PeerInfo",
    "WorldScheme",
    "digest_id",
]

ANYONE = Id("world", "anyone")
OPEN_ACL_UNSAFE: tuple[ACL, ...] = (ACL(Perm.ALL, ANYONE),)
READ_ACL_UNSAFE: tuple[ACL, ...] = (ACL(Perm.READ, ANYONE),)
SUPER = Id("super", "")


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What a scheme may know about the connection it authenticates."""

    host: str
    port: int
    #: The verified client certificate's subject, on TLS transports that ask for one.
    certificate_subject: str | None = None


@runtime_checkable
class AuthScheme(Protocol):
    """An authentication scheme, as plugins provide it (hook ``coord_auth_schemes``).

    Implementations must be pure and deterministic: the methods called during apply
    (:meth:`is_valid`, :meth:`matches`) run on every replica and must agree.
    """

    #: The scheme name used in ACL ids and ``addauth`` (``digest``, ``ip``, ...).
    name: str
    #: Whether identities of this scheme count for the ``auth`` ACL pseudo-scheme.
    is_authenticated: bool

    def connection_ids(self, peer: PeerInfo) -> list[Id]:
        """Identities every connection from ``peer`` has without ``addauth`` (ip: its address)."""
        ...

    def authenticate(self, peer: PeerInfo, credentials: bytes) -> list[Id]:
        """Identities granted by ``addauth <scheme> <credentials>``.

        Raises:
            AuthFailedError: the credentials are not acceptable.
        """
        ...

    def is_valid(self, acl_id: str) -> bool:
        """Whether ``acl_id`` is a well-formed id of this scheme, for use in an ACL."""
        ...

    def matches(self, caller_id: str, acl_id: str) -> bool:
        """Whether a caller identity of this scheme satisfies an ACL entry's id."""
        ...

    def user_name(self, caller_id: str) -> str:
        """How ``whoAmI`` shows the identity."""
        ...


class WorldScheme:
    """``world:anyone``: matches everyone; never an identity of its own."""

    name = "world"
    is_authenticated = False

    def connection_ids(self, peer: PeerInfo) -> list[Id]:
        return []

    def authenticate(self, peer: PeerInfo, credentials: bytes) -> list[Id]:
        from coord.protocol import AuthFailedError

        raise AuthFailedError("the world scheme does not authenticate")

    def is_valid(self, acl_id: str) -> bool:
        return acl_id == "anyone"

    def matches(self, caller_id: str, acl_id: str) -> bool:
        return acl_id == "anyone"

    def user_name(self, caller_id: str) -> str:
        return caller_id


def digest_id(user: str, password: str) -> str:
    """The ``digest`` ACL id of a user: ``user:base64(sha1("user:password"))``."""
    hashed = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(hashed).decode('ascii')}"


class DigestScheme:
    """``digest``: ``addauth digest user:password`` gives the id ``user:<digest>``.

    Args:
        super_digest: an id (``super:<digest>`` form, as ZooKeeper's
            ``zookeeper.DigestAuthenticationProvider.superDigest``) whose holder is superuser.
    """

    name = "digest"
    is_authenticated = True

    def __init__(self, super_digest: str | None = None) -> None:
        self.super_digest = super_digest

    def connection_ids(self, peer: PeerInfo) -> list[Id]:
        return []

    def authenticate(self, peer: PeerInfo, credentials: bytes) -> list[Id]:
        from coord.protocol import AuthFailedError

        try:
            text = credentials.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthFailedError("digest credentials are not UTF-8") from None
        user, sep, password = text.partition(":")
        if not sep:
            raise AuthFailedError("digest credentials must be user:password")
        ident = digest_id(user, password)
        ids = [Id("digest", ident)]
        if self.super_digest is not None and ident == self.super_digest:
            ids.append(SUPER)
        return ids

    def is_valid(self, acl_id: str) -> bool:
        return len(acl_id.split(":")) == 2

    def matches(self, caller_id: str, acl_id: str) -> bool:
        return caller_id == acl_id

    def user_name(self, caller_id: str) -> str:
        return caller_id.split(":", 1)[0]


class IpScheme:
    """``ip``: every connection is ``ip:<its address>``; ACL ids are an address or a CIDR."""

    name = "ip"
    is_authenticated = False

    def connection_ids(self, peer: PeerInfo) -> list[Id]:
        return [Id("ip", peer.host)]

    def authenticate(self, peer: PeerInfo, credentials: bytes) -> list[Id]:
        from coord.protocol import AuthFailedError

        raise AuthFailedError("the ip scheme identifies connections by address; no addauth")

    def is_valid(self, acl_id: str) -> bool:
        try:
            ipaddress.ip_network(acl_id, strict=False)
        except ValueError:
            return False
        return True

    def matches(self, caller_id: str, acl_id: str) -> bool:
        try:
            return ipaddress.ip_address(caller_id) in ipaddress.ip_network(acl_id, strict=False)
        except ValueError:
            return False

    def user_name(self, caller_id: str) -> str:
        return caller_id


class AclPolicy:
    """The registered schemes and the ACL rules built on them.

    Args:
        schemes: the auth schemes by name.
        skip_acl: disable every check (ZooKeeper's unsafe ``zookeeper.skipACL``).
    """

    def __init__(self, schemes: Mapping[str, AuthScheme], *, skip_acl: bool = False) -> None:
        self.schemes = dict(schemes)
        self.skip_acl = skip_acl

    def check(self, acl: tuple[ACL, ...], perm: int, ids: Iterable[Id], path: str) -> None:
        """Raise unless ``ids`` may do ``perm`` on a node with ``acl``.

        Raises:
            NoAuthError: no entry grants ``perm`` to any of ``ids``.
        """
        if self.skip_acl or not acl:
            return
        ids = tuple(ids)
        for ident in ids:
            if ident.scheme == "super":
                return
        for entry in acl:
            if not entry.perms & perm:
                continue
            acl_id = entry.id
            if acl_id.scheme == "world" and acl_id.id == "anyone":
                return
            scheme = self.schemes.get(acl_id.scheme)
            if scheme is None:
                continue
            for ident in ids:
                if ident.scheme == acl_id.scheme and scheme.matches(ident.id, acl_id.id):
                    return
        raise NoAuthError(path=path)

    def allows(self, acl: tuple[ACL, ...], perm: int, ids: Iterable[Id]) -> bool:
        """Whether :meth:`check` would pass."""
        try:
            self.check(acl, perm, ids, "")
        except NoAuthError:
            return False
        return True

    def fixup(self, acl: tuple[ACL, ...], ids: Iterable[Id], path: str) -> tuple[ACL, ...]:
        """Validate an ACL from a request and expand its ``auth`` entries.

        Raises:
            InvalidACLError: the ACL is empty, names an unknown scheme or a malformed id,
                or uses ``auth`` without an authenticated identity.
        """
        if not acl:
            raise InvalidACLError(path=path)
        out: list[ACL] = []
        for entry in dict.fromkeys(acl):
            scheme_name = entry.id.scheme
            if scheme_name == "world" and entry.id.id == "anyone":
                out.append(entry)
            elif scheme_name == "auth":
                expanded = False
                for ident in ids:
                    scheme = self.schemes.get(ident.scheme)
                    if scheme is not None and scheme.is_authenticated:
                        expanded = True
                        out.append(ACL(entry.perms, ident))
                if not expanded:
                    raise InvalidACLError(path=path)
            else:
                scheme = self.schemes.get(scheme_name)
                if scheme is None or not scheme.is_valid(entry.id.id):
                    raise InvalidACLError(path=path)
                out.append(entry)
        return tuple(dict.fromkeys(out))

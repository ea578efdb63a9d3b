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
``ZooKeeperServer.checkACL``: an empty ACL is invalid; duplicates in the request are
removed; the ``auth`` pseudo-scheme expands to every authenticated identity of the caller
(and is invalid without one) -- after deduplication, so an expansion may repeat an entry
given explicitly, as in ZooKeeper; an Id of an unknown scheme, or one its scheme rejects,
is invalid.

The built-in schemes parse ids exactly as ZooKeeper's providers do, since whether an ACL
is accepted is observable: ``digest`` ids are ``user:hash`` by Java's ``split(":")`` (so
``a:b:`` is valid), ``addauth digest`` takes any text (``user`` is what precedes the first
colon, the hash covers all of it); ``ip`` ids are IPv4 addresses of four decimal parts
(``Integer.parseInt``: a sign and leading zeros allowed) with an optional ``/bits``, and
``addauth ip`` just adds the connection's address. IPv6 ids, which ZooKeeper 3.8 rejects
(added in ZOOKEEPER-4240), are accepted.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
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
    "SaslExchange",
    "SaslScheme",
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
    #: The verified client certificate itself (DER), on TLS transports that ask for one.
    certificate: bytes | None = None


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


class SaslExchange(Protocol):
    """One connection's SASL negotiation (opcode 102), as a :class:`SaslScheme` starts it.

    Sans-IO: :meth:`evaluate` takes the client's token and returns the server's.
    """

    #: Whether the negotiation succeeded (set by the :meth:`evaluate` that completed it).
    complete: bool

    def evaluate(self, token: bytes) -> bytes | None:
        """The server's answer to the client's ``token`` (None: a null token).

        Raises:
            AuthFailedError: the client failed to authenticate (bad credentials, a
                malformed or unexpected token); the server closes the connection.
        """
        ...

    def identities(self) -> list[Id]:
        """The identities the session gains once :attr:`complete` (``sasl:<user>``)."""
        ...


@runtime_checkable
class SaslScheme(Protocol):
    """An :class:`AuthScheme` that also serves SASL exchanges (SASL requests, opcode 102).

    The server starts one exchange per connection, on the first SASL request, with the
    first loaded scheme implementing this protocol.
    """

    name: str

    def start_sasl(self, peer: PeerInfo) -> SaslExchange:
        """A new exchange for a connection from ``peer``."""
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
    return _digest_of(f"{user}:{password}")


def _digest_of(credentials: str) -> str:
    user = credentials.split(":", 1)[0]
    hashed = hashlib.sha1(credentials.encode("utf-8", errors="surrogatepass")).digest()
    return f"{user}:{base64.b64encode(hashed).decode('ascii')}"


def _java_split(text: str, sep: str) -> list[str]:
    """Java's ``String.split`` with a literal separator: trailing empty parts dropped."""
    parts = text.split(sep)
    while parts and not parts[-1]:
        parts.pop()
    return parts if parts else ([text] if not text else [])


_JAVA_INT = re.compile(r"[+-]?[0-9]+")


def _java_int(text: str) -> int | None:
    """``Integer.parseInt`` on ASCII digits, or None where it would throw."""
    if _JAVA_INT.fullmatch(text) is None:
        return None
    value = int(text)
    return value if -(2**31) <= value < 2**31 else None


def _ipv4_bytes(text: str) -> bytes | None:
    """ZooKeeper's ``IPAuthenticationProvider.v4addr2Bytes``."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    out = bytearray()
    for part in parts:
        value = _java_int(part)
        if value is None or not 0 <= value <= 255:
            return None
        out.append(value)
    return bytes(out)


def _address_bytes(text: str) -> bytes | None:
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text).packed
        except ValueError:
            return None
    return _ipv4_bytes(text)


def _ip_pattern(acl_id: str) -> tuple[bytes, int] | None:
    """An ip ACL id as (address bytes, prefix bits), or None if ZooKeeper rejects it."""
    address, sep, bits_text = acl_id.partition("/")
    raw = _address_bytes(address)
    if raw is None:
        return None
    bits = len(raw) * 8
    if sep:
        parsed = _java_int(bits_text)
        if parsed is None or not 0 <= parsed <= bits:
            return None
        bits = parsed
    return raw, bits


def _masked(raw: bytes, bits: int) -> int:
    total = len(raw) * 8
    value = int.from_bytes(raw, "big")
    return value >> (total - bits) if bits else 0


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
        # DigestAuthenticationProvider.generateDigest: never fails, even without a colon.
        text = credentials.decode("utf-8", errors="replace")
        ident = _digest_of(text)
        ids = [Id("digest", ident)]
        if self.super_digest is not None and ident == self.super_digest:
            ids.append(SUPER)
        return ids

    def is_valid(self, acl_id: str) -> bool:
        return len(_java_split(acl_id, ":")) == 2

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
        # As ZooKeeper: ``addauth ip <anything>`` succeeds and adds the connection's address.
        return [Id("ip", peer.host)]

    def is_valid(self, acl_id: str) -> bool:
        return _ip_pattern(acl_id) is not None

    def matches(self, caller_id: str, acl_id: str) -> bool:
        pattern = _ip_pattern(acl_id)
        caller = _address_bytes(caller_id)
        if pattern is None or caller is None or len(caller) != len(pattern[0]):
            return False
        raw, bits = pattern
        return _masked(caller, bits) == _masked(raw, bits)

    def user_name(self, caller_id: str) -> str:
        return caller_id


#: Entries of each identity-keyed cache of :class:`AclPolicy` before it is emptied.
_CACHE_LIMIT = 4096


def _world_perms(acl: tuple[ACL, ...]) -> int:
    """The permissions ``acl`` grants to everyone (its world:anyone entries)."""
    perms = 0
    for entry in acl:
        if entry.id.scheme == "world" and entry.id.id == "anyone":
            perms |= int(entry.perms)
    return perms


class AclPolicy:
    """The registered schemes and the ACL rules built on them.

    Args:
        schemes: the auth schemes by name.
        skip_acl: disable every check (ZooKeeper's unsafe ``zookeeper.skipACL``).
    """

    def __init__(self, schemes: Mapping[str, AuthScheme], *, skip_acl: bool = False) -> None:
        self.schemes = dict(schemes)
        self.skip_acl = skip_acl
        # Hot-path caches keyed by the identity of an ACL tuple (requests decode equal
        # ACLs to one shared tuple, and nodes share the tuple fixup returned), holding
        # the tuple itself so that an id is never reused while its entry lives:
        # what world:anyone is granted, and fixup's result for an ACL without ``auth``
        # entries (a pure function of the ACL and the schemes).
        self._world: dict[int, tuple[tuple[ACL, ...], int]] = {}
        self._fixed: dict[int, tuple[tuple[ACL, ...], tuple[ACL, ...]]] = {}

    def check(self, acl: tuple[ACL, ...], perm: int, ids: Iterable[Id], path: str) -> None:
        """Raise unless ``ids`` may do ``perm`` on a node with ``acl``.

        Raises:
            NoAuthError: no entry grants ``perm`` to any of ``ids``.
        """
        if self.skip_acl or not acl:
            return
        perm = int(perm)  # plain int arithmetic: IntFlag's & is slow on the read path
        known = self._world.get(id(acl))
        if known is None or known[0] is not acl:
            known = (acl, _world_perms(acl))
            if len(self._world) >= _CACHE_LIMIT:
                self._world.clear()
            self._world[id(acl)] = known
        if known[1] & perm:
            return  # world:anyone is granted it: allowed whoever asks
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
        cached = self._fixed.get(id(acl))
        if cached is not None and cached[0] is acl:
            return cached[1]
        fixed = self._fixup(acl, ids, path)
        if all(entry.id.scheme != "auth" for entry in acl):
            if len(self._fixed) >= _CACHE_LIMIT:
                self._fixed.clear()
            self._fixed[id(acl)] = (acl, fixed)
        return fixed

    def _fixup(self, acl: tuple[ACL, ...], ids: Iterable[Id], path: str) -> tuple[ACL, ...]:
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
        return tuple(out)

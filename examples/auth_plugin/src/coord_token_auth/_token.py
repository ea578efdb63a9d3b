"""Ed25519-signed identity tokens and the ``token`` auth scheme built on them."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from coord.protocol import AuthFailedError, Id
from coord.server import PeerInfo

__all__ = ["SCHEME", "TokenError", "TokenScheme", "generate_key", "mint", "public_key_of", "verify"]

#: The ACL scheme name.
SCHEME = "token"
#: Longest token accepted, in bytes (a token is ~150 bytes; this bounds the work).
MAX_TOKEN = 4096
#: What an identity may look like: printable, no spaces or colons, 1 to 128 characters.
IDENTITY = re.compile(r"[A-Za-z0-9._@+/=-]{1,128}")


class TokenError(ValueError):
    """A token is malformed, not signed by a trusted key, or expired."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("not base64url") from exc


def generate_key() -> tuple[str, str]:
    """A new key pair: ``(private key, public key)``, each as base64url of the raw 32 bytes."""
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return _b64encode(raw), public_key_of(_b64encode(raw))


def public_key_of(private_key: str) -> str:
    """The base64url public key of a base64url private key."""
    private = Ed25519PrivateKey.from_private_bytes(_b64decode(private_key))
    return _b64encode(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def mint(
    private_key: str, subject: str, *, lifetime: float = 3600.0, now: float | None = None
) -> str:
    """A token saying ``subject`` until ``now + lifetime``, signed with ``private_key``.

    Raises:
        ValueError: ``subject`` is not a valid identity.
    """
    if IDENTITY.fullmatch(subject) is None:
        raise ValueError(f"invalid identity {subject!r}: use 1-128 of A-Z a-z 0-9 . _ @ + / = -")
    expires = int((time.time() if now is None else now) + lifetime)
    payload = json.dumps({"sub": subject, "exp": expires}, separators=(",", ":")).encode()
    private = Ed25519PrivateKey.from_private_bytes(_b64decode(private_key))
    return f"{_b64encode(payload)}.{_b64encode(private.sign(payload))}"


def verify(
    token: str, public_keys: Iterable[Ed25519PublicKey], *, now: float, leeway: float = 0.0
) -> str:
    """The identity a token carries, once its signature and expiry are checked.

    Raises:
        TokenError: the token is malformed, no key verifies its signature, or it expired
            more than ``leeway`` seconds before ``now``.
    """
    if len(token) > MAX_TOKEN:
        raise TokenError("token too long")
    payload_text, dot, signature_text = token.partition(".")
    if not dot or "." in signature_text:
        raise TokenError("a token is <payload>.<signature>")
    payload, signature = _b64decode(payload_text), _b64decode(signature_text)
    for key in public_keys:
        try:
            key.verify(signature, payload)
            break
        except InvalidSignature:
            continue
    else:
        raise TokenError("signature not made by a trusted key")
    try:
        claims = json.loads(payload)
    except ValueError as exc:
        raise TokenError("payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise TokenError("payload is not a JSON object")
    subject, expires = claims.get("sub"), claims.get("exp")
    if not isinstance(subject, str) or IDENTITY.fullmatch(subject) is None:
        raise TokenError("invalid sub")
    if not isinstance(expires, int) or isinstance(expires, bool):
        raise TokenError("invalid exp")
    if now > expires + leeway:
        raise TokenError("token expired")
    return subject


def load_public_key(text: str) -> Ed25519PublicKey:
    """A base64url raw public key.

    Raises:
        ValueError: not 32 bytes of base64url.
    """
    raw = _b64decode(text)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


class TokenScheme:
    """The ``token`` scheme: ``addauth token <token>`` grants ``token:<sub>``.

    ACL ids are identities (``Id("token", "alice")``) and match the caller's identity
    exactly. Matching and validation are pure functions (every replica agrees); only
    ``authenticate`` looks at the clock, and it runs once, on the server holding the
    connection, whose result (the identity) is what the replicated log carries.

    Args:
        public_keys: base64url raw Ed25519 public keys; a token signed by any is trusted.
        leeway: seconds a token is still accepted after its expiry (clock skew).
        clock: the time source (tests pass a fake one).
    """

    name = SCHEME
    is_authenticated = True

    def __init__(
        self,
        public_keys: Iterable[str],
        *,
        leeway: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = [load_public_key(k) for k in public_keys]
        if not self._keys:
            raise ValueError("at least one public key is needed")
        self.leeway = leeway
        self.clock = clock

    def connection_ids(self, peer: PeerInfo) -> list[Id]:
        return []

    def authenticate(self, peer: PeerInfo, credentials: bytes) -> list[Id]:
        try:
            subject = verify(
                credentials.decode("ascii"), self._keys, now=self.clock(), leeway=self.leeway
            )
        except (TokenError, UnicodeDecodeError) as exc:
            raise AuthFailedError(f"token rejected: {exc}") from None
        return [Id(SCHEME, subject)]

    def is_valid(self, acl_id: str) -> bool:
        return IDENTITY.fullmatch(acl_id) is not None

    def matches(self, caller_id: str, acl_id: str) -> bool:
        return caller_id == acl_id

    def user_name(self, caller_id: str) -> str:
        return caller_id

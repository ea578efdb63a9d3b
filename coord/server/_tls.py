"""TLS for the server: ``ssl.SSLContext`` from settings, certificate hot reload, and the
``x509`` auth scheme (identity from the client certificate).

Theory of operation
-------------------
:class:`TlsSettings` is the TLS part of :class:`~coord.server.ServerConfig` (certificate,
key, client CA bundle, client-auth mode, minimum version). :func:`server_context` and
:func:`client_context` turn it into contexts: the first for the ``tls`` client transport
(:mod:`coord.plugins.builtin.tls`), both for links between servers, where each side
presents its certificate and verifies the other's against the same CA bundle.

Hot reload (:class:`CertificateReloader`): the files are re-read every
``tls_reload_interval`` seconds and compared by content hash, not by mtime, so a
rename-over, an in-place rewrite within the same second and a symlink swap (Kubernetes
secrets) are all seen. A changed set is loaded into a *new* context; only handshakes
started afterwards use it, since an established connection's ``SSLObject`` keeps the
context it was made with. A set that fails to load (a key written before its certificate,
a typo) is logged and the previous context stays in service; it is retried when the files
change again.

x509 identities (:class:`X509Scheme`): a connection that presented a verified client
certificate has the identity ``x509:<id>``, where the id is, by default, the subject's
distinguished name in RFC 2253 form (``CN=alice,O=Example``), as ZooKeeper's
``X509AuthenticationProvider`` takes ``X500Principal.getName()``; ``x509_identity`` picks the
common name or a subject alternative name instead. The identity is set at connection
time, so it is available to the first request; ACL ids are compared as exact strings, as
ZooKeeper does. ``addauth x509`` (any credentials) succeeds only on a connection with a
certificate and adds nothing new.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coord.protocol import AuthFailedError, Id

from ._acl import PeerInfo

if TYPE_CHECKING:
    from ._config import ServerConfig

__all__ = [
    "CertificateReloader",
    "TlsSettings",
    "X509Scheme",
    "certificate_identity",
    "client_context",
    "server_context",
]

log = logging.getLogger("coord.server")

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {"need": ssl.CERT_REQUIRED, "want": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """The TLS settings of a server (see :class:`~coord.server.ServerConfig`).

    Attributes:
        cert: PEM file with the certificate chain (leaf first); may also hold the key.
        key: PEM file with the private key; None if it is in ``cert``.
        key_password: password of an encrypted key.
        ca: PEM bundle of the CAs trusted for the other side's certificate.
        client_auth: ``"need"``, ``"want"`` or ``"none"`` (for :func:`server_context`).
        min_version: ``"1.2"`` or ``"1.3"``.
    """

    cert: str
    key: str | None = None
    key_password: str | None = None
    ca: str | None = None
    client_auth: str = "need"
    min_version: str = "1.2"

    @classmethod
    def from_config(cls, config: ServerConfig) -> TlsSettings:
        """The settings in ``config``'s ``tls_*`` fields.

        Raises:
            ValueError: ``tls_cert`` is not set.
        """
        if not config.tls_cert:
            raise ValueError("tls_cert is not set")
        return cls(
            cert=config.tls_cert,
            key=config.tls_key,
            key_password=config.tls_key_password,
            ca=config.tls_ca,
            client_auth=config.tls_client_auth,
            min_version=config.tls_min_version,
        )

    @property
    def files(self) -> tuple[str, ...]:
        """The files the settings read (watched by :class:`CertificateReloader`)."""
        return tuple(f for f in (self.cert, self.key, self.ca) if f)


def _load(context: ssl.SSLContext, settings: TlsSettings) -> None:
    for name in settings.files:
        # ssl's own errors for missing files do not name them.
        with open(name, "rb"):
            pass
    context.minimum_version = _VERSIONS[settings.min_version]
    try:
        context.load_cert_chain(settings.cert, settings.key, settings.key_password)
    except ssl.SSLError as exc:
        raise ssl.SSLError(
            exc.errno,
            f"cannot load the certificate {settings.cert!r}"
            + (f" with the key {settings.key!r}" if settings.key else "")
            + f": {exc.reason or exc} (a PEM certificate chain and its private key?)",
        ) from None


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """A server-side context: presents ``cert``, asks for client certificates per
    ``client_auth`` and verifies them against ``ca``.

    Raises:
        OSError: a file cannot be read.
        ssl.SSLError: a file is not valid PEM, or the key does not match the certificate.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load(context, settings)
    context.verify_mode = _CLIENT_AUTH[settings.client_auth]
    if settings.ca:
        context.load_verify_locations(cafile=settings.ca)
    return context


def client_context(settings: TlsSettings, *, check_hostname: bool = True) -> ssl.SSLContext:
    """A client-side context for links between servers: presents ``cert`` and verifies the
    server against ``ca`` (the system CAs when unset).

    Args:
        settings: the server's TLS settings.
        check_hostname: check that the peer's certificate names the host dialled.

    Raises:
        OSError: a file cannot be read.
        ssl.SSLError: a file is not valid PEM, or the key does not match the certificate.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _load(context, settings)
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if settings.ca:
        context.load_verify_locations(cafile=settings.ca)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return context


class CertificateReloader:
    """The current server context, rebuilt when the certificate files change.

    Args:
        settings: what to load.

    Raises:
        OSError, ssl.SSLError: the initial load fails (as :func:`server_context`).
    """

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self._seen = self._fingerprint()
        #: The context new handshakes use.
        self.context = server_context(settings)
        #: How many times a changed set of files was loaded (0: the initial one).
        self.generation = 0

    def _fingerprint(self) -> bytes:
        digest = hashlib.sha256()
        for name in self.settings.files:
            try:
                with open(name, "rb") as fh:
                    digest.update(fh.read())
            except OSError as exc:
                digest.update(f"unreadable: {exc.errno}".encode())
            digest.update(b"\0")
        return digest.digest()

    def check(self) -> bool:
        """Reload if the files changed since the last look; True when a new context is in use.

        A set that does not load is logged once (until the files change again); the
        previous context stays in service.
        """
        seen = self._fingerprint()
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            context = server_context(self.settings)
        except (OSError, ssl.SSLError) as exc:
            log.error("TLS certificate files changed but do not load (keeping the old): %s", exc)
            return False
        self.context = context
        self.generation += 1
        log.info("TLS certificate reloaded from %s", self.settings.cert)
        return True


# --- x509 identities ---------------------------------------------------------------------


def certificate_identity(der: bytes, kind: str = "dn") -> str | None:
    """The x509 identity of a DER certificate, or None if it has none of that kind.

    Args:
        der: the certificate.
        kind: ``"dn"`` (subject DN, RFC 2253: ``CN=alice,O=Example``), ``"cn"``, or the
            first subject alternative name of a kind: ``"san-dns"``, ``"san-uri"``,
            ``"san-email"``, ``"san-ip"``.

    Raises:
        ValueError: ``der`` is not a certificate, or ``kind`` is unknown.
    """
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    if kind == "dn":
        return cert.subject.rfc4514_string()
    if kind == "cn":
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None
    san_types: dict[str, type[x509.GeneralName]] = {
        "san-dns": x509.DNSName,
        "san-uri": x509.UniformResourceIdentifier,
        "san-email": x509.RFC822Name,
        "san-ip": x509.IPAddress,
    }
    if kind not in san_types:
        raise ValueError(f"unknown x509 identity kind {kind!r}")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    values = san.get_values_for_type(san_types[kind])  # type: ignore[arg-type]
    return str(values[0]) if values else None


class X509Scheme:
    """``x509``: the identity of a connection's verified client certificate.

    Args:
        kind: what the identity is (see :func:`certificate_identity`).
        superuser: an identity that is superuser (ZooKeeper's
            ``zookeeper.X509AuthenticationProvider.superUser``).
    """

    name = "x509"
    is_authenticated = True

    def __init__(self, kind: str = "dn", superuser: str | None = None) -> None:
        self.kind = kind
        self.superuser = superuser

    def _identity(self, peer: PeerInfo) -> str | None:
        if peer.certificate is None:
            return None
        try:
            return certificate_identity(peer.certificate, self.kind)
        except ValueError:
            return None

    def connection_ids(self, peer: PeerInfo) -> list[Id]:
        identity = self._identity(peer)
        if identity is None:
            return []
        ids = [Id("x509", identity)]
        if self.superuser is not None and identity == self.superuser:
            ids.append(Id("super", ""))
        return ids

    def authenticate(self, peer: PeerInfo, credentials: bytes) -> list[Id]:
        ids = self.connection_ids(peer)
        if not ids:
            raise AuthFailedError("x509 needs a TLS connection with a client certificate")
        return ids

    def is_valid(self, acl_id: str) -> bool:
        return bool(acl_id)

    def matches(self, caller_id: str, acl_id: str) -> bool:
        return caller_id == acl_id

    def user_name(self, caller_id: str) -> str:
        return caller_id

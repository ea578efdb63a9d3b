"""``coord certs``: a development certificate authority and server/client certificates.

Everything is PEM, made with ``cryptography``: EC P-256 keys (unencrypted, mode 0600),
SHA-256 signatures. The CA (``ca.pem``, ``ca-key.pem``) is created on the first run and
reused afterwards, so running the command again issues more certificates from the same CA
(and re-issues the named ones, which a running server picks up by hot reload).

For each certificate ``NAME`` three files are written: ``NAME.pem`` (the certificate),
``NAME-key.pem`` (its key) and ``NAME-keystore.pem`` (key and certificate in one file, the
layout Java's ``zookeeper.ssl.keyStore.type=PEM`` reads). Server certificates carry the
hosts as subject alternative names (DNS names and IP addresses) and both the serverAuth
and clientAuth key usages, so the same certificate serves links between servers; client
certificates carry clientAuth and their name as a DNS SAN, with the subject
``CN=<name>[,O=<org>]`` that the ``x509`` auth scheme turns into ``x509:CN=<name>...``.

Not for production: the CA key lies next to the certificates, unencrypted.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from coord.tools._common import ToolError

__all__ = ["CertFiles", "DevPki", "create_dev_pki"]

_Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class CertFiles:
    """The files of one issued certificate."""

    name: str
    subject: str
    cert: Path
    key: Path
    keystore: Path


@dataclass(slots=True)
class DevPki:
    """What :func:`create_dev_pki` wrote."""

    directory: Path
    ca: Path
    ca_key: Path
    ca_created: bool
    server: CertFiles | None = None
    clients: list[CertFiles] = field(default_factory=list)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str, org: str | None) -> x509.Name:
    # Most general first, as X.509 orders them; the RFC 2253 string reverses it, giving
    # CN=<name>,O=<org> -- the x509 identity.
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)  # atomic: a server reloading the files never sees half of one


def _key_pem(key: _Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _new_ca(common_name: str, days: int) -> tuple[_Key, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(common_name, None)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(
    ca_key: _Key,
    ca: x509.Certificate,
    subject: x509.Name,
    sans: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
    days: int,
) -> tuple[_Key, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _check_name(name: str, what: str) -> None:
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise ToolError(f"{what} {name!r} cannot be used as a file name")


def _load_ca(ca_path: Path, key_path: Path) -> tuple[_Key, x509.Certificate]:
    try:
        cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ToolError(f"cannot reuse the CA in {ca_path.parent}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ToolError(f"{key_path} is not an EC key made by coord certs")
    return key, cert


def _write_leaf(directory: Path, name: str, key: _Key, cert: x509.Certificate) -> CertFiles:
    files = CertFiles(
        name=name,
        subject=cert.subject.rfc4514_string(),
        cert=directory / f"{name}.pem",
        key=directory / f"{name}-key.pem",
        keystore=directory / f"{name}-keystore.pem",
    )
    _write(files.key, _key_pem(key), secret=True)
    _write(files.cert, _cert_pem(cert), secret=False)
    _write(files.keystore, _key_pem(key) + _cert_pem(cert), secret=True)
    return files


def create_dev_pki(
    directory: str | os.PathLike[str],
    *,
    server: str | None = "server",
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
    clients: tuple[str, ...] = ("client",),
    org: str | None = None,
    days: int = 365,
    ca_name: str = "coord development CA",
) -> DevPki:
    """Create (or reuse) a development CA in ``directory`` and issue certificates from it.

    Args:
        directory: where the PEM files go (created if missing).
        server: file name of the server certificate (None: issue none); its subject is
            ``CN=<first host>``.
        hosts: the server certificate's subject alternative names (names and addresses).
        clients: names of client certificates to issue (subject ``CN=<name>[,O=<org>]``).
        org: an organisation name added to client subjects.
        days: validity of the issued certificates (the CA: ten times as long).
        ca_name: the CA's common name, when it is created.

    Returns:
        The paths written.

    Raises:
        ToolError: a name cannot be a file name, ``days`` is not positive, there is no
            host for the server certificate, or an existing CA cannot be read.
    """
    if days <= 0:
        raise ToolError(f"--days must be positive, not {days}")
    if server is not None:
        _check_name(server, "server name")
        if not hosts:
            raise ToolError("the server certificate needs at least one --host")
    for client in clients:
        _check_name(client, "client name")
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    ca_path, ca_key_path = base / "ca.pem", base / "ca-key.pem"
    created = not (ca_path.exists() and ca_key_path.exists())
    if created:
        ca_key, ca = _new_ca(ca_name, days * 10)
        _write(ca_key_path, _key_pem(ca_key), secret=True)
        _write(ca_path, _cert_pem(ca), secret=False)
    else:
        ca_key, ca = _load_ca(ca_path, ca_key_path)
    result = DevPki(base, ca_path, ca_key_path, created)
    if server is not None:
        key, cert = _issue(
            ca_key,
            ca,
            _name(hosts[0], None),
            [_general_name(h) for h in dict.fromkeys(hosts)],
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            days,
        )
        result.server = _write_leaf(base, server, key, cert)
    for client in dict.fromkeys(clients):
        key, cert = _issue(
            ca_key,
            ca,
            _name(client, org),
            [x509.DNSName(client)],
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            days,
        )
        result.clients.append(_write_leaf(base, client, key, cert))
    return result


def usage_text(pki: DevPki) -> str:
    """How to use the files: server settings, kazoo, the SDK and zkCli.sh."""
    d = pki.directory.resolve()
    lines = [f"CA: {pki.ca} ({'created' if pki.ca_created else 'reused'})"]
    if pki.server is not None:
        lines.append(f"server: {pki.server.cert}, {pki.server.key} ({pki.server.subject})")
    for client in pki.clients:
        lines.append(f"client: {client.cert}, {client.key} (identity x509:{client.subject})")
    if pki.server is not None:
        lines += [
            "",
            "coord server (TOML, or the same as --flags / COORD_* variables):",
            "  secure_port = 2281",
            f'  tls_cert = "{d / pki.server.cert.name}"',
            f'  tls_key = "{d / pki.server.key.name}"',
            f'  tls_ca = "{d / pki.ca.name}"',
        ]
    if pki.clients:
        c = pki.clients[0]
        cert, key, ks = d / c.cert.name, d / c.key.name, d / c.keystore.name
        lines += [
            "",
            "coord SDK:",
            f'  coord.connect("127.0.0.1:2281", tls=TlsOptions(ca="{d / "ca.pem"}", '
            f'cert="{cert}", key="{key}"))',
            "kazoo:",
            f'  KazooClient("127.0.0.1:2281", use_ssl=True, ca="{d / "ca.pem"}", '
            f'certfile="{cert}", keyfile="{key}")',
            "zkCli.sh (ZooKeeper 3.8, PEM stores):",
            "  CLIENT_JVMFLAGS="
            + " ".join(
                [
                    "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
                    "-Dzookeeper.client.secure=true",
                    f"-Dzookeeper.ssl.keyStore.location={ks}",
                    "-Dzookeeper.ssl.keyStore.type=PEM",
                    f"-Dzookeeper.ssl.trustStore.location={d / 'ca.pem'}",
                    "-Dzookeeper.ssl.trustStore.type=PEM",
                ]
            ),
            "  zkCli.sh -server 127.0.0.1:2281",
        ]
    return "\n".join(lines)

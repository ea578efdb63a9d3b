"""TLS against Apache ZooKeeper 3.8 (Netty, ``secureClientPort``, PEM key and trust stores):
the server's certificate is verified, a client certificate is presented and accepted
(``ssl.clientAuth=need``), and a server signed by another CA is refused with a clear error.

These tests need ZooKeeper and are skipped without it; the SDK against coord's own TLS
port is tested in tests/plugins/test_tls_transport.py.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import coord
from coord.client import TlsOptions
from coord.protocol import ConnectionLossError
from coord.testing import ZooKeeperProcess, require_zookeeper

pytestmark = pytest.mark.anyio


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, name: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


@dataclass
class Pki:
    """PEM files: the CA, the server's and the client's key+cert, and a foreign CA."""

    ca: Path
    server: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca_key, ca = _ca("coord test CA")
    server_key, server = _leaf(ca_key, ca, "localhost")
    client_key, client = _leaf(ca_key, ca, "coord-client")
    _, other = _ca("another CA")
    files = Pki(
        ca=base / "ca.pem",
        server=base / "server.pem",
        client_cert=base / "client.pem",
        client_key=base / "client-key.pem",
        other_ca=base / "other-ca.pem",
    )
    files.ca.write_bytes(_pem_cert(ca))
    # ZooKeeper's PEM key store: the private key and the certificate chain in one file.
    files.server.write_bytes(_pem_key(server_key) + _pem_cert(server))
    files.client_cert.write_bytes(_pem_cert(client))
    files.client_key.write_bytes(_pem_key(client_key))
    files.other_ca.write_bytes(_pem_cert(other))
    return files


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class SecureZooKeeper:
    process: ZooKeeperProcess
    secure_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.secure_port}"


@pytest.fixture(scope="module")
def secure_zookeeper(pki: Pki) -> Iterator[SecureZooKeeper]:
    """ZooKeeper 3.8 with a TLS client port that requires a client certificate."""
    require_zookeeper()
    secure_port = _free_port()
    zk = ZooKeeperProcess(
        tick_time=500,
        extra_config={"secureClientPort": secure_port},
        system_properties={
            "zookeeper.serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
            "zookeeper.ssl.keyStore.location": pki.server,
            "zookeeper.ssl.keyStore.type": "PEM",
            "zookeeper.ssl.trustStore.location": pki.ca,
            "zookeeper.ssl.trustStore.type": "PEM",
            "zookeeper.ssl.clientAuth": "need",
        },
    )
    try:
        zk.start()
    except Exception as exc:  # pragma: no cover - depends on the JVM
        pytest.skip(f"ZooKeeper with TLS did not start: {exc}")
    with zk:
        yield SecureZooKeeper(zk, secure_port)


def client_tls(pki: Pki, **overrides: object) -> TlsOptions:
    options: dict[str, object] = {
        "ca": pki.ca,
        "cert": pki.client_cert,
        "key": pki.client_key,
    }
    options.update(overrides)
    return TlsOptions(**options)  # type: ignore[arg-type]


async def test_Client_tls_verifies_server_and_presents_client_certificate(
    secure_zookeeper: SecureZooKeeper, pki: Pki
) -> None:
    """With the right CA and a client certificate, the session works over TLS."""
    async with coord.connect(
        secure_zookeeper.address, session_timeout=5, tls=client_tls(pki)
    ) as zk:
        path = await zk.create("/tls-node", b"secret", ephemeral=True)
        assert (await zk.get(path))[0] == b"secret"
        identities = await zk.whoami()
        assert any(info.auth_scheme == "x509" for info in identities)


async def test_Client_tls_accepts_an_ssl_context(
    secure_zookeeper: SecureZooKeeper, pki: Pki
) -> None:
    """``tls=`` also takes a ready ``ssl.SSLContext``."""
    context = client_tls(pki).context()
    async with coord.connect(secure_zookeeper.address, session_timeout=5, tls=context) as zk:
        assert await zk.exists("/") is not None


async def test_Client_tls_wrong_ca_is_refused_with_a_clear_error(
    secure_zookeeper: SecureZooKeeper, pki: Pki
) -> None:
    """A server whose certificate the client's CA did not sign is never talked to."""
    with pytest.raises(ConnectionLossError, match="certificate") as info:
        with anyio.fail_after(10):
            async with coord.connect(
                secure_zookeeper.address,
                session_timeout=1,
                tls=client_tls(pki, ca=pki.other_ca),
            ):
                pass
    assert "TLS" in str(info.value)


async def test_Client_tls_server_requires_client_certificate(
    secure_zookeeper: SecureZooKeeper, pki: Pki
) -> None:
    """Without a client certificate, ZooKeeper (clientAuth=need) refuses the connection."""
    with pytest.raises(ConnectionLossError):
        with anyio.fail_after(10):
            async with coord.connect(
                secure_zookeeper.address,
                session_timeout=1,
                tls=client_tls(pki, cert=None, key=None),
            ):
                pass


async def test_Client_tls_to_plain_port_fails(secure_zookeeper: SecureZooKeeper, pki: Pki) -> None:
    """TLS against the plain client port fails instead of hanging."""
    with pytest.raises(ConnectionLossError):
        with anyio.fail_after(10):
            async with coord.connect(
                secure_zookeeper.process.address, session_timeout=1, tls=client_tls(pki)
            ):
                pass

"""The ``tls`` transport and the ``x509`` scheme, against a real server on 127.0.0.1 with
certificates from ``coord certs`` (:func:`coord.tools._certs.create_dev_pki`).

Rules under test: the TLS port serves the same protocol with the server certificate; client
certificates are required, optional or ignored as configured and always verified against
the CA bundle; a verified certificate gives the connection the identity ``x509:<DN>``
usable in ACLs; changed certificate files are used by new handshakes while established
connections carry on; a stalled TLS handshake is cut off; bad settings stop start-up.
"""

from __future__ import annotations

import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography import x509

import coord
from coord.client import TlsOptions
from coord.plugins.builtin.tls import TlsTransport
from coord.protocol import ACL, ConnectionLossError, Id, NoAuthError, Perm
from coord.server import ServerConfig
from coord.server._config import ConfigError
from coord.server._tls import (
    CertificateReloader,
    TlsSettings,
    X509Scheme,
    certificate_identity,
    client_context,
)
from coord.testing import running_server
from coord.tools._certs import DevPki, create_dev_pki

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return create_dev_pki(
        tmp_path_factory.mktemp("pki"), clients=("alice", "bob"), org="Example", days=2
    )


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """Certificates from another CA (not trusted by the server)."""
    return create_dev_pki(tmp_path_factory.mktemp("foreign"), clients=("mallory",), days=2)


def _tls_config(pki: DevPki, **overrides: Any) -> dict[str, Any]:
    assert pki.server is not None
    config: dict[str, Any] = {
        "secure_port": 0,
        "tls_cert": str(pki.server.cert),
        "tls_key": str(pki.server.key),
        "tls_ca": str(pki.ca),
        "tick_time": 500,
    }
    config.update(overrides)
    return config


def _tls_transport(server: Any) -> TlsTransport:
    (transport,) = [t for t in server.transports if isinstance(t, TlsTransport)]
    return transport


def _secure_address(server: Any) -> str:
    host, port = _tls_transport(server).addresses[0]
    return f"{host}:{port}"


def _client_tls(pki: DevPki, name: str | None = "alice", **overrides: Any) -> TlsOptions:
    options: dict[str, Any] = {"ca": pki.ca}
    if name is not None:
        (files,) = [c for c in pki.clients if c.name == name]
        options.update(cert=files.cert, key=files.key)
    options.update(overrides)
    return TlsOptions(**options)


@pytest.fixture
async def tls_server(pki: DevPki) -> AsyncIterator[Any]:
    async with running_server(**_tls_config(pki)) as server:
        yield server


async def _assert_plain_port_works(server: Any) -> None:
    host, port = server.addresses[0]
    async with coord.connect(f"{host}:{port}", session_timeout=5) as zk:
        assert await zk.exists("/") is not None


async def test_TlsTransport_serves_the_protocol_and_sets_the_x509_identity(
    tls_server: Any, pki: DevPki
) -> None:
    """Over TLS with a client certificate the session works and whoami shows x509:<DN>."""
    async with coord.connect(
        _secure_address(tls_server), session_timeout=5, tls=_client_tls(pki)
    ) as zk:
        await zk.create("/tls", b"over tls")
        assert (await zk.get("/tls"))[0] == b"over tls"
        identities = {(i.auth_scheme, i.user) for i in await zk.whoami()}
        assert ("x509", "CN=alice,O=Example") in identities
        assert ("ip", "127.0.0.1") in identities
    await _assert_plain_port_works(tls_server)


async def test_TlsTransport_client_certificate_required_by_default(
    tls_server: Any, pki: DevPki
) -> None:
    """tls_client_auth="need": a client without a certificate is refused; others carry on."""
    with pytest.raises(ConnectionLossError):
        with anyio.fail_after(10):
            async with coord.connect(
                _secure_address(tls_server), session_timeout=1, tls=_client_tls(pki, None)
            ):
                pass
    async with coord.connect(
        _secure_address(tls_server), session_timeout=5, tls=_client_tls(pki)
    ) as zk:
        assert await zk.exists("/") is not None


async def test_TlsTransport_client_certificate_from_another_CA_is_refused(
    tls_server: Any, pki: DevPki, foreign: DevPki
) -> None:
    """A client certificate the CA bundle did not sign never gets a session."""
    mallory = foreign.clients[0]
    with pytest.raises(ConnectionLossError):
        with anyio.fail_after(10):
            async with coord.connect(
                _secure_address(tls_server),
                session_timeout=1,
                tls=TlsOptions(ca=pki.ca, cert=mallory.cert, key=mallory.key),
            ):
                pass
    assert not [c for c in tls_server.connections if c.peer.certificate is not None]


async def test_TlsTransport_client_auth_want_makes_the_certificate_optional(
    pki: DevPki,
) -> None:
    """tls_client_auth="want": no certificate, no x509 identity; a certificate is used."""
    async with running_server(**_tls_config(pki, tls_client_auth="want")) as server:
        address = _secure_address(server)
        async with coord.connect(address, session_timeout=5, tls=_client_tls(pki, None)) as zk:
            schemes = {i.auth_scheme for i in await zk.whoami()}
            assert "x509" not in schemes
        async with coord.connect(address, session_timeout=5, tls=_client_tls(pki, "bob")) as zk:
            users = {i.user for i in await zk.whoami() if i.auth_scheme == "x509"}
            assert users == {"CN=bob,O=Example"}


async def test_TlsTransport_client_auth_none_with_no_CA(pki: DevPki) -> None:
    """tls_client_auth="none" needs no CA bundle: encryption only."""
    config = _tls_config(pki, tls_client_auth="none", tls_ca=None)
    async with (
        running_server(**config) as server,
        coord.connect(_secure_address(server), session_timeout=5, tls=_client_tls(pki)) as zk,
    ):
        assert "x509" not in {i.auth_scheme for i in await zk.whoami()}


async def test_x509_ACL_is_enforced(tls_server: Any, pki: DevPki) -> None:
    """A node whose ACL names x509:CN=alice,... is readable by alice only; ``auth`` expands
    to the x509 identity."""
    address = _secure_address(tls_server)
    alice_acl = [ACL(Perm.ALL, Id("x509", "CN=alice,O=Example"))]
    async with coord.connect(address, session_timeout=5, tls=_client_tls(pki, "alice")) as alice:
        await alice.create("/alice-only", b"secret", acl=alice_acl)
        await alice.create("/alice-auth", b"mine", acl=[ACL(Perm.ALL, Id("auth", ""))])
        assert (await alice.get_acl("/alice-auth"))[0][0].id.scheme == "x509"
        async with coord.connect(address, session_timeout=5, tls=_client_tls(pki, "bob")) as bob:
            with pytest.raises(NoAuthError):
                await bob.get("/alice-only")
            with pytest.raises(NoAuthError):
                await bob.set("/alice-auth", b"stolen")
        assert (await alice.get("/alice-only"))[0] == b"secret"
        assert (await alice.get("/alice-auth"))[0] == b"mine"
    async with coord.connect(tls_server.addresses[0][0] + f":{tls_server.addresses[0][1]}") as zk:
        with pytest.raises(NoAuthError):
            await zk.get("/alice-only")


async def test_x509_superuser_passes_every_check(pki: DevPki) -> None:
    """x509_superuser: that identity is super (ZooKeeper's X509 superUser)."""
    config = _tls_config(pki, x509_superuser="CN=bob,O=Example")
    async with running_server(**config) as server:
        address = _secure_address(server)
        async with coord.connect(address, session_timeout=5, tls=_client_tls(pki, "alice")) as a:
            await a.create("/private", b"x", acl=[ACL(Perm.ALL, Id("x509", "CN=alice,O=Example"))])
        async with coord.connect(address, session_timeout=5, tls=_client_tls(pki, "bob")) as bob:
            assert (await bob.get("/private"))[0] == b"x"


def _server_serial(address: str, pki: DevPki) -> int:
    host, port = address.rsplit(":", 1)
    context = client_context(
        TlsSettings(cert=str(pki.clients[0].cert), key=str(pki.clients[0].key), ca=str(pki.ca))
    )
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_TlsTransport_hot_reload_new_handshakes_use_the_new_certificate(
    pki: DevPki, tmp_path: Path
) -> None:
    """Rewritten certificate files are picked up for new connections; an established TLS
    session keeps working, on the same connection."""
    live = create_dev_pki(tmp_path / "live", clients=(), days=2)
    # The server trusts the module CA for clients, and serves a certificate of `live`'s CA.
    for name in ("ca.pem", "ca-key.pem"):
        shutil.copy(pki.directory / name, tmp_path / "live" / name)
    live = create_dev_pki(tmp_path / "live", clients=(), days=2)
    assert live.server is not None
    config = _tls_config(pki, tls_cert=str(live.server.cert), tls_key=str(live.server.key))
    config["tls_reload_interval"] = 0.05
    async with running_server(**config) as server:
        address = _secure_address(server)
        transport = _tls_transport(server)
        before = await anyio.to_thread.run_sync(_server_serial, address, pki)
        async with coord.connect(address, session_timeout=5, tls=_client_tls(pki)) as zk:
            await zk.create("/before", b"1")
            (connection,) = [c for c in server.connections if c.peer.certificate]
            # Re-issue the server certificate from the same CA (files replaced atomically).
            create_dev_pki(tmp_path / "live", clients=(), days=2)
            with anyio.fail_after(10):
                await transport.wait_reloaded()
            assert transport.reloader is not None and transport.reloader.generation == 1
            after = await anyio.to_thread.run_sync(_server_serial, address, pki)
            assert after != before
            await zk.create("/after", b"2")
            assert next(c for c in server.connections if c.peer.certificate) is connection
            assert zk.session_id == connection.session_id


def test_CertificateReloader_keeps_the_old_context_when_new_files_do_not_load(
    pki: DevPki, tmp_path: Path
) -> None:
    """A key that does not match its certificate (half-written update) is not loaded."""
    assert pki.server is not None
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(pki.server.cert, cert)
    shutil.copy(pki.server.key, key)
    reloader = CertificateReloader(TlsSettings(cert=str(cert), key=str(key), ca=str(pki.ca)))
    original = reloader.context
    assert not reloader.check()
    shutil.copy(pki.clients[0].key, key)  # the wrong key
    assert not reloader.check()
    assert reloader.context is original and reloader.generation == 0
    shutil.copy(pki.server.key, key)  # fixed
    assert reloader.check()
    assert reloader.context is not original and reloader.generation == 1


async def test_TlsTransport_stalled_tls_handshake_is_cut_off(pki: DevPki) -> None:
    """A client that connects to the TLS port and says nothing is closed after
    handshake_timeout; the server keeps serving."""
    async with running_server(**_tls_config(pki, handshake_timeout=0.3)) as server:
        host, port = _tls_transport(server).addresses[0]
        async with await anyio.connect_tcp(host, port) as stream:
            with anyio.fail_after(5):
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await stream.receive()
        async with coord.connect(
            _secure_address(server), session_timeout=5, tls=_client_tls(pki)
        ) as zk:
            assert await zk.exists("/") is not None


async def test_TlsTransport_plain_client_on_tls_port_is_closed(tls_server: Any) -> None:
    """A plain ZooKeeper handshake on the TLS port fails the TLS handshake: closed."""
    host, port = _tls_transport(tls_server).addresses[0]
    with pytest.raises(ConnectionLossError):
        with anyio.fail_after(10):
            async with coord.connect(f"{host}:{port}", session_timeout=1):
                pass
    await _assert_plain_port_works(tls_server)


async def test_TlsTransport_minimum_version(pki: DevPki) -> None:
    """tls_min_version="1.3" refuses a TLS 1.2 client."""
    async with running_server(**_tls_config(pki, tls_min_version="1.3")) as server:
        old = _client_tls(pki).context()
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ConnectionLossError):
            with anyio.fail_after(10):
                async with coord.connect(_secure_address(server), session_timeout=1, tls=old):
                    pass
        async with coord.connect(
            _secure_address(server), session_timeout=5, tls=_client_tls(pki)
        ) as zk:
            assert await zk.exists("/") is not None


async def test_TlsTransport_tls_only_when_tcp_is_disabled(pki: DevPki) -> None:
    """plugins_disabled=["builtin.tcp"]: the TLS port is the only one."""
    async with running_server(**_tls_config(pki, plugins_disabled=("builtin.tcp",))) as server:
        assert server.addresses == _tls_transport(server).addresses
        async with coord.connect(
            _secure_address(server), session_timeout=5, tls=_client_tls(pki)
        ) as zk:
            assert await zk.exists("/") is not None


async def test_TlsTransport_unloadable_certificate_stops_start_up(
    pki: DevPki, tmp_path: Path
) -> None:
    """A certificate file that is not PEM fails start-up with a message naming it."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(BaseException) as info:  # raised through a task group
        async with running_server(**_tls_config(pki, tls_cert=str(bad), tls_key=None)):
            pass
    leaves = [info.value]
    while isinstance(leaves[-1], BaseExceptionGroup):
        leaves.append(leaves[-1].exceptions[0])
    assert isinstance(leaves[-1], ConfigError)
    assert str(bad) in str(leaves[-1])


def test_coord_server_with_a_missing_certificate_exits_2(tmp_path: Path) -> None:
    """From the command line, an unreadable certificate is a one-line error, status 2."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    result = subprocess.run(
        [sys.executable, "-m", "coord", "server", "--storage", "memory", "--port", "0",
         "--secure-port", "0", "--tls-cert", str(tmp_path / "missing.pem"),
         "--tls-client-auth", "none"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("coord: the TLS certificate files")
    assert "missing.pem" in result.stderr


def test_ServerConfig_tls_settings_are_validated() -> None:
    """secure_port needs a certificate, and a CA unless client auth is off."""
    with pytest.raises(ConfigError, match="tls_cert"):
        ServerConfig(secure_port=2281)
    with pytest.raises(ConfigError, match="tls_ca"):
        ServerConfig(secure_port=2281, tls_cert="server.pem")
    with pytest.raises(ConfigError, match="tls_client_auth"):
        ServerConfig(tls_client_auth="maybe")
    with pytest.raises(ConfigError, match="tls_min_version"):
        ServerConfig(tls_min_version="1.1")
    with pytest.raises(ConfigError, match="x509_identity"):
        ServerConfig(x509_identity="serial")
    with pytest.raises(ConfigError, match="secure_port"):
        ServerConfig(port=2281, secure_port=2281, tls_cert="s.pem", tls_client_auth="none")
    ServerConfig(secure_port=2281, tls_cert="server.pem", tls_client_auth="none")


def test_certificate_identity_kinds(pki: DevPki) -> None:
    """x509_identity picks the DN, the CN or a subject alternative name."""
    alice = x509.load_pem_x509_certificate(pki.clients[0].cert.read_bytes())
    from cryptography.hazmat.primitives.serialization import Encoding

    der = alice.public_bytes(Encoding.DER)
    assert certificate_identity(der, "dn") == "CN=alice,O=Example"
    assert certificate_identity(der, "cn") == "alice"
    assert certificate_identity(der, "san-dns") == "alice"
    assert certificate_identity(der, "san-uri") is None
    scheme = X509Scheme("cn")
    from coord.server import PeerInfo

    ids = scheme.connection_ids(PeerInfo("127.0.0.1", 1, certificate=der))
    assert ids == [Id("x509", "alice")]
    assert scheme.connection_ids(PeerInfo("127.0.0.1", 1)) == []


async def test_TlsTransport_handshake_flood_past_the_per_ip_limit_is_refused(pki: DevPki) -> None:
    """At most max_client_connections TLS handshakes per address may be pending; more
    connections are closed at once, and the server still serves TLS afterwards."""
    config = _tls_config(pki, max_client_connections=3, handshake_timeout=2.0)
    async with running_server(**config) as server:
        host, port = _tls_transport(server).addresses[0]
        stalled = [await anyio.connect_tcp(host, port) for _ in range(3)]
        await anyio.wait_all_tasks_blocked()
        extra = await anyio.connect_tcp(host, port)
        with anyio.fail_after(1):  # closed at once, long before the handshake deadline
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await extra.receive()
        await extra.aclose()
        for stream in stalled:
            await stream.aclose()
        with anyio.fail_after(10):
            async with coord.connect(
                _secure_address(server), session_timeout=5, tls=_client_tls(pki)
            ) as zk:
                assert await zk.exists("/") is not None


def test_server_and_client_contexts_authenticate_each_other(pki: DevPki, foreign: DevPki) -> None:
    """The contexts for links between servers: both sides present the server certificate
    and verify the other against the CA (mutual TLS); a peer from another CA is refused."""
    import threading

    assert pki.server is not None
    settings = TlsSettings(cert=str(pki.server.cert), key=str(pki.server.key), ca=str(pki.ca))
    from coord.server._tls import server_context

    seen: list[str | None] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept(count: int) -> None:
            for _ in range(count):
                conn, _ = listener.accept()
                try:
                    with server_context(settings).wrap_socket(conn, server_side=True) as tls:
                        der = tls.getpeercert(binary_form=True)
                        seen.append(certificate_identity(der, "cn") if der else None)
                        tls.sendall(b"ok")
                except (ssl.SSLError, OSError):
                    seen.append("refused")

        thread = threading.Thread(target=accept, args=(2,))
        thread.start()
        context = client_context(settings)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.recv(2) == b"ok"
        assert foreign.server is not None
        stranger = client_context(
            TlsSettings(cert=str(foreign.server.cert), key=str(foreign.server.key), ca=str(pki.ca))
        )
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            pytest.raises((ssl.SSLError, OSError)),
            stranger.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.recv(2)
        thread.join(5)
    # The server certificate's CN, presented as a client; then the stranger, refused.
    assert seen == ["localhost", "refused"]

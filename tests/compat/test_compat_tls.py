"""ZooKeeper's own clients over coord's TLS port: kazoo (``use_ssl``) and zkCli.sh (the
Netty client socket with PEM key and trust stores), with client certificates from
``coord certs``; and the x509 identity compared with Apache ZooKeeper 3.8's for the same
certificate (``whoami`` prints the same DN).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compat_support import kazoo_client
from kazoo.exceptions import NoAuthError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import ACL as KazooACL
from kazoo.security import Id as KazooId

from coord.plugins.builtin.tls import TlsTransport
from coord.testing import ZooKeeperProcess, require_zookeeper, run_zkcli
from coord.testing._server import CoordServerThread
from coord.tools._certs import DevPki, create_dev_pki

ALICE = "CN=alice,O=Example"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return create_dev_pki(
        tmp_path_factory.mktemp("pki"), clients=("alice", "bob"), org="Example", days=2
    )


@pytest.fixture(scope="module")
def server(pki: DevPki) -> Iterator[CoordServerThread]:
    assert pki.server is not None
    with CoordServerThread(
        secure_port=0,
        tls_cert=str(pki.server.cert),
        tls_key=str(pki.server.key),
        tls_ca=str(pki.ca),
        tick_time=500,
    ) as server:
        yield server


def _secure(server: CoordServerThread) -> str:
    (transport,) = [t for t in server.server.transports if isinstance(t, TlsTransport)]
    host, port = transport.addresses[0]
    return f"{host}:{port}"


def _files(pki: DevPki, name: str) -> Any:
    (files,) = [c for c in pki.clients if c.name == name]
    return files


def _kazoo_tls(pki: DevPki, name: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"use_ssl": True, "ca": str(pki.ca), "verify_certs": True}
    if name is not None:
        files = _files(pki, name)
        options.update(certfile=str(files.cert), keyfile=str(files.key))
    return options


def _zkcli_tls(pki: DevPki, name: str) -> list[str]:
    """The client JVM's settings for TLS with PEM files (as `coord certs` prints them)."""
    properties = {
        "zookeeper.clientCnxnSocket": "org.apache.zookeeper.ClientCnxnSocketNetty",
        "zookeeper.client.secure": "true",
        "zookeeper.ssl.keyStore.location": _files(pki, name).keystore,
        "zookeeper.ssl.keyStore.type": "PEM",
        "zookeeper.ssl.trustStore.location": pki.ca,
        "zookeeper.ssl.trustStore.type": "PEM",
    }
    return [f"-D{key}={value}" for key, value in properties.items()]


def test_kazoo_over_tls_with_client_certificate(server: CoordServerThread, pki: DevPki) -> None:
    """kazoo with use_ssl and a client certificate works; x509 ACLs apply to it."""
    acl = [KazooACL(31, KazooId("x509", ALICE))]
    with kazoo_client(_secure(server), **_kazoo_tls(pki, "alice")) as alice:
        alice.create("/kazoo-tls", b"alice's", acl=acl)
        assert alice.get("/kazoo-tls")[0] == b"alice's"
        with kazoo_client(_secure(server), **_kazoo_tls(pki, "bob")) as bob:
            with pytest.raises(NoAuthError):
                bob.get("/kazoo-tls")
            with pytest.raises(NoAuthError):
                bob.set("/kazoo-tls", b"bob's")
    assert server.server.state.nodes["/kazoo-tls"].data == b"alice's"


def test_kazoo_over_tls_without_client_certificate_is_refused(
    server: CoordServerThread, pki: DevPki
) -> None:
    """clientAuth need: kazoo without a certificate never gets a session."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=_secure(server), timeout=2, **_kazoo_tls(pki, None))
    try:
        with pytest.raises(KazooTimeoutError):
            client.start(timeout=3)
    finally:
        client.stop()
        client.close()
    with kazoo_client(server.address) as plain:
        assert plain.exists("/") is not None


def test_zkcli_over_tls(server: CoordServerThread, pki: DevPki) -> None:
    """zkCli.sh with the Netty socket and PEM stores: commands work and whoami shows x509."""
    require_zookeeper()
    result = run_zkcli(
        _secure(server),
        "create /zkcli-tls hello",
        "get /zkcli-tls",
        "whoami",
        # zkCli splits ACL lists at commas, so a DN is given through ``auth``.
        "setAcl /zkcli-tls auth::cdrwa",
        "getAcl /zkcli-tls",
        jvm_options=_zkcli_tls(pki, "alice"),
    )
    assert "Created /zkcli-tls" in result[0].stderr, result.raw_stderr
    assert result[1].stdout == "hello"
    assert f"x509: {ALICE}" in result[2].stdout.splitlines()
    # zkCli prints ids URL-encoded (the comma as %2C).
    assert "'x509,'CN=alice%2CO=Example" in result[4].stdout
    denied = run_zkcli(_secure(server), "get /zkcli-tls", jvm_options=_zkcli_tls(pki, "bob"))
    assert "Insufficient permission" in denied.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_x509_identity_is_the_same_as_ZooKeepers(
    server: CoordServerThread, pki: DevPki, tmp_path: Path
) -> None:
    """ZooKeeper 3.8 and coord give the same certificate the same x509 identity."""
    require_zookeeper()
    assert pki.server is not None
    secure_port = _free_port()
    zk = ZooKeeperProcess(
        tick_time=500,
        extra_config={"secureClientPort": secure_port},
        system_properties={
            "zookeeper.serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
            "zookeeper.ssl.keyStore.location": pki.server.keystore,
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
        theirs = run_zkcli(
            f"127.0.0.1:{secure_port}", "whoami", jvm_options=_zkcli_tls(pki, "alice")
        )
    ours = run_zkcli(_secure(server), "whoami", jvm_options=_zkcli_tls(pki, "alice"))
    x509_theirs = [line for line in theirs.stdout.splitlines() if line.startswith("x509: ")]
    x509_ours = [line for line in ours.stdout.splitlines() if line.startswith("x509: ")]
    assert x509_theirs, theirs.raw_stdout + theirs.raw_stderr
    assert x509_ours == x509_theirs == [f"x509: {ALICE}"]

"""``coord shell --tls-*`` connects to a secure port; the client certificate is the
session's x509 identity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from coord.plugins.builtin.tls import TlsTransport
from coord.testing._server import CoordServerThread
from coord.tools._certs import create_dev_pki


def test_coord_shell_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    pki = create_dev_pki(tmp_path, clients=("alice",), org="Example", days=2)
    assert pki.server is not None
    (alice,) = pki.clients
    with CoordServerThread(
        secure_port=0,
        tls_cert=str(pki.server.cert),
        tls_key=str(pki.server.key),
        tls_ca=str(pki.ca),
    ) as server:
        (transport,) = [t for t in server.server.transports if isinstance(t, TlsTransport)]
        host, port = transport.addresses[0]
        tls = ["--tls-ca", str(pki.ca), "--tls-cert", str(alice.cert), "--tls-key", str(alice.key)]
        proc = subprocess.run(
            [sys.executable, "-m", "coord", "shell", f"{host}:{port}", *tls, "-c", "whoami"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert "x509: CN=alice,O=Example" in proc.stdout.splitlines()

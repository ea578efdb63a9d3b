"""Connect to coord's TLS port with a client certificate, from the SDK and from kazoo.

Shown in docs/security.md. Make the certificates and start the server first::

    coord certs --dir certs --client alice --client bob
    coord server --storage memory --secure-port 2281 \\
        --tls-cert certs/server.pem --tls-key certs/server-key.pem --tls-ca certs/ca.pem

then::

    python examples/tls_client.py --server 127.0.0.1:2281 --certs certs

It prints alice's x509 identity, creates a node only alice may read, shows that bob is
refused, and deletes the node again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError as KazooNoAuthError

import coord
from coord.client import TlsOptions
from coord.protocol import ACL, Id, NoAuthError, Perm


def tls(certs: Path, name: str) -> TlsOptions:
    return TlsOptions(
        ca=certs / "ca.pem", cert=certs / f"{name}.pem", key=certs / f"{name}-key.pem"
    )


async def main(server: str, certs: Path, path: str) -> None:
    async with coord.connect(server, tls=tls(certs, "alice")) as alice:
        identity = next(i.user for i in await alice.whoami() if i.auth_scheme == "x509")
        print(f"alice is x509:{identity}")
        await alice.create(path, b"for alice only", acl=[ACL(Perm.ALL, Id("x509", identity))])
        print(f"alice reads {path}: {(await alice.get(path))[0].decode()}")
        async with coord.connect(server, tls=tls(certs, "bob")) as bob:
            try:
                await bob.get(path)
            except NoAuthError:
                print(f"bob reads {path}: NoAuth")

    # kazoo speaks TLS too (use_ssl, ca, certfile, keyfile).
    kazoo = KazooClient(
        server,
        use_ssl=True,
        ca=str(certs / "ca.pem"),
        certfile=str(certs / "bob.pem"),
        keyfile=str(certs / "bob-key.pem"),
    )
    kazoo.start(timeout=10)
    try:
        try:
            kazoo.get(path)
        except KazooNoAuthError:
            print(f"bob (kazoo) reads {path}: NoAuth")
    finally:
        kazoo.stop()
        kazoo.close()

    async with coord.connect(server, tls=tls(certs, "alice")) as alice:
        await alice.delete(path)
        print(f"alice deleted {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:2281")
    parser.add_argument("--certs", type=Path, default=Path("certs"))
    parser.add_argument("--path", default="/tls-example")
    args = parser.parse_args()
    anyio.run(main, args.server, args.certs, args.path)

"""docs/security.md and the quota/throttling parts of docs/operations.md stay true: their
runnable examples run, against a server started with the documented command line.

- ``coord certs --dir certs --client alice --client bob``, then ``coord server
  --secure-port ... --tls-cert certs/server.pem --tls-key certs/server-key.pem --tls-ca
  certs/ca.pem``, then ``examples/tls_client.py`` prints what the page says;
- ``coord server --enforce-quota``, then ``examples/quota_kazoo.py`` prints the output shown.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COORD = [sys.executable, "-m", "coord"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}


@contextlib.contextmanager
def _server(cwd: Path, *args: str) -> Iterator[None]:
    proc = subprocess.Popen(
        [*COORD, "server", "--storage", "memory", *args],
        cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)


def _run(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=60, check=False
    )


def test_security_page_tls_example_runs(tmp_path: Path) -> None:
    made = _run(tmp_path, *COORD, "certs", "--dir", "certs", "--client", "alice", "--client", "bob")
    assert made.returncode == 0, made.stderr
    assert "identity x509:CN=alice" in made.stdout
    port, secure = _free_port(), _free_port()
    with _server(
        tmp_path, "--port", str(port), "--secure-port", str(secure),
        "--tls-cert", "certs/server.pem", "--tls-key", "certs/server-key.pem",
        "--tls-ca", "certs/ca.pem",
    ):  # fmt: skip
        _wait_for(secure)
        result = _run(
            tmp_path, sys.executable, str(ROOT / "examples" / "tls_client.py"),
            "--server", f"127.0.0.1:{secure}", "--certs", "certs",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "alice is x509:CN=alice",
        "alice reads /tls-example: for alice only",
        "bob reads /tls-example: NoAuth",
        "bob (kazoo) reads /tls-example: NoAuth",
        "alice deleted /tls-example",
    ]
    page = (ROOT / "docs" / "security.md").read_text()
    assert "examples/tls_client.py" in page and "## TLS" in page and "## x509" in page


def test_operations_page_quota_example_runs(tmp_path: Path) -> None:
    port = _free_port()
    with _server(tmp_path, "--port", str(port), "--enforce-quota"):
        _wait_for(port)
        result = _run(
            tmp_path, sys.executable, str(ROOT / "examples" / "quota_kazoo.py"),
            "--server", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = [
        "usage: count=1,bytes=0",
        "usage: count=3,bytes=0",
        "create /quota-example/c: QuotaExceeded",
        "quota and nodes removed",
    ]
    assert result.stdout.splitlines() == expected
    page = (ROOT / "docs" / "operations.md").read_text()
    assert "\n".join(expected) in page

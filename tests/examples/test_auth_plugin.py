"""examples/auth_plugin: a third-party auth scheme, pip-installed, loaded by a real server.

The package is installed with pip (``--no-deps --target``: its dependencies, coord and
cryptography, are the test environment's) into a temporary directory that is put on
``PYTHONPATH`` of a ``coord server`` process and, for the conformance suite, on this
process's ``sys.path``. Tokens are minted here from the format the README documents
(independently of the package), so the test also pins the format.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError as KazooAuthFailed
from kazoo.exceptions import NoAuthError as KazooNoAuth
from kazoo.security import ACL, Id, Permissions

import coord.client
from coord.protocol import NoAuthError
from coord.testing import AuthSchemeConformance

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "auth_plugin"
WAIT = 20.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public(key: Ed25519PrivateKey) -> str:
    return _b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def token(key: Ed25519PrivateKey, subject: str, lifetime: float = 600.0) -> bytes:
    """A token as the README specifies it."""
    payload = json.dumps({"sub": subject, "exp": int(time.time() + lifetime)}).encode()
    return f"{_b64(payload)}.{_b64(key.sign(payload))}".encode()


KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
PUBLIC = _public(KEY)
ALICE = token(KEY, "alice")
BOB = token(KEY, "bob")
EXPIRED = token(KEY, "alice", lifetime=-60)
FORGED = token(OTHER_KEY, "alice")


def _pip_install(target: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    command += ["--disable-pip-version-check", "--target", str(target), str(EXAMPLE)]
    try:  # without build isolation when this environment can build wheels itself (fast)
        importlib.import_module("wheel")
        command.insert(4, "--no-build-isolation")
    except ImportError:
        pass
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed plugin (package + .dist-info with entry points)."""
    target = tmp_path_factory.mktemp("site")
    _pip_install(target)
    assert (target / "coord_token_auth" / "plugin.py").exists()
    assert list(target.glob("coord_token_auth-0.1.0.dist-info"))
    return target


@pytest.fixture(scope="module")
def on_sys_path(site: Path) -> Iterator[Any]:
    """The installed package importable (and its entry point visible) in this process."""
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module("coord_token_auth")
    finally:
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if m.startswith("coord_token_auth")]:
            del sys.modules[name]
        importlib.invalidate_caches()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(path: Path, port: int, settings: str) -> Path:
    path.write_text(f'port = {port}\nstorage = "memory"\naudit = true\n\n{settings}')
    return path


def _coord(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    env = {k: v for k, v in env.items() if not k.startswith("COORD_")}
    return subprocess.run(
        [sys.executable, "-m", "coord", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


@pytest.fixture(scope="module")
def server(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``coord server`` process that loads the plugin; yields ``host:port``."""
    workdir = tmp_path_factory.mktemp("server")
    port = _free_port()
    config = _write_config(
        workdir / "coord.toml", port, f'[plugins.token_auth]\npublic_keys = ["{PUBLIC}"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    env["PYTHONPATH"] = str(site)
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "coord", "server", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=workdir,
    )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            assert process.poll() is None, (workdir / "server.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def kazoo_clients() -> Iterator[Any]:
    started: list[KazooClient] = []

    def make(address: str, **kwargs: Any) -> KazooClient:
        client = KazooClient(hosts=address, timeout=10.0, **kwargs)
        client.start(timeout=WAIT)
        started.append(client)
        return client

    yield make
    for client in started:
        client.stop()
        client.close()


def test_auth_plugin_plugins_list_shows_it(site: Path, tmp_path: Path) -> None:
    """``coord plugins list`` names the plugin, its distribution, version, hooks and state."""
    config = _write_config(
        tmp_path / "c.toml", 0, f'[plugins.token_auth]\npublic_keys = ["{PUBLIC}"]\n'
    )
    result = _coord(site, "plugins", "list", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (line,) = [row for row in result.stdout.splitlines() if row.startswith("token_auth ")]
    assert line.split()[:3] == ["token_auth", "0.1.0", "enabled"]
    assert "coord-token-auth 0.1.0 (entry point token_auth = coord_token_auth.plugin)" in line
    assert line.endswith("auth_schemes,validate_settings")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("", "public_keys must be a non-empty list"),
        ('[plugins.token_auth]\npublic_keys = ["abc"]\n', "an Ed25519 public key is 32 bytes"),
        (f'[plugins.token_auth]\npublic_keys = ["{PUBLIC}"]\nleway = 3\n', "unknown setting"),
    ],
    ids=["missing", "bad-key", "misspelt"],
)
def test_auth_plugin_bad_settings_stop_the_server(
    site: Path, tmp_path: Path, settings: str, message: str
) -> None:
    config = _write_config(tmp_path / "c.toml", 0, settings)
    result = _coord(site, "server", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "plugin 'token_auth' rejects its settings ([plugins.token_auth])" in result.stderr
    assert message in result.stderr


def test_auth_plugin_not_enabled_is_not_loaded(site: Path, tmp_path: Path) -> None:
    """With ``[plugins] enabled`` naming other plugins, an installed one is not imported,
    and its settings table is then an error naming it."""
    config = _write_config(tmp_path / "c.toml", 0, '[plugins]\nenabled = ["builtin.tcp"]\n')
    result = _coord(site, "plugins", "list", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (line,) = [row for row in result.stdout.splitlines() if row.startswith("token_auth ")]
    assert "not enabled" in line
    config.write_text(config.read_text() + f'\n[plugins.token_auth]\npublic_keys = ["{PUBLIC}"]\n')
    result = _coord(site, "plugins", "list", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "settings [plugins.token_auth] are given for plugin 'token_auth'" in result.stderr


def test_auth_plugin_kazoo_add_auth_and_acl(server: str, kazoo_clients: Any) -> None:
    alice = kazoo_clients(server, auth_data=[("token", ALICE.decode())])
    alice.create("/alice-only", b"secret", acl=[ACL(Permissions.ALL, Id("token", "alice"))])
    assert alice.get("/alice-only")[0] == b"secret"

    bob = kazoo_clients(server)
    bob.add_auth("token", BOB.decode())
    with pytest.raises(KazooNoAuth):
        bob.get("/alice-only")
    with pytest.raises(KazooNoAuth):
        bob.set("/alice-only", b"mine")

    again = kazoo_clients(server)
    again.add_auth("token", ALICE.decode())
    assert again.get("/alice-only")[0] == b"secret"
    again.set("/alice-only", b"updated")
    acl, _ = again.get_acls("/alice-only")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(31, "token", "alice")]


@pytest.mark.parametrize("credentials", [EXPIRED, FORGED, b"not-a-token"], ids=str)
def test_auth_plugin_kazoo_bad_tokens_fail(
    server: str, kazoo_clients: Any, credentials: bytes
) -> None:
    client = kazoo_clients(server)
    with pytest.raises(KazooAuthFailed):
        client.add_auth("token", credentials.decode())


def test_auth_plugin_sdk(server: str) -> None:
    with coord.client.connect_sync(server, auth=[("token", ALICE)]) as alice:
        alice.create(
            "/sdk-alice", b"x", acl=[coord.client.ACL(31, coord.client.Id("token", "alice"))]
        )
        assert alice.get("/sdk-alice")[0] == b"x"
        assert ("token", "alice") in [(i.auth_scheme, i.user) for i in alice.whoami()]
    with (
        coord.client.connect_sync(server, auth=[("token", BOB)]) as bob,
        pytest.raises(NoAuthError),
    ):
        bob.get("/sdk-alice")


class TestTokenSchemeConformance(AuthSchemeConformance):
    """The installed scheme keeps coord's auth scheme contract (live half: an in-process
    server loading the plugin through its entry point)."""

    valid_credentials = [ALICE, BOB]
    invalid_credentials = [EXPIRED, FORGED, b"", b"a.b", b"\xff.\xfe", ALICE + b"x"]
    valid_ids = ["alice", "svc.backup@example.com", "a" * 128]
    invalid_ids = ["", "a b", "a:b", "a" * 129, "é"]
    matching = [("alice", "alice", True), ("alice", "bob", False), ("alice", "Alice", False)]

    @pytest.fixture
    def scheme(self, on_sys_path: Any) -> Any:
        return on_sys_path.TokenScheme([PUBLIC])

    @pytest.fixture
    def server_config(self) -> dict[str, Any]:
        return {"plugin_settings": {"token_auth": {"public_keys": [PUBLIC]}}}

"""``coord certs``: a development CA, reused across runs, and server/client certificates
that verify against it, with the names and usages asked for."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from coord.cli import main


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certs_creates_ca_server_and_clients(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "certs"
    args = ["certs", "--dir", str(out_dir), "--client", "alice", "--org", "Example"]
    assert main([*args, "--host", "db.example", "--host", "10.0.0.7"]) == 0
    printed = capsys.readouterr().out
    assert "identity x509:CN=alice,O=Example" in printed
    assert "zookeeper.ssl.keyStore.type=PEM" in printed and "secure_port = 2281" in printed
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == sorted(
        ["ca.pem", "ca-key.pem"]
        + [f"{n}{s}" for n in ("server", "alice") for s in (".pem", "-key.pem", "-keystore.pem")]
    )
    for name in ("ca-key.pem", "server-key.pem", "alice-key.pem", "alice-keystore.pem"):
        assert stat.S_IMODE((out_dir / name).stat().st_mode) == 0o600, name
    server = _cert(out_dir / "server.pem")
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["db.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]
    usages = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages and ExtendedKeyUsageOID.CLIENT_AUTH in usages
    # Both verify against the CA, as a TLS peer would check them.
    ca = _cert(out_dir / "ca.pem")
    for leaf in (server, _cert(out_dir / "alice.pem")):
        leaf.verify_directly_issued_by(ca)
    context = ssl.create_default_context(cafile=str(out_dir / "ca.pem"))
    context.load_cert_chain(out_dir / "alice.pem", out_dir / "alice-key.pem")
    context.load_cert_chain(out_dir / "server-keystore.pem")


def test_certs_reuses_the_CA_on_a_second_run(tmp_path: Path) -> None:
    assert main(["certs", "--dir", str(tmp_path), "--client", "alice"]) == 0
    ca = (tmp_path / "ca.pem").read_bytes()
    first = _cert(tmp_path / "alice.pem")
    assert main(["certs", "--dir", str(tmp_path), "--no-server", "--client", "bob"]) == 0
    assert (tmp_path / "ca.pem").read_bytes() == ca
    _cert(tmp_path / "bob.pem").verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    assert _cert(tmp_path / "alice.pem") == first  # untouched


def test_certs_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "--dir", str(tmp_path), "--days", "0"]) == 2
    assert "--days must be positive" in capsys.readouterr().err
    assert main(["certs", "--dir", str(tmp_path), "--client", "../evil"]) == 2
    assert "cannot be used as a file name" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "ca.pem").write_text("junk")
    (tmp_path / "other" / "ca-key.pem").write_text("junk")
    assert main(["certs", "--dir", str(tmp_path / "other")]) == 2
    assert "cannot reuse the CA" in capsys.readouterr().err

"""The server-choice policy (zones, read-only) and TLS options, without a server."""

from __future__ import annotations

import random
import ssl

import pytest

from coord.client import TlsOptions
from coord.client._hosts import (
    HostPolicy,
    Probe,
    first_preferred,
    is_write,
    parse_isro,
    parse_zones,
    probe_targets,
)
from coord.client._paths import HostPort
from coord.client._tls import tls_context
from coord.protocol import OpCode

A, B, C, D = (HostPort(h, 2181) for h in ("a", "b", "c", "d"))
ZONES = {"a:2181": "eu-1", "b": "eu-1", "c:2181": "us-1"}


def policy(zone: str | None = "eu-1") -> HostPolicy:
    return HostPolicy((A, B, C, D), parse_zones(ZONES), zone)


def test_parse_zones_normalises_hosts_and_default_port() -> None:
    """Zone keys are connect-string hosts; the port defaults to 2181."""
    assert parse_zones(ZONES) == {A: "eu-1", B: "eu-1", C: "us-1"}
    assert parse_zones(None) == {}
    with pytest.raises(ValueError):
        parse_zones({"a": ""})


def test_HostPolicy_round_puts_local_zone_first_shuffled() -> None:
    """Every round tries the client's zone first, in a shuffled order, then the rest."""
    seen_first: set[HostPort] = set()
    for seed in range(40):
        hosts = policy().round(random.Random(seed))
        assert set(hosts[:2]) == {A, B}
        assert set(hosts[2:]) == {C, D}
        seen_first.add(hosts[0])
    assert seen_first == {A, B}


def test_HostPolicy_without_zone_shuffles_everything() -> None:
    """No zone: ZooKeeper's StaticHostProvider (all hosts, shuffled)."""
    firsts = {policy(None).round(random.Random(seed))[0] for seed in range(60)}
    assert firsts == {A, B, C, D}
    assert policy(None).is_local(C)


def test_HostPolicy_rejects_unknown_hosts_and_empty_zone() -> None:
    """A zone map naming other servers, or a zone with no server, is a configuration error."""
    with pytest.raises(ValueError, match="not in the connect string"):
        HostPolicy((A,), {B: "eu-1"}, None)
    with pytest.raises(ValueError, match="no server"):
        HostPolicy((A, B), {A: "eu-1"}, "ap-1")


def test_first_preferred_moves_the_found_server_first() -> None:
    """The server a probe found is tried first in the next round."""
    assert first_preferred([A, B, C], C) == [C, A, B]
    assert first_preferred([A, B], None) == [A, B]
    assert first_preferred([A, B], D) == [A, B]


def test_probe_targets_local_server_needs_no_probe() -> None:
    """Connected in the zone (and read-write): nothing to look for."""
    assert probe_targets(policy(), A, read_only=False, rng=random.Random(1)) == []
    assert probe_targets(policy(None), C, read_only=False, rng=random.Random(1)) == []


def test_probe_targets_remote_server_probes_local_hosts() -> None:
    """Connected outside the zone: TCP probes of every local host."""
    probes = probe_targets(policy(), C, read_only=False, rng=random.Random(1))
    assert {p.host for p in probes} == {A, B}
    assert {p.kind for p in probes} == {"tcp"}


def test_probe_targets_read_only_client_asks_isro_before_moving_back() -> None:
    """A read_only client only returns to a local server that says it is read-write."""
    probes = probe_targets(
        policy(), C, read_only=False, rng=random.Random(1), accept_read_only=True
    )
    assert {p.kind for p in probes} == {"isro"}


def test_probe_targets_read_only_server_probes_every_other_host_local_first() -> None:
    """On a read-only server: isro probes of all other hosts, the local zone first."""
    probes = probe_targets(policy(), A, read_only=True, rng=random.Random(3))
    assert [p.host for p in probes][:1] == [B]
    assert {p.host for p in probes} == {B, C, D}
    assert all(p == Probe(p.host, "isro") for p in probes)


def test_parse_isro() -> None:
    """``isro`` answers rw or ro; anything else (command not allowed) is unknown."""
    assert parse_isro(b"rw") is True
    assert parse_isro(b"ro\n") is False
    assert parse_isro(b"") is None
    assert parse_isro(b"isro is not executed because it is not in the whitelist.") is None


def test_is_write_covers_every_mutation_and_no_read() -> None:
    """Writes are refused locally on a read-only server; reads and multiRead are not."""
    for op in (OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_TTL, OpCode.CREATE_CONTAINER):
        assert is_write(op)
    for op in (OpCode.DELETE, OpCode.SET_DATA, OpCode.SET_ACL, OpCode.MULTI, OpCode.CHECK):
        assert is_write(op)
    for op in (OpCode.GET_DATA, OpCode.EXISTS, OpCode.GET_CHILDREN2, OpCode.MULTI_READ):
        assert not is_write(op)
    for op in (OpCode.SYNC, OpCode.PING, OpCode.WHO_AM_I, OpCode.ADD_WATCH):
        assert not is_write(op)


def test_TlsOptions_context_defaults_verify_the_server() -> None:
    """By default the server's chain and host name are checked (TLS 1.2+)."""
    context = TlsOptions().context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    loose = TlsOptions(check_hostname=False).context()
    assert loose.verify_mode is ssl.CERT_REQUIRED and not loose.check_hostname
    off = TlsOptions(verify=False).context()
    assert off.verify_mode is ssl.CERT_NONE


def test_tls_context_accepts_options_context_and_bool() -> None:
    """``tls=`` takes TlsOptions, an SSLContext (used as is), True, or None/False."""
    context = ssl.create_default_context()
    assert tls_context(context) is context
    assert tls_context(None) is None and tls_context(False) is None
    assert isinstance(tls_context(True), ssl.SSLContext)
    with pytest.raises(TypeError):
        tls_context("yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TlsOptions(key="k.pem").context()

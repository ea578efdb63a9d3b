"""Observers (non-voting members) and read-only mode of a member cut off from a majority."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from ensemble_support import FAST
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError

import coord
from coord.protocol import NotReadOnlyError
from coord.testing import four_letter_word
from coord.testing._ensemble import CoordEnsemble


def test_an_observer_serves_reads_and_forwards_writes_but_never_votes(kazoo_factory) -> None:
    with CoordEnsemble(3, observers=1, config=FAST, proxies=False) as ensemble:
        assert ensemble.mode(4) == "observer"
        client = kazoo_factory(ensemble.member_address(4))
        client.create("/observed", b"via observer")
        other = kazoo_factory(ensemble.member_address(1))
        other.sync("/observed")
        assert other.get("/observed")[0] == b"via observer"
        other.set("/observed", b"changed")
        client.sync("/observed")
        assert client.get("/observed")[0] == b"changed"
        # Two voters of three down: no majority, although the observer is up.
        leader = ensemble.leader()
        assert leader is not None and leader != 4
        followers = [i for i in (1, 2, 3) if i != leader]
        ensemble.kill(followers[0])
        ensemble.kill(followers[1])
        time.sleep(1.5)
        assert ensemble.mode(4) == "observer"
        assert ensemble.leader() is None or ensemble.leader() == leader
        ensemble.start_member(followers[0])
        ensemble.wait_for_leader()
        assert ensemble.mode(4) == "observer"


@pytest.fixture
def read_only_ensemble():
    with CoordEnsemble(3, config={**FAST, "read_only_mode": True}) as ensemble:
        yield ensemble


def test_a_cut_off_member_serves_read_only_clients(read_only_ensemble: CoordEnsemble) -> None:
    ensemble = read_only_ensemble
    follower = ensemble.followers()[0]
    writer = KazooClient(hosts=ensemble.member_address(follower))
    writer.start(timeout=10)
    writer.create("/ro", b"before")
    writer.stop()
    writer.close()
    host, port = ensemble.members[follower].client_address
    ensemble.partition(follower)
    deadline = time.monotonic() + 10
    while four_letter_word(host, port, "isro") != "ro" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert four_letter_word(host, port, "isro") == "ro"
    # A client that does not accept read-only servers is turned away.
    plain = KazooClient(hosts=ensemble.member_address(follower), timeout=2.0)
    with pytest.raises(Exception):  # noqa: B017 - kazoo's timeout type varies by handler
        plain.start(timeout=2)
    plain.close()
    reader = KazooClient(hosts=ensemble.member_address(follower), read_only=True, timeout=4.0)
    reader.start(timeout=10)
    try:
        assert reader.get("/ro")[0] == b"before"
        with pytest.raises(NotReadOnlyCallError):
            reader.create("/ro/new", b"")
        ensemble.heal()
        # Rejoined: the read-only connection is closed; the client comes back read-write.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if four_letter_word(host, port, "isro") == "rw":
                break
            time.sleep(0.05)
        assert four_letter_word(host, port, "isro") == "rw"
    finally:
        reader.stop()
        reader.close()


def test_the_sdk_in_read_only_mode_against_a_cut_off_member(
    read_only_ensemble: CoordEnsemble,
) -> None:
    ensemble = read_only_ensemble
    follower = ensemble.followers()[0]
    address = ensemble.member_address(follower)
    host, port = ensemble.members[follower].client_address

    async def main() -> None:
        async with coord.connect(address) as client:
            await client.create("/sdk-ro", b"data")
        ensemble.partition(follower)
        with anyio.fail_after(10):
            while four_letter_word(host, port, "isro") != "ro":  # noqa: ASYNC110
                await anyio.sleep(0.05)
        async with coord.connect(address, read_only=True) as client:
            assert client.read_only
            data, _ = await client.get("/sdk-ro")
            assert data == b"data"
            with pytest.raises(NotReadOnlyError):
                await client.set("/sdk-ro", b"no")

    anyio.run(main)


def test_an_ensemble_whose_peer_links_run_in_mutual_tls(tmp_path, kazoo_factory) -> None:
    from coord.tools._certs import create_dev_pki

    pki = create_dev_pki(tmp_path / "pki", hosts=("127.0.0.1",), clients=())
    assert pki.server is not None
    tls = {
        "peer_tls": True,
        "tls_cert": str(pki.server.cert),
        "tls_key": str(pki.server.key),
        "tls_ca": str(pki.ca),
    }
    with CoordEnsemble(3, config={**FAST, **tls}, proxies=False) as ensemble:
        writer = kazoo_factory(ensemble.member_address(1))
        writer.create("/over-tls", b"replicated")
        for i in (2, 3):
            reader = kazoo_factory(ensemble.member_address(i))
            reader.sync("/over-tls")
            assert reader.get("/over-tls")[0] == b"replicated"
        logs = "".join(Path(m.log).read_text() for m in ensemble.members.values())
        assert "refused peer link" not in logs

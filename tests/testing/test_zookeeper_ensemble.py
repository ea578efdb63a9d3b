"""ZooKeeperEnsemble: three real Apache ZooKeeper 3.8 members on 127.0.0.1 and their faults."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from coord.testing import Cluster, ZooKeeperEnsemble, require_zookeeper

pytestmark = pytest.mark.zookeeper


@pytest.fixture(scope="module")
def ensemble() -> Iterator[ZooKeeperEnsemble]:
    require_zookeeper()
    with ZooKeeperEnsemble(3) as zk:
        yield zk


@pytest.fixture(autouse=True)
def _healthy(ensemble: ZooKeeperEnsemble) -> Iterator[None]:
    """Every test starts and leaves the ensemble whole: healed, resumed, all serving."""
    yield
    ensemble.heal()
    for index in range(ensemble.size):
        ensemble.resume(index)
    ensemble.start_all()


def connect(hosts: str) -> KazooClient:
    client = KazooClient(hosts=hosts, timeout=4.0)
    client.start(timeout=30)
    return client


def write_through_each_member(ensemble: ZooKeeperEnsemble, path: str) -> None:
    for index, address in enumerate(ensemble.members):
        client = connect(address)
        try:
            client.ensure_path(path)
            client.set(path, f"{index}".encode())
        finally:
            client.stop()
            client.close()


def test_ZooKeeperEnsemble_forms_a_quorum_with_one_leader(ensemble: ZooKeeperEnsemble) -> None:
    """Every member serves, exactly one is the leader, and all replicate one tree."""
    assert isinstance(ensemble, Cluster)
    modes = [ensemble.mode(i) for i in range(3)]
    assert sorted(modes) == ["follower", "follower", "leader"], modes
    assert ensemble.leader() == modes.index("leader")
    assert ensemble.connect_string == ",".join(ensemble.members)
    assert ensemble.member_address(1) == ensemble.members[1]
    write_through_each_member(ensemble, "/ensemble-basic")
    for address in ensemble.members:
        client = connect(address)
        client.sync("/ensemble-basic")
        assert client.get("/ensemble-basic")[1].version == 3
        client.stop()
        client.close()
    for index in range(3):
        cmdline = Path(f"/proc/{ensemble.pid(index)}/cmdline").read_bytes().split(b"\0")
        assert b"-Dzookeeper.forceSync=yes" in cmdline
        assert (ensemble.directory / f"member-{index + 1}" / "data" / "myid").is_file()


def test_ZooKeeperEnsemble_kill_leader_elects_another(ensemble: ZooKeeperEnsemble) -> None:
    """SIGKILL of the leader: the two others elect a new leader and take writes; the killed
    member restarts as a follower with the data."""
    leader = ensemble.wait_for_leader()
    ensemble.kill(leader)
    assert not ensemble.running(leader)
    new = ensemble.wait_for_leader(exclude=leader, timeout=30)
    assert new != leader
    client = connect(ensemble.member_address(new))
    client.ensure_path("/after-kill")
    client.stop()
    client.close()
    ensemble.restart(leader)
    assert ensemble.mode(leader) == "follower"
    client = connect(ensemble.member_address(leader))
    client.sync("/after-kill")
    assert client.exists("/after-kill")
    client.stop()
    client.close()


def test_ZooKeeperEnsemble_pause_freezes_a_member(ensemble: ZooKeeperEnsemble) -> None:
    """SIGSTOP: the member stops answering (even four-letter words) until SIGCONT."""
    follower = next(i for i in range(3) if i != ensemble.wait_for_leader())
    ensemble.pause(follower)
    assert ensemble.running(follower)
    assert ensemble.mode(follower, timeout=0.5) is None
    ensemble.resume(follower)
    deadline = time.monotonic() + 30
    while ensemble.mode(follower) != "follower":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_ZooKeeperEnsemble_partition_isolates_the_leader(ensemble: ZooKeeperEnsemble) -> None:
    """A partitioned leader loses its quorum and stops serving; the majority elects a new
    leader and takes writes; after heal the old leader follows and catches up."""
    if shutil.which("gcc") or shutil.which("cc"):
        assert ensemble.complete_partitions, ensemble.shim_error
    leader = ensemble.wait_for_leader()
    ensemble.partition(leader)
    new = ensemble.wait_for_leader(exclude=leader, timeout=30)
    deadline = time.monotonic() + 30
    while ensemble.mode(leader) == "leader":  # it steps down after syncLimit ticks
        assert time.monotonic() < deadline
        time.sleep(0.1)
    client = connect(ensemble.member_address(new))
    client.ensure_path("/during-partition")
    client.stop()
    client.close()
    time.sleep(1.0)  # cut off, it cannot rejoin (election links are cut too)
    assert ensemble.mode(leader) not in ("leader", "follower")
    ensemble.heal()
    deadline = time.monotonic() + 30
    while ensemble.mode(leader) != "follower":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    client = connect(ensemble.member_address(leader))
    client.sync("/during-partition")
    assert client.exists("/during-partition")
    client.stop()
    client.close()


def test_ZooKeeperEnsemble_kill_all_and_start_all_keeps_data(ensemble: ZooKeeperEnsemble) -> None:
    """A whole-ensemble crash loses no acknowledged write (forceSync=yes)."""
    client = connect(ensemble.connect_string)
    client.ensure_path("/durable")
    stat = client.set("/durable", b"x")
    client.stop()
    client.close()
    ensemble.kill_all()
    assert not any(ensemble.running(i) for i in range(3))
    ensemble.start_all()
    assert ensemble.leader() is not None
    client = connect(ensemble.connect_string)
    data, after = client.get("/durable")
    assert (data, after.version) == (b"x", stat.version)
    client.stop()
    client.close()


def test_ZooKeeperEnsemble_rejects_bad_arguments(ensemble: ZooKeeperEnsemble) -> None:
    with pytest.raises(IndexError, match="no member 3"):
        ensemble.kill(3)
    with pytest.raises(ValueError, match="at least one member"):
        ZooKeeperEnsemble(0)
    with pytest.raises(RuntimeError, match="not started"):
        _ = ZooKeeperEnsemble(3).members
    with pytest.raises(RuntimeError, match="already started"):
        ensemble.start()
    unproxied = ZooKeeperEnsemble(3, proxied=False)
    with pytest.raises(RuntimeError, match="proxied=True"):
        unproxied.partition(0)


def test_ZooKeeperEnsemble_without_the_shim_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a C compiler the redirect shim is skipped: the ensemble still forms and
    takes writes, and says why its partitions are partial."""
    require_zookeeper()
    from coord.testing import _zookeeper_ensemble
    from coord.testing._faults import FaultShimUnavailable

    def unavailable(directory: Path) -> Path:
        raise FaultShimUnavailable("no C compiler (test)")

    monkeypatch.setattr(_zookeeper_ensemble, "build_redirect", unavailable)
    with ZooKeeperEnsemble(3) as zk:
        assert not zk.complete_partitions
        assert zk.shim_error == "no C compiler (test)"
        client = connect(zk.connect_string)
        client.ensure_path("/no-shim")
        client.stop()
        client.close()
        assert sorted(zk.mode(i) or "" for i in range(3)) == ["follower", "follower", "leader"]

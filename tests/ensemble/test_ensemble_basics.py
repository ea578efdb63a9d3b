"""A 3-member ensemble of real processes behaves as one ZooKeeper service.

Writes through any member, reads from every member, sessions and ephemerals that are
global, watches that fire wherever the watcher is connected, ZooKeeper's modes in srvr.
"""

from __future__ import annotations

import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.retry import KazooRetry

from coord.testing import SyncTcpProxy
from coord.testing._ensemble import CoordEnsemble


def _each(ensemble: CoordEnsemble, make) -> dict[int, KazooClient]:
    return {i: make(ensemble.member_address(i)) for i in ensemble.members}


def test_modes_one_leader_two_followers(shared_ensemble: CoordEnsemble) -> None:
    modes = sorted(shared_ensemble.mode(i) for i in shared_ensemble.members)
    assert modes == ["follower", "follower", "leader"]
    leader = shared_ensemble.leader()
    assert leader is not None
    zxids = {shared_ensemble.srvr(i)["Zxid"] for i in shared_ensemble.members}
    assert len(zxids) == 1  # the new leader's no-op, applied everywhere


def test_writes_through_any_member_are_seen_by_all(
    shared_ensemble: CoordEnsemble, kazoo_factory
) -> None:
    clients = _each(shared_ensemble, kazoo_factory)
    clients[1].ensure_path("/basics/w")
    for i, client in clients.items():
        client.create(f"/basics/w/from-{i}", str(i).encode())
        client.set("/basics/w", str(i).encode())
    for client in clients.values():
        client.sync("/basics")
        assert sorted(client.get_children("/basics/w")) == ["from-1", "from-2", "from-3"]
        data, stat = client.get("/basics/w")
        assert data == b"3" and stat.version == 3


def test_sequential_names_are_unique_across_members(
    shared_ensemble: CoordEnsemble, kazoo_factory
) -> None:
    clients = _each(shared_ensemble, kazoo_factory)
    clients[1].ensure_path("/basics/seq")
    names: list[str] = []
    lock = threading.Lock()

    def create(client: KazooClient) -> None:
        for _ in range(30):
            name = client.create("/basics/seq/n-", sequence=True)
            with lock:
                names.append(name)

    threads = [threading.Thread(target=create, args=(c,)) for c in clients.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(names) == 90 and len(set(names)) == 90
    clients[2].sync("/basics/seq")
    assert sorted(clients[2].get_children("/basics/seq")) == sorted(
        n.rsplit("/", 1)[1] for n in names
    )


def test_read_your_writes_and_sync_on_a_follower(
    shared_ensemble: CoordEnsemble, kazoo_factory
) -> None:
    follower = shared_ensemble.followers()[0]
    other = next(i for i in shared_ensemble.members if i != follower)
    writer = kazoo_factory(shared_ensemble.member_address(other))
    reader = kazoo_factory(shared_ensemble.member_address(follower))
    reader.ensure_path("/basics/ryw")
    for k in range(20):
        # The session's own write is visible to its next read, on the same member.
        reader.set("/basics/ryw", str(k).encode())
        assert reader.get("/basics/ryw")[0] == str(k).encode()
        # Another session's write is visible after sync.
        writer.set("/basics/ryw", b"w%d" % k)
        reader.sync("/basics/ryw")
        assert reader.get("/basics/ryw")[0] == b"w%d" % k


def test_watch_fires_on_a_member_for_a_write_through_another(
    shared_ensemble: CoordEnsemble, kazoo_factory
) -> None:
    clients = _each(shared_ensemble, kazoo_factory)
    clients[1].ensure_path("/basics/watched")
    fired: dict[int, threading.Event] = {i: threading.Event() for i in clients}
    for i, client in clients.items():
        client.sync("/basics/watched")
        client.get("/basics/watched", watch=lambda event, i=i: fired[i].set())
    clients[2].set("/basics/watched", b"changed")
    for i in clients:
        assert fired[i].wait(5), f"the watch on member {i} did not fire"


def test_a_session_moves_between_members_with_its_ephemerals(
    shared_ensemble: CoordEnsemble, kazoo_factory
) -> None:
    ids = list(shared_ensemble.members)
    proxies = []
    for i in ids:
        host, port = shared_ensemble.members[i].client_address
        proxies.append(SyncTcpProxy(host, port))
        proxies[-1].start()
    try:
        client = KazooClient(
            hosts=",".join(p.address for p in proxies),
            randomize_hosts=False,
            timeout=4.0,
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.25),
            command_retry=KazooRetry(max_tries=20, delay=0.05, max_delay=0.25),
        )
        client.start(timeout=10)
        client.ensure_path("/basics/moves")
        client.create("/basics/moves/me", ephemeral=True)
        session = client.client_id
        for k in range(len(proxies)):
            # Cut the member the client is on; it reconnects to the next one.
            for proxy in proxies:
                proxy.accept()
            deadline = time.monotonic() + 10
            while not any(p.connection_count for p in proxies):
                assert time.monotonic() < deadline, "the client is connected nowhere"
                time.sleep(0.02)
            current = next(p for p in proxies if p.connection_count)
            current.refuse()
            current.cut()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (
                client.connected and current.connection_count == 0
            ):
                time.sleep(0.05)
            # A request racing the cut may still get ConnectionLoss: retry it, as clients do.
            client.retry(client.set, "/basics/moves", b"%d" % k)
            assert client.retry(client.exists, "/basics/moves/me") is not None
            assert client.client_id == session
        moved_to = {i for i, p in zip(ids, proxies, strict=True) if p.accepted_count}
        assert len(moved_to) == 3  # it has been on every member
        observer = kazoo_factory(shared_ensemble.member_address(ids[-1]))
        observer.sync("/basics/moves")
        assert observer.exists("/basics/moves/me").ephemeralOwner == session[0]
        client.stop()
        client.close()
    finally:
        for proxy in proxies:
            proxy.stop()


def test_session_kept_alive_through_a_follower_does_not_expire(
    shared_ensemble: CoordEnsemble, kazoo_factory
) -> None:
    """Liveness seen by followers reaches the leader, which alone expires sessions."""
    follower = shared_ensemble.followers()[0]
    client = kazoo_factory(shared_ensemble.member_address(follower), timeout=1.0)
    client.ensure_path("/basics/alive")
    client.create("/basics/alive/e", ephemeral=True)
    time.sleep(3.0)  # three session timeouts; the client pings its follower
    leader = shared_ensemble.leader()
    assert leader is not None
    checker = kazoo_factory(shared_ensemble.member_address(leader))
    assert checker.exists("/basics/alive/e") is not None


def test_an_abandoned_session_on_a_follower_expires_everywhere(
    shared_ensemble: CoordEnsemble, kazoo_factory
) -> None:
    follower = shared_ensemble.followers()[0]
    host, port = shared_ensemble.members[follower].client_address
    with SyncTcpProxy(host, port) as proxy:
        doomed = KazooClient(hosts=proxy.address, timeout=1.0)
        doomed.start(timeout=10)
        doomed.ensure_path("/basics/expire")
        doomed.create("/basics/expire/e", ephemeral=True)
        proxy.stall()  # its pings no longer arrive; its session is left to expire
        others = [kazoo_factory(shared_ensemble.member_address(i)) for i in shared_ensemble.members]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if all(c.exists("/basics/expire/e") is None for c in others):
                break
            time.sleep(0.1)
        for c in others:
            c.sync("/basics/expire")
            assert c.exists("/basics/expire/e") is None
        proxy.cut()
        doomed.stop()
        doomed.close()


def test_a_client_that_saw_newer_state_is_not_served_older(
    shared_ensemble: CoordEnsemble, kazoo_factory
) -> None:
    """A member behind the client's lastZxidSeen refuses it (ZooKeeper's rule)."""
    leader = shared_ensemble.leader()
    assert leader is not None
    follower = shared_ensemble.followers()[0]
    client = kazoo_factory(shared_ensemble.member_address(leader))
    client.ensure_path("/basics/zxid")
    shared_ensemble.pause(follower)
    try:
        client.set("/basics/zxid", b"new")  # committed by the leader and the other member
        seen = client.get("/basics/zxid")[1].mzxid
    finally:
        shared_ensemble.resume(follower)
    late = kazoo_factory(shared_ensemble.member_address(follower))
    late.sync("/basics/zxid")
    assert late.get("/basics/zxid")[1].mzxid >= seen


def test_deleted_nodes_are_gone_everywhere(shared_ensemble: CoordEnsemble, kazoo_factory) -> None:
    clients = _each(shared_ensemble, kazoo_factory)
    clients[1].ensure_path("/basics/gone/child")
    clients[2].sync("/basics")  # reads are sequentially consistent, not linearizable
    clients[2].delete("/basics/gone", recursive=True)
    for client in clients.values():
        client.sync("/basics")
        with pytest.raises(NoNodeError):
            client.get("/basics/gone")

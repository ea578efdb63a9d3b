"""Quotas, differential against Apache ZooKeeper 3.8 with ``zookeeper.enforceQuota=true``:
zkCli's ``setquota``/``listquota``/``delquota`` print the same, the limits and stats nodes
hold the same text, and kazoo sees the same ``QuotaExceededError`` (-125) on the same
writes, with the same usage afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from compat_support import kazoo_client
from kazoo.exceptions import QuotaExceededError

from coord.testing import ZooKeeperProcess, require_zookeeper, run_zkcli
from coord.testing._server import CoordServerThread

pytestmark = pytest.mark.zookeeper


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """Addresses of coord and ZooKeeper, both enforcing quotas."""
    require_zookeeper()
    zk = ZooKeeperProcess(tick_time=500, system_properties={"zookeeper.enforceQuota": "true"})
    zk.start()
    with zk, CoordServerThread(enforce_quota=True, tick_time=500) as coord:
        yield {"zookeeper": zk.address, "coord": coord.address}


def test_zkcli_quota_commands_match_ZooKeeper(servers: dict[str, str]) -> None:
    commands = [
        "create /qt hello",
        "create /qt/a",
        "setquota -N 3 /qt",
        "listquota /qt",
        "create /qt/b",
        "create /qt/c",
        "setquota -B 8 /qt",
        "listquota /qt",
        "set /qt/a 1234",
        "get /zookeeper/quota/qt/zookeeper_limits",
        "get /zookeeper/quota/qt/zookeeper_stats",
        "setquota -n 2 /qt/a",
        "delquota -N /qt",
        "listquota /qt",
        "create /qt/c",
        "delquota /qt",
        "listquota /qt",
        "ls /zookeeper/quota",
    ]
    results = {kind: run_zkcli(address, *commands) for kind, address in servers.items()}
    theirs, ours = results["zookeeper"], results["coord"]
    for expected, got in zip(theirs.outputs, ours.outputs):
        assert (got.stdout, got.stderr) == (expected.stdout, expected.stderr), got.command
    assert theirs[5].stderr == "Quota has exceeded : /qt/c"
    assert "countHardLimit=3" in theirs[3].stdout


def _kazoo_story(address: str, root: str) -> list[object]:
    """Writes against a hard count and byte quota; what each one did."""
    seen: list[object] = []

    def attempt(fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
            seen.append("ok")
        except QuotaExceededError:
            seen.append("QuotaExceeded")

    with kazoo_client(address) as zk:
        zk.create(root, b"12345")
        limits = b"count=-1,bytes=-1=;byteHardLimit=12;countHardLimit=3"
        zk.create(f"/zookeeper/quota{root}/zookeeper_limits", limits, makepath=True)
        zk.create(f"/zookeeper/quota{root}/zookeeper_stats", b"count=0,bytes=0")
        seen.append(zk.get(f"/zookeeper/quota{root}/zookeeper_stats")[0])
        attempt(lambda: zk.create(f"{root}/a", b"123"))
        attempt(lambda: zk.set(f"{root}/a", b"12345678"))  # 5 + 8 > 12
        attempt(lambda: zk.set(f"{root}/a", b"1234567"))  # 5 + 7 = 12
        attempt(lambda: zk.create(f"{root}/b"))
        attempt(lambda: zk.create(f"{root}/c"))  # a 4th node
        tx = zk.transaction()
        tx.delete(f"{root}/b")
        tx.create(f"{root}/c")
        tx.create(f"{root}/d")
        seen.append([type(r).__name__ for r in tx.commit()])
        seen.append(zk.get(f"/zookeeper/quota{root}/zookeeper_stats")[0])
        zk.delete(f"{root}/a")
        attempt(lambda: zk.create(f"{root}/c"))
        seen.append(zk.get(f"/zookeeper/quota{root}/zookeeper_stats")[0])
    return seen


def test_kazoo_quota_enforcement_matches_ZooKeeper(servers: dict[str, str]) -> None:
    ours = _kazoo_story(servers["coord"], "/kq")
    theirs = _kazoo_story(servers["zookeeper"], "/kq")
    assert ours == theirs
    assert "QuotaExceeded" in theirs

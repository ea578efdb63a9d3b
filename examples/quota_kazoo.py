"""Quotas with kazoo: what zkCli's ``setquota -N 3 /app`` does, then hitting the limit.

Shown in docs/operations.md. Start a server that enforces quotas::

    coord server --storage memory --enforce-quota

then::

    python examples/quota_kazoo.py --server 127.0.0.1:2181

The same works against Apache ZooKeeper started with ``-Dzookeeper.enforceQuota=true``.
"""

from __future__ import annotations

import argparse

from kazoo.client import KazooClient
from kazoo.exceptions import QuotaExceededError


def main(server: str, root: str) -> None:
    zk = KazooClient(server)
    zk.start(timeout=10)
    try:
        zk.create(root, b"")
        # A quota is two nodes under /zookeeper/quota<path>: the limits and the usage.
        quota = f"/zookeeper/quota{root}"
        zk.create(f"{quota}/zookeeper_limits", b"count=-1,bytes=-1=;countHardLimit=3",
                  makepath=True)  # fmt: skip
        zk.create(f"{quota}/zookeeper_stats", b"")  # the server fills in the usage
        print("usage:", zk.get(f"{quota}/zookeeper_stats")[0].decode())
        zk.create(f"{root}/a")
        zk.create(f"{root}/b")
        print("usage:", zk.get(f"{quota}/zookeeper_stats")[0].decode())
        try:
            zk.create(f"{root}/c")
        except QuotaExceededError:
            print(f"create {root}/c: QuotaExceeded")
        zk.delete(root, recursive=True)
        zk.delete(quota, recursive=True)
        print("quota and nodes removed")
    finally:
        zk.stop()
        zk.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:2181")
    parser.add_argument("--root", default="/quota-example")
    args = parser.parse_args()
    main(args.server, args.root)

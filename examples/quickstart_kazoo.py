"""Quickstart: use a coord server from kazoo, the Python ZooKeeper client.

Run a server (``make run``), then::

    .venv/bin/python examples/quickstart_kazoo.py --server 127.0.0.1:2181

It creates, reads, watches and deletes nodes under ``--root`` (default ``/quickstart``),
registers a worker as an ephemeral sequential node, shows that the node goes away with
its session, removes everything it created and exits with status 0.
"""

from __future__ import annotations

import argparse
import sys
import threading

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError
from kazoo.protocol.states import WatchedEvent

#: How long to wait for the server or for a watch to fire, in seconds.
WAIT = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:2181", help="HOST:PORT of the server")
    parser.add_argument("--root", default="/quickstart", help="node to work under (must not exist)")
    args = parser.parse_args(argv)
    root = args.root.rstrip("/")

    zk = KazooClient(hosts=args.server)
    zk.start(timeout=WAIT)
    print(f"connected to {args.server}")
    try:
        if zk.exists(root):
            print(f"{root} already exists; delete it or pass another --root", file=sys.stderr)
            return 1
        run(zk, root, args.server)
    finally:
        zk.stop()
        zk.close()
    return 0


def run(zk: KazooClient, root: str, server: str) -> None:
    # Create and read a node. makepath creates missing parents, like mkdir -p.
    zk.create(f"{root}/config", b"color=blue", makepath=True)
    data, stat = zk.get(f"{root}/config")
    print(f"read {root}/config: {data.decode()} (version {stat.version})")

    # A one-shot data watch: it fires once, on the next change of the node.
    changed = threading.Event()
    events: list[WatchedEvent] = []

    def on_change(event: WatchedEvent) -> None:
        events.append(event)
        changed.set()

    zk.get(f"{root}/config", watch=on_change)
    stat = zk.set(f"{root}/config", b"color=green", version=stat.version)
    if not changed.wait(WAIT):
        raise RuntimeError("the data watch did not fire")
    print(f"watch fired: {events[0].type} {events[0].path}")
    print(f"wrote {root}/config: version {stat.version}")

    # A conditional write with a stale version fails: optimistic concurrency.
    try:
        zk.set(f"{root}/config", b"color=red", version=0)
    except BadVersionError:
        print("stale write refused: BadVersionError")
    else:
        raise RuntimeError("a write with a stale version was accepted")

    # Ephemeral sequential node: a unique name, gone when its session ends.
    zk.ensure_path(f"{root}/workers")
    worker = KazooClient(hosts=server)  # a second client: its own session
    worker.start(timeout=WAIT)
    try:
        member = worker.create(f"{root}/workers/worker-", b"", ephemeral=True, sequence=True)
        print(f"registered {member}")
        print(f"workers: {zk.get_children(f'{root}/workers')}")

        # A child watch sees the worker leave when its session closes.
        left = threading.Event()
        zk.get_children(f"{root}/workers", watch=lambda event: left.set())
    finally:
        worker.stop()  # closes the session: its ephemeral nodes are deleted at once
        worker.close()
    if not left.wait(WAIT):
        raise RuntimeError("the child watch did not fire")
    print(f"after the worker's session closed: {zk.get_children(f'{root}/workers')}")

    # Clean up: delete the whole subtree.
    zk.delete(root, recursive=True)
    print(f"deleted {root}: exists -> {zk.exists(root)}")


if __name__ == "__main__":
    sys.exit(main())

"""Helpers of the operator tools' tests: coord server processes on a data directory, and
a walk of a whole tree through kazoo for comparing two servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

from coord.testing import four_letter_word


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CoordProcess:
    """A ``coord server`` subprocess (rocksdb storage) on 127.0.0.1."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log = data_dir.parent / f"{data_dir.name}-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "coord",
                    "server",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(data_dir),
                    "--tick-time",
                    "500",
                    *args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"coord server exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.05)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def four_letter_word(self, word: str) -> str:
        return four_letter_word("127.0.0.1", self.port, word)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def kazoo(address: str, **kwargs: Any) -> Iterator[KazooClient]:
    client = KazooClient(hosts=address, timeout=10, **kwargs)
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def walk(client: KazooClient, root: str = "/", *, stat: bool = True) -> dict[str, Any]:
    """Every node under ``root``: path -> (data, acl[, stat]) (``/zookeeper`` left out)."""
    out: dict[str, Any] = {}
    pending = [root]
    while pending:
        path = pending.pop()
        if path == "/zookeeper" or path.startswith("/zookeeper/"):
            continue
        data, node_stat = client.get(path)
        acl, _ = client.get_acls(path)
        acl_list = sorted((a.perms, a.id.scheme, a.id.id) for a in acl)
        out[path] = (data, acl_list, tuple(node_stat)) if stat else (data, acl_list)
        for child in client.get_children(path):
            pending.append(f"/{child}" if path == "/" else f"{path}/{child}")
    return out

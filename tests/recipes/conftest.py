"""Fixtures of the recipe tests: both anyio backends, and a durable coord server process
that tests can kill and restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async recipe test runs under asyncio and under trio."""
    return str(request.param)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CoordProcess:
    """``coord server`` as a subprocess with durable storage in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{port}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "coord", "server", "--host", "127.0.0.1"),
                    *("--port", str(self.port), "--data-dir", str(self.data_dir)),
                    *("--storage", "rocksdb", "--tick-time", "500"),
                    *("--max-client-connections", "0"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        line = f"coord serving on 127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while line not in self.log.read_text(errors="replace"):  # the process's own signal
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            assert time.monotonic() < deadline, "coord server did not start"
            time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        # The next start must find a new serving line.
        self.log.write_text("")


@pytest.fixture
def coord_process(tmp_path: Path) -> Iterator[CoordProcess]:
    """A durable coord server process (RocksDB) on a free port; ``kill()`` and
    ``start()`` restart it on the same port with the same data."""
    server = CoordProcess(tmp_path / "data", _free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()

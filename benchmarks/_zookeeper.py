"""Apache ZooKeeper as a benchmark opponent: the test launcher with production JVM settings.

:class:`coord.testing._zookeeper.ZooKeeperProcess` starts Debian's ZooKeeper 3.8 for the
test suite, tuned for start-up speed: C1 only (``-XX:TieredStopAtLevel=1``), the serial GC,
a 256 MiB heap and ``zookeeper.forceSync=no``. None of that is fair in a benchmark, so
:class:`BenchZooKeeper` keeps its launch and readiness logic and changes only this:

* the JVM runs as ``zkServer.sh`` runs it: ``-Xmx1000m`` (``ZK_SERVER_HEAP``), the JDK's
  default collector (G1) and the full tiered JIT (C2);
* ZooKeeper's defaults apply: ``forceSync=yes`` (a write is acknowledged after its
  transaction log fsync), no extended types.

The data directory is a temp directory under :func:`tempfile.gettempdir`.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from coord.testing._zookeeper import FAST_JVM_OPTIONS, ZooKeeperProcess, _terminate

__all__ = ["SERVER_JVM_OPTIONS", "BenchZooKeeper"]

#: What ``zkServer.sh`` (3.8) passes by default, minus JMX.
SERVER_JVM_OPTIONS = ("-Xmx1000m", "-Djava.awt.headless=true")


class BenchZooKeeper(ZooKeeperProcess):
    """A standalone ZooKeeper on 127.0.0.1 with its production defaults (see module doc)."""

    def __init__(self) -> None:
        super().__init__(
            extended_types=False,
            system_properties={"zookeeper.forceSync": "yes"},
            log_level="WARN",
            startup_timeout=60.0,
        )

    def _command(self, tmpdir: Path) -> list[str]:
        command = [arg for arg in super()._command(tmpdir) if arg not in FAST_JVM_OPTIONS]
        return [command[0], *SERVER_JVM_OPTIONS, *command[1:]]

    @property
    def version(self) -> str:
        """The server's version line from ``srvr`` (e.g. ``3.8.0-...``)."""
        for line in self.four_letter_word("srvr").splitlines():
            if line.startswith("Zookeeper version:"):
                return line.split(":", 1)[1].strip()
        return "unknown"

    def stop_server(self, grace: float = 60.0) -> float:
        """Stop the JVM gracefully (SIGTERM; SIGKILL after ``grace`` s) and keep the data
        directory for :meth:`launch`; returns the seconds it took to exit."""
        started = time.monotonic()
        _terminate(self._state.process, grace)
        self._state.process = None
        return time.monotonic() - started

    def launch(self) -> None:
        """Start the JVM again on the same port and data directory, without waiting: the
        caller measures when it serves. (``restart`` would wait for ``ruok``.)"""
        tmpdir = self.directory
        with open(tmpdir / "console.log", "ab") as console:
            self._state.process = subprocess.Popen(
                self._command(tmpdir),
                cwd=tmpdir,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

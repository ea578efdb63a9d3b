"""examples/munin_config end to end: agent.py follows register.py processes joining and leaving."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coord.testing import CoordServerThread

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "munin_config"


@pytest.fixture
def server() -> Iterator[CoordServerThread]:
    with CoordServerThread(tick_time=500) as server:
        yield server


def _start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _sections(output: Path) -> set[str]:
    try:
        text = output.read_text()
    except FileNotFoundError:
        return set()
    return {line for line in text.splitlines() if line.startswith("[")}


def _stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    process.send_signal(sig)
    out, _ = process.communicate(timeout=10)
    return out


def test_munin_config_agent_follows_services_joining_and_leaving(
    server: CoordServerThread, tmp_path: Path
) -> None:
    """Each register.py start or stop shows in the agent's file within a second."""
    output = tmp_path / "munin.conf"
    agent = _start("agent.py", "--servers", server.address, "--output", str(output))
    processes = [agent]
    try:
        _wait_for(output.exists, 10, "the first configuration")  # Python start-up included
        assert _sections(output) == set()

        def register(service: str, address: str) -> subprocess.Popen[str]:
            process = _start(
                "register.py", "--servers", server.address, "--service", service,
                "--address", address, "--session-timeout", "1",
            )  # fmt: skip
            processes.append(process)
            return process

        www1 = register("www", "10.0.0.1:80")
        _wait_for(lambda: _sections(output) == {"[www;10.0.0.1]"}, 10, "www1")
        text = output.read_text()
        assert "    address 10.0.0.1\n" in text and "    use_node_name yes" in text

        # From here on the registering processes run already: the file follows in a second.
        www2 = register("www", "10.0.0.2:80")
        db = register("db", "10.0.1.1:5432")
        _wait_for(
            lambda: _sections(output) == {"[www;10.0.0.1]", "[www;10.0.0.2]", "[db;10.0.1.1]"},
            10,
            "www2 and db",
        )
        assert "leaving" in _stop(www1)  # clean exit: the node is deleted at once
        _wait_for(lambda: _sections(output) == {"[www;10.0.0.2]", "[db;10.0.1.1]"}, 1, "www1 gone")
        _stop(db, signal.SIGINT)
        _wait_for(lambda: _sections(output) == {"[www;10.0.0.2]"}, 1, "db gone")
        _stop(www2, signal.SIGKILL)  # no goodbye: gone when its 1 s session expires
        _wait_for(lambda: _sections(output) == set(), 1 + 3, "www2 expired")
        assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
        assert "wrote" in _stop(agent)
        assert agent.returncode == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()

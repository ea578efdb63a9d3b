"""`coord ensemble up|status|down`: a local development ensemble from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def _coord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coord", *args], capture_output=True, text=True, timeout=90
    )


def test_ensemble_up_status_down(tmp_path: Path) -> None:
    directory = tmp_path / "dev"
    up = _coord("ensemble", "up", "--dir", str(directory), "--size", "3")
    try:
        assert up.returncode == 0, up.stderr
        assert "ensemble up: member" in up.stderr
        members = json.loads((directory / "ensemble.json").read_text())["members"]
        assert up.stdout.strip() == ",".join(m["client"] for m in members)
        assert oct((directory / "secret").stat().st_mode & 0o777) == "0o600"
        status = _coord("ensemble", "status", "--dir", str(directory))
        assert status.returncode == 0, status.stderr
        modes = sorted(line.split()[3] for line in status.stdout.splitlines()[1:])
        assert modes == ["follower", "follower", "leader"]
        again = _coord("ensemble", "up", "--dir", str(directory))
        assert again.returncode == 2 and "ensemble down" in again.stderr
        os.kill(members[0]["pid"], signal.SIGKILL)
        status = _coord("ensemble", "status", "--dir", str(directory))
        assert status.returncode == 1  # a member is down
        assert "down" in status.stdout.splitlines()[1]
    finally:
        down = _coord("ensemble", "down", "--dir", str(directory))
    assert down.returncode == 0 and "stopped 2 members" in down.stdout
    # Up again restarts the same members with their data.
    up = _coord("ensemble", "up", "--dir", str(directory))
    try:
        assert up.returncode == 0, up.stderr
        assert "restarting the 3 members" in up.stderr
    finally:
        _coord("ensemble", "down", "--dir", str(directory))


def test_ensemble_up_of_one_member_is_a_standalone_server(tmp_path: Path) -> None:
    up = _coord("ensemble", "up", "--dir", str(tmp_path), "--size", "1", "--timeout", "20")
    try:
        assert up.returncode == 0, up.stderr
        status = _coord("ensemble", "status", "--dir", str(tmp_path))
        assert status.stdout.splitlines()[1].split()[3] == "standalone"
    finally:
        _coord("ensemble", "down", "--dir", str(tmp_path))


def test_ensemble_status_without_an_ensemble_says_what_to_do(tmp_path: Path) -> None:
    status = _coord("ensemble", "status", "--dir", str(tmp_path))
    assert status.returncode == 2
    assert "coord ensemble up --dir" in status.stderr

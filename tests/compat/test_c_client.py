"""The Apache ZooKeeper C client (``cli_mt`` from Debian's zookeeper-bin) works unchanged.

Each command runs in batch mode (``cmd:...``) against coord and against Apache ZooKeeper;
the result codes and listed names must agree.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"


def _cli_mt(address: str, command: str) -> str:
    if not os.path.exists(CLI_MT):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{CLI_MT} is missing: install Debian's zookeeper-bin")
        pytest.skip(f"{CLI_MT} is missing: apt-get install zookeeper-bin")
    # cli_mt's batch mode does not always exit after a failed command; its output is
    # complete once the result line is printed, so a stuck process is simply killed.
    process = subprocess.Popen(
        [CLI_MT, address, f"cmd:{command}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=3)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return out + err


def _codes(output: str) -> list[str]:
    """The result lines: ``rc = N`` and ``Error N`` codes, in order."""
    return [a or b for a, b in re.findall(r"rc = (-?\d+)|Error (-?\d+)", output)]


def _children(output: str) -> list[str]:
    return sorted(line.strip() for line in output.splitlines() if line.startswith("\t"))


def test_CClient_create_get_ls_delete(target, root):
    """create, get, ls, exists and delete through the C client give the same codes."""
    address = target.address
    assert _codes(_cli_mt(address, f"create {root}")) == ["0"]
    assert _codes(_cli_mt(address, f"create {root}/a")) == ["0"]
    assert _codes(_cli_mt(address, f"create {root}/a")) == ["-110"]
    assert _codes(_cli_mt(address, f"create {root}/missing/b")) == ["-101"]
    assert "version=0" in _cli_mt(address, f"get {root}/a")
    listing = _cli_mt(address, f"ls {root}")
    assert _codes(listing) == ["0"]
    assert _children(listing) == ["a"]
    assert _codes(_cli_mt(address, f"exists {root}/nope")) == ["-101"]
    assert _codes(_cli_mt(address, f"delete {root}")) == ["-111"]
    assert _codes(_cli_mt(address, f"delete {root}/a")) == ["0"]
    assert _codes(_cli_mt(address, f"delete {root}")) == ["0"]


def test_CClient_ephemeral_node_disappears_with_its_session(target, root):
    """An ephemeral node made by a batch-mode C client is gone once that client exits."""
    address = target.address
    assert _codes(_cli_mt(address, f"create {root}")) == ["0"]
    assert _codes(_cli_mt(address, f"create +e {root}/e")) == ["0"]
    assert _codes(_cli_mt(address, f"exists {root}/e")) == ["-101"]

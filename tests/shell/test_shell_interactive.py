"""The interactive shell in a real terminal: tmux runs ``coord shell``, the test types
with ``send-keys`` (Tab for completion, Ctrl-C to stop a watch) and reads the screen
with ``capture-pane``."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import coord


def _require_tmux() -> str:
    tmux = shutil.which("tmux")
    if tmux is None:
        reason = "tmux is not installed (apt-get install tmux)"
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(f"tmux is required on CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return tmux


class Terminal:
    """One tmux session on a private server socket."""

    def __init__(self, tmux: str, socket: str) -> None:
        self._tmux = tmux
        self._socket = socket

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(
            [self._tmux, "-L", self._socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return proc.stdout

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "shell", *keys)

    def alive(self) -> bool:
        proc = subprocess.run(
            [self._tmux, "-L", self._socket, "has-session", "-t", "shell"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return proc.returncode == 0

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "shell")

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 15) -> str:
        """Poll the screen until ``check(screen)`` holds (terminal output has no other
        completion signal); fail with the screen after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; the screen:\n{screen}")
            time.sleep(0.05)


@pytest.fixture
def terminal(tmp_path: Path, coord_session_server) -> Iterator[tuple[Terminal, str]]:
    tmux = _require_tmux()
    address = f"{coord_session_server.host}:{coord_session_server.port}"
    socket = f"coord-shell-test-{uuid.uuid4().hex[:8]}"
    term = Terminal(tmux, socket)
    command = shlex.join(
        ["env", f"HOME={tmp_path}", sys.executable, "-m", "coord", "shell", address]
    )
    term.tmux("new-session", "-d", "-s", "shell", "-x", "160", "-y", "40", command)
    try:
        yield term, address
    finally:
        subprocess.run([tmux, "-L", socket, "kill-server"], capture_output=True, check=False)


def test_Shell_in_a_terminal_completes_watches_and_stops_on_ctrl_c(terminal, root: str) -> None:
    term, address = terminal
    with coord.connect_sync(address) as other:
        other.create(f"{root}/alpha-node", b"first", makepath=True)
        term.wait_for(lambda s: "(CONNECTED) 0]" in s, "the first prompt", timeout=30)

        # Tab completes a path (listing the parent on the server), then a command name.
        term.send(f"get {root}/al", "Tab")
        term.wait_for(lambda s: f"get {root}/alpha-node" in s, "the completed path")
        term.send("Enter")
        term.wait_for(lambda s: "first" in s and "(CONNECTED) 1]" in s, "get's output")
        term.send("printw", "Tab")
        term.wait_for(lambda s: "1] printwatches" in s, "the completed command")
        term.send("Enter")
        term.wait_for(lambda s: "printwatches is on" in s, "printwatches' output")

        # A notification arriving while a line is typed prints above it; the prompt and
        # the line are drawn again, and typing goes on.
        term.send(f"get -w {root}/alpha-node", "Enter")
        term.wait_for(lambda s: "(CONNECTED) 3]" in s, "the prompt after get -w")
        term.send(f"ls {root}")
        term.wait_for(lambda s: s.rstrip().endswith(f"3] ls {root}"), "the typed line")
        other.set(f"{root}/alpha-node", b"changed")
        screen = term.wait_for(
            lambda s: s.rstrip().endswith(f"3] ls {root}") and "NodeDataChanged" in s,
            "the event above the redrawn line",
        )
        assert f"WatchedEvent state:SyncConnected type:NodeDataChanged path:{root}/alpha-node" in (
            screen
        )
        term.send("Enter")
        term.wait_for(lambda s: "[alpha-node]" in s and "(CONNECTED) 4]" in s, "ls' output")

        # watch prints events as they come, until Ctrl-C returns to the prompt.
        term.send(f"watch -R {root}", "Enter")
        term.wait_for(lambda s: "Ctrl-C to stop" in s, "the watch to start")
        other.set(f"{root}/alpha-node", b"second")
        other.create(f"{root}/beta")
        screen = term.wait_for(
            lambda s: f"type:NodeCreated path:{root}/beta" in s, "the watch events"
        )
        assert f"type:NodeDataChanged path:{root}/alpha-node" in screen
        term.send("C-c")
        term.wait_for(lambda s: "(CONNECTED) 5]" in s, "the prompt after Ctrl-C")
        term.send(f"tree {root}", "Enter")
        screen = term.wait_for(lambda s: "└── beta" in s, "the tree")
        assert "├── alpha-node" in screen

        # An error is printed and the shell goes on; quit ends it.
        term.send(f"get {root}/missing", "Enter")
        term.wait_for(lambda s: f"Node does not exist: {root}/missing" in s, "the error")
        term.send("quit", "Enter")
        deadline = time.monotonic() + 10
        while term.alive():  # the shell exited: tmux ends the session
            assert time.monotonic() < deadline, "the shell did not quit"
            time.sleep(0.05)
        other.delete(root, recursive=True)

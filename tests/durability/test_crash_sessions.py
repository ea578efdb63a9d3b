"""Sessions and their ephemeral nodes across a SIGKILL of the server.

The rule under test (as ZooKeeper after a restart): sessions are durable; a restarted
server restores every session with a *fresh* timeout, counted from the restart -- however
long the server was down -- so a client that reconnects in time keeps its session and its
ephemeral nodes, while the ephemeral nodes of a session nobody resumes are removed once
that timeout has passed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from durability_support import LeanClient, ServerProcess, SessionRefused

from coord.protocol import CreateMode

TIMEOUT_MS = 2500
#: Long enough for a slow start-up on a loaded machine to fit in the timeout.
ARGS = ["--max-session-timeout", "10000"]


@pytest.mark.slow
def test_Server_restores_sessions_with_a_fresh_timeout_after_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with ServerProcess(data_dir, tmp_path / "first.log", args=ARGS) as server:
        server.wait_ready()
        keeper = LeanClient.connect(server.port, timeout_ms=TIMEOUT_MS)
        goner = LeanClient.connect(server.port, timeout_ms=TIMEOUT_MS)
        assert keeper.timeout_ms == goner.timeout_ms == TIMEOUT_MS
        keeper.create("/keeper", b"", CreateMode.EPHEMERAL)
        goner.create("/goner", b"", CreateMode.EPHEMERAL)
        goner_seq = goner.create("/goner-", b"", CreateMode.EPHEMERAL_SEQUENTIAL)
        assert server.kill() == -9
    keeper.close()
    goner.close()
    # Down for longer than the sessions' timeout.
    time.sleep(TIMEOUT_MS / 1000 + 0.5)
    with ServerProcess(data_dir, tmp_path / "second.log", args=ARGS) as server:
        server.wait_ready()
        with LeanClient.connect(server.port) as checker:
            since_start = time.monotonic() - server.spawned_at
            assert since_start < TIMEOUT_MS / 1000 * 0.8, f"slow start-up: {since_start:.2f} s"
            for path in ("/keeper", "/goner", goner_seq):
                stat = checker.exists(path)
                assert stat is not None, f"{path} gone {since_start:.2f} s after the restart"
            assert checker.exists("/keeper").ephemeral_owner == keeper.session_id  # type: ignore[union-attr]
            # The keeper resumes its session.
            resumed = LeanClient.connect(
                server.port,
                timeout_ms=TIMEOUT_MS,
                session_id=keeper.session_id,
                passwd=keeper.passwd,
                last_zxid=keeper.last_zxid,
            )
            assert resumed.session_id == keeper.session_id
            # Nobody resumes the goner's: its ephemerals go after its fresh timeout.
            deadline = time.monotonic() + TIMEOUT_MS / 1000 + 5
            while checker.exists("/goner") is not None:
                assert time.monotonic() < deadline, "the goner's ephemerals were never removed"
                resumed.ping()
                time.sleep(0.05)
            gone_after = time.monotonic() - server.spawned_at
            assert gone_after >= TIMEOUT_MS / 1000 * 0.95, (
                f"ephemeral removed {gone_after:.2f} s after the restart, before the session's "
                f"{TIMEOUT_MS} ms timeout: the timeout was not fresh"
            )
            assert checker.exists(goner_seq) is None
            # The goner's session is expired: it cannot be resumed.
            try:
                LeanClient.connect(
                    server.port, session_id=goner.session_id, passwd=goner.passwd
                ).close()
                raise AssertionError("the expired session was resumed")
            except SessionRefused:
                pass
            # The keeper's session lives on while it pings, past its timeout again.
            until = time.monotonic() + TIMEOUT_MS / 1000 * 1.5
            while time.monotonic() < until:
                resumed.ping()
                checker.ping()
                time.sleep(0.1)
            assert checker.exists("/keeper") is not None
            resumed.close_session()
            assert checker.exists("/keeper") is None
        assert server.terminate() == 0, server.output()

"""One data directory, one server: the directory lock.

The rule under test (``RocksDBStore.open``): a second server started on a data directory
in use refuses to start -- exit status non-zero, a message naming the directory and the
pid holding it, never serving -- and the first server is unaffected. The lock dies with
its process, so after a SIGKILL a new server starts without manual clean-up.
"""

from __future__ import annotations

from pathlib import Path

from durability_support import LeanClient, ServerProcess, never_serves, ruok

from coord.protocol import OpCode, SetDataRequest


def test_Server_second_server_on_the_same_data_directory_refuses_to_start(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with ServerProcess(data_dir, tmp_path / "first.log") as first:
        first.wait_ready()
        with LeanClient.connect(first.port) as client:
            client.create("/kept", b"1")
        second = ServerProcess(data_dir, tmp_path / "second.log").start()
        try:
            status = never_serves(second)
        finally:
            second.kill()
        output = second.output()
        assert status not in (0, -9), f"exit status {status}:\n{output}"
        assert str(data_dir) in output, f"the message does not name the directory:\n{output}"
        assert f"pid {first.pid}" in output, f"the message does not name the holder:\n{output}"
        assert "Traceback" not in output, output
        # The first server goes on serving, reads and writes.
        assert ruok(first.port)
        with LeanClient.connect(first.port) as client:
            got = client.get_data("/kept")
            assert got is not None and got[0] == b"1"
            reply = client.call(OpCode.SET_DATA, SetDataRequest("/kept", b"2", 0))
            assert reply.err == 0
        # SIGKILL: no clean-up at all; the lock goes with the process.
        assert first.kill() == -9
    with ServerProcess(data_dir, tmp_path / "third.log") as third:
        third.wait_ready()
        with LeanClient.connect(third.port) as client:
            got = client.get_data("/kept")
            assert got is not None and got[0] == b"2" and got[1].version == 1
        assert third.terminate() == 0, third.output()

"""A failing fsync stops the server (fail-stop) and loses no acknowledged write.

When the kernel reports that a sync failed, the data written since the last good sync may
not be on disk; a write acknowledged after that would be a lie. The rule under test: the
server logs a critical "storage failure" naming the I/O error, exits with a non-zero
status, acknowledges nothing whose batch was not synced, and a restart (without the
fault) recovers every acknowledged write.

The fault comes from ``coord/testing/_faults/failsync.c``, an ``LD_PRELOAD`` shim built
with gcc into the test's directory (skipped without gcc, except under ``CI=true``). The
first test establishes, with the shim's call log, which calls RocksDB makes to sync its
write-ahead log (``fdatasync`` on ``NNNNNN.log``), so the others fail the right thing.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from durability_support import (
    LeanClient,
    NumberedWrites,
    Pipeline,
    Reply,
    ServerGone,
    ServerProcess,
    never_serves,
    seed_for,
)

from coord.testing._faults import FaultShimUnavailable, build_failsync


@pytest.fixture
def failsync(tmp_path: Path) -> Path:
    """The shim, compiled for this test."""
    try:
        return build_failsync(tmp_path / "shim")
    except FaultShimUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def sync_log(path: Path) -> list[tuple[str, int, str, str]]:
    """The shim's log: ``(function, counted call number, outcome, path)`` per call."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        function, number, outcome, file = line.split(" ", 3)
        rows.append((function, int(number), outcome, file))
    return rows


def is_wal(file: str) -> bool:
    name = os.path.basename(file)
    return "/rocksdb/" in file and name.endswith(".log") and name[:-4].isdigit()


def test_RocksDBStore_syncs_its_write_ahead_log_with_fdatasync(
    tmp_path: Path, failsync: Path
) -> None:
    """Each acknowledged batch costs one WAL sync, made with fdatasync (what the fault
    tests below make fail)."""
    log = tmp_path / "sync.log"
    env = {"LD_PRELOAD": str(failsync), "FAILSYNC_LOG": str(log)}
    writes = NumberedWrites()
    with ServerProcess(tmp_path / "data", tmp_path / "server.log", env=env) as server:
        server.wait_ready()
        with LeanClient.connect(server.port) as client:
            writes.setup(client)
            before = [row for row in sync_log(log) if is_wal(row[3])]
            Pipeline(client, 1).run(writes.requests(20), writes.on_reply)
            after = [row for row in sync_log(log) if is_wal(row[3])]
        assert server.terminate() == 0, server.output()
    rows = sync_log(log)
    assert rows, "the shim saw no sync call: is LD_PRELOAD effective?"
    functions = {row[0] for row in after[len(before) :]}
    assert functions == {"fdatasync"}, f"the WAL is synced with {functions}"
    # One synced batch per write sent alone (plus possibly the idle barrier's).
    assert len(after) - len(before) >= 20, f"{len(after) - len(before)} WAL syncs for 20 writes"
    print("sync calls seen:", sorted({(row[0], os.path.basename(row[3])[-8:]) for row in rows}))


def _fail_stop_run(
    tmp_path: Path,
    failsync: Path,
    env: dict[str, str],
    ctx: str,
    window: int,
    arm: Callable[[], None] | None = None,
) -> tuple[NumberedWrites, set[int], str]:
    """Write until the server dies; returns the workload, the writes sent after ``arm()``
    was called, and the server's output. Checks the exit is a fail-stop."""
    log = tmp_path / "sync.log"
    env = {"LD_PRELOAD": str(failsync), "FAILSYNC_LOG": str(log), **env}
    writes = NumberedWrites(lambda j: 100 + (j * 7919) % 3000)
    after_arm: set[int] = set()
    armed = False
    with ServerProcess(tmp_path / "data", tmp_path / "faulty.log", env=env) as server:
        server.wait_ready()
        with LeanClient.connect(server.port) as client:
            writes.setup(client)
            if arm is not None:
                Pipeline(client, window).run(writes.requests(50), writes.on_reply)
                arm()
                armed = True

            def on_send(j: int) -> None:
                if armed:
                    after_arm.add(j)

            def on_reply(j: int, reply: Reply) -> None:
                assert j not in after_arm, (
                    f"{ctx} write {j} was sent after the fsync failure was armed, yet acknowledged"
                )
                writes.on_reply(j, reply)

            with pytest.raises(ServerGone):
                Pipeline(client, window).run(writes.requests(20_000), on_reply, on_send)
                pytest.fail(f"{ctx} the server kept acknowledging writes")
        status = server.wait_exit(30)
        output = server.output()
    assert status > 0, f"{ctx} exit status {status}:\n{output}"
    assert "storage failure" in output, f"{ctx} no storage failure logged:\n{output}"
    assert "input/output error" in output.lower(), f"{ctx} cause not named:\n{output}"
    assert "Traceback" not in output, f"{ctx} the server crashed:\n{output}"
    failed = [row for row in sync_log(log) if row[2] == "EIO"]
    assert failed, f"{ctx} no sync failed, yet the server stopped:\n{output}"
    assert is_wal(failed[0][3]), f"{ctx} the first failed sync is not the WAL's: {failed[0]}"
    return writes, after_arm, output


def _restart_and_check(tmp_path: Path, writes: NumberedWrites, ctx: str) -> int:
    with ServerProcess(tmp_path / "data", tmp_path / "restart.log") as server:
        server.wait_ready()
        with LeanClient.connect(server.port) as client:
            count = writes.check(client, ctx)
            op, record = writes.request(writes.sent)
            assert client.call(op, record).err == 0, f"{ctx} no write after the restart"
        assert server.terminate() == 0, server.output()
    return count


def test_Server_fsync_error_stops_the_server_and_acknowledges_nothing_after_it(
    tmp_path: Path, failsync: Path
) -> None:
    """The fault is armed by creating a trigger file: no write sent after that may be
    acknowledged (its batch's sync comes after, and fails)."""
    seed = seed_for("fsync-trigger")
    rng = random.Random(seed)
    window = rng.choice([1, 8, 64])
    ctx = f"[seed={seed} fsync-trigger window={window}]"
    trigger = tmp_path / "fail-now"
    writes, after_arm, _ = _fail_stop_run(
        tmp_path,
        failsync,
        {"FAILSYNC_TRIGGER": str(trigger)},
        ctx,
        window,
        arm=trigger.touch,
    )
    assert len(writes.acked) >= 50, f"{ctx} writes before the trigger were not acknowledged"
    assert after_arm, f"{ctx} no write was sent after the trigger"
    count = _restart_and_check(tmp_path, writes, ctx)
    print(f"{ctx} acked {len(writes.acked)}, sent {writes.sent}, there after restart {count}")


@pytest.mark.parametrize("run", range(2))
def test_Server_fsync_error_after_n_wal_syncs_loses_no_acknowledged_write(
    tmp_path: Path, failsync: Path, run: int
) -> None:
    """The (N+1)-th sync of the write-ahead log fails, N seeded."""
    seed = seed_for(f"fsync-after-n-{run}")
    rng = random.Random(seed)
    syncs = rng.randint(4, 200)
    window = rng.choice([1, 8, 64])
    ctx = f"[seed={seed} fsync-after={syncs} window={window}]"
    writes, _, _ = _fail_stop_run(
        tmp_path, failsync, {"FAILSYNC_MATCH": ".log", "FAILSYNC_AFTER": str(syncs)}, ctx, window
    )
    count = _restart_and_check(tmp_path, writes, ctx)
    print(f"{ctx} acked {len(writes.acked)}, sent {writes.sent}, there after restart {count}")


def test_Server_refuses_to_start_when_the_data_directory_cannot_sync(
    tmp_path: Path, failsync: Path
) -> None:
    """Every sync fails from the start: the server says so and never serves."""
    env = {"LD_PRELOAD": str(failsync), "FAILSYNC_AFTER": "0"}
    server = ServerProcess(tmp_path / "data", tmp_path / "server.log", env=env).start()
    try:
        status = never_serves(server)
    finally:
        server.kill()
    output = server.output()
    assert status > 0, output
    assert "input/output error" in output.lower(), output
    assert str(tmp_path / "data") in output, output
    assert "Traceback" not in output, output

"""The write path's dangerous instants, made reproducible with failpoints.

``COORD_FAILPOINTS=name:N`` makes the server SIGKILL itself the N-th time it reaches
``name`` (coord/server/_failpoints.py); each group-commit batch of proposed writes reaches
each point once. The rules under test:

* a write acknowledged before the crash is there after a restart;
* the crashing batch is there entirely or not at all -- never part of it, never part of a
  multi -- and what is there of one session's writes is a prefix of what it sent;
* ``before-log-write``: the batch never reached the store, so it is absent;
* ``after-log-write`` and ``before-reply``: the batch is durable, so after the restart it
  IS there although nobody was told -- which proves that recovery replays the log after
  the persisted applied index (the test also checks that on disk the applied index is
  behind the log before the restart);
* ``mid-compaction``: a crash while a batch that compacts the log is about to be written
  loses nothing, and compaction works after the restart.

The server for each test is first set up by a clean run (no failpoint), so the N-th batch
of the failpoint run is known exactly: batch 1 creates the session, batches 2..K+1 are K
writes sent one at a time, batch K+2 is a burst sent in one piece.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durability_support import (
    OPEN_ACL,
    LeanClient,
    Pipeline,
    Reply,
    ServerGone,
    ServerProcess,
    seed_for,
    store_info,
)

from coord.protocol import (
    CreateRequest,
    MultiOp,
    MultiRequest,
    OpCode,
    SetDataRequest,
)
from coord.protocol import ErrorCode as Err


def start(tmp_path: Path, name: str, **kwargs: Any) -> ServerProcess:
    return ServerProcess(tmp_path / "data", tmp_path / f"{name}.log", **kwargs).start()


def setup_store(tmp_path: Path, args: list[str] | None = None) -> int:
    """Create ``/fp`` and ``/fp/c`` with a clean server; returns the log's last index."""
    with start(tmp_path, "setup", args=args or []) as server:
        server.wait_ready()
        with LeanClient.connect(server.port) as client:
            client.create("/fp")
            client.create("/fp/c", b"0")
            client.close_session()
        assert server.terminate() == 0, server.output()
    info = store_info(tmp_path / "data")
    assert info["applied_index"] == info["last_index"], info
    return int(info["last_index"])


def multi(j: int, version: int) -> MultiRequest:
    """Create ``/fp/m<j>a`` and ``/fp/m<j>b`` and set ``/fp/c`` at ``version``."""
    return MultiRequest(
        (
            MultiOp(OpCode.CREATE, CreateRequest(f"/fp/m{j}a", b"a", OPEN_ACL, 0)),
            MultiOp(OpCode.CREATE, CreateRequest(f"/fp/m{j}b", b"b", OPEN_ACL, 0)),
            MultiOp(OpCode.SET_DATA, SetDataRequest("/fp/c", str(version + 1).encode(), version)),
        )
    )


def multi_states(client: LeanClient, js: list[int], seed: int) -> list[bool]:
    """Whether each multi of ``js`` is there; fails if only part of one is."""
    got = client.get_many([f"/fp/m{j}{half}" for j in js for half in "ab"])
    states = []
    for j in js:
        a, b = got[f"/fp/m{j}a"] is not None, got[f"/fp/m{j}b"] is not None
        assert a == b, f"[seed={seed}] multi {j} half applied: a={a} b={b}"
        states.append(a)
    return states


def multi_state(client: LeanClient, j: int, seed: int) -> bool:
    return multi_states(client, [j], seed)[0]


def test_Server_command_accepts_COORD_FAILPOINTS_in_its_environment(tmp_path: Path) -> None:
    """Failpoints are armed through ``COORD_FAILPOINTS`` (coord/server/_failpoints.py);
    the configuration loader, which rejects unknown ``COORD_*`` variables, must not refuse
    it -- else no failpoint can be used with ``coord server``."""
    with start(tmp_path, "server", env={"COORD_FAILPOINTS": "before-reply:1000000"}) as server:
        server.wait_ready()
        with LeanClient.connect(server.port) as client:
            client.create("/armed-but-not-reached")
        assert server.terminate() == 0, server.output()


@pytest.mark.parametrize("point", ["before-log-write", "after-log-write", "before-reply"])
def test_Server_failpoint_crash_keeps_acked_writes_and_whole_batches(
    tmp_path: Path, point: str
) -> None:
    seed = seed_for(f"failpoint-{point}")
    rng = random.Random(seed)
    ctx = f"[seed={seed} failpoint={point}]"
    last0 = setup_store(tmp_path)
    singles = rng.randint(2, 20)
    crash_batch = singles + 2
    server = start(tmp_path, "failpoint", env={"COORD_FAILPOINTS": f"{point}:{crash_batch}"})
    acked: list[str] = []
    burst: list[tuple[str, int]] = []
    try:
        server.wait_ready()
        client = LeanClient.connect(server.port)  # batch 1: the session
        for j in range(singles):  # batches 2..singles+1, one multi each
            reply = client.call(OpCode.MULTI, multi(j, j))
            assert reply.err == 0, f"{ctx} multi {j}: {Err(reply.err).name}"
            acked.append(f"m{j}")
        # The crashing batch: a multi, then sets of /fp/c and creates, sent in one piece.
        j = singles
        burst.append(("multi", client.send(OpCode.MULTI, multi(j, j))))
        for v in range(j + 1, j + 4):
            set_data = SetDataRequest("/fp/c", str(v + 1).encode(), v)
            burst.append(("set", client.send(OpCode.SET_DATA, set_data)))
        for x in range(2):
            create = CreateRequest(f"/fp/x{x}", b"", OPEN_ACL, 0)
            burst.append(("create", client.send(OpCode.CREATE, create)))
        client.flush()
        with pytest.raises(ServerGone):
            reply = client.recv()
            pytest.fail(f"{ctx} a write of the crashing batch was acknowledged: {reply}")
        status = server.wait_exit(10)
        assert status == -9, f"{ctx} exit status {status}:\n{server.output()}"
        client.close()
    finally:
        server.kill()
    # On disk, before any restart: the batch is there (or not), the applied index behind.
    info = store_info(tmp_path / "data")
    on_disk = int(info["last_index"]) - (last0 + 1 + singles)
    print(f"{ctx} store after the crash: {info}; entries of the crashing batch: {on_disk}")
    if point == "before-log-write":
        assert on_disk == 0, f"{ctx} the batch was written although it crashed before: {info}"
    else:
        assert 1 <= on_disk <= len(burst), f"{ctx} the crashing batch is not durable: {info}"
        assert info["applied_index"] < info["last_index"], (
            f"{ctx} expected log entries after the applied index: {info}"
        )
    with start(tmp_path, "restart") as server:
        server.wait_ready()
        with LeanClient.connect(server.port) as client:
            assert all(multi_states(client, list(range(singles)), seed)), (
                f"{ctx} an acknowledged multi was lost"
            )
            present = [multi_state(client, singles, seed)]
            got = client.get_data("/fp/c")
            assert got is not None
            data, stat = got
            assert data == str(stat.version).encode(), f"{ctx} /fp/c {data!r} {stat}"
            sets_applied = stat.version - singles  # the burst's multi counts as one set
            present += [sets_applied >= n for n in range(2, 5)]
            present += [client.exists(f"/fp/x{x}") is not None for x in range(2)]
            count = sum(present)
            assert present == [True] * count + [False] * (len(present) - count), (
                f"{ctx} what survived of the burst is not a prefix: {present}"
            )
            if point == "before-log-write":
                assert count == 0, f"{ctx} writes of a batch never written are there"
            else:
                # Durable though never acknowledged: recovery replayed them.
                assert count == on_disk, (
                    f"{ctx} {on_disk} entries of the crashing batch are on disk but "
                    f"{count} writes are there after the restart"
                )
            # The server goes on with the next write.
            reply = client.call(OpCode.SET_DATA, SetDataRequest("/fp/c", b"next", stat.version))
            assert reply.err == 0, f"{ctx} {Err(reply.err).name}"
        assert server.terminate() == 0, server.output()


@pytest.mark.parametrize("hit", [1, 2])
def test_Server_crash_mid_compaction_loses_nothing_and_compacts_after_restart(
    tmp_path: Path, hit: int
) -> None:
    """Compaction is made cheap with ``--log-retain 10`` (compact past 20 entries)."""
    seed = seed_for(f"mid-compaction-{hit}")
    ctx = f"[seed={seed} mid-compaction:{hit}]"
    retain = ["--log-retain", "10"]
    setup_store(tmp_path, retain)
    server = start(
        tmp_path, "failpoint", env={"COORD_FAILPOINTS": f"mid-compaction:{hit}"}, args=retain
    )
    acked: set[int] = set()
    sent: list[int] = []
    try:
        server.wait_ready()
        client = LeanClient.connect(server.port)
        pipeline = Pipeline(client, window=random.Random(seed).choice([8, 32, 64]))

        def requests() -> Iterator[tuple[int, MultiRequest, int]]:
            for j in range(20_000):
                sent.append(j)
                yield OpCode.MULTI, multi(j, j), j

        def on_reply(j: int, reply: Reply) -> None:
            assert reply.err == 0, f"{ctx} multi {j}: {Err(reply.err).name}"
            acked.add(j)

        with pytest.raises(ServerGone):
            pipeline.run(requests(), on_reply)
            pytest.fail(f"{ctx} 20000 writes and the mid-compaction failpoint never hit")
        assert server.wait_exit(10) == -9, f"{ctx}\n{server.output()}"
        client.close()
    finally:
        server.kill()
    info = store_info(tmp_path / "data")
    first_before = int(info["first_index"])
    print(f"{ctx} store after the crash: {info}; {len(acked)} of {len(sent)} acknowledged")
    if hit == 2:
        assert first_before > 1, f"{ctx} the first compaction did not happen: {info}"
    with start(tmp_path, "restart", args=retain) as server:
        server.wait_ready()
        with LeanClient.connect(server.port) as client:
            present = multi_states(client, sent, seed)
            count = sum(present)
            assert present == [True] * count + [False] * (len(present) - count), (
                f"{ctx} the writes there are not a prefix of those sent"
            )
            assert acked <= set(range(count)), f"{ctx} acknowledged writes lost"
            got = client.get_data("/fp/c")
            assert got is not None and got[1].version == count, f"{ctx} /fp/c {got}"
            # Enough further writes to compact again, on the restarted server.
            for j in range(count, count + 60):
                reply = client.call(OpCode.MULTI, multi(j, j))
                assert reply.err == 0, f"{ctx} {Err(reply.err).name}"
            count += 60
        assert server.terminate() == 0, server.output()
    info = store_info(tmp_path / "data")
    assert int(info["first_index"]) > first_before, f"{ctx} no compaction after restart: {info}"
    assert int(info["entries"]) <= 2 * 10 + 2, f"{ctx} log not compacted: {info}"
    from coord.plugins.builtin.rocksdb_store import inspect

    assert inspect(tmp_path / "data", verify=True)["verified"]["entries"] == info["entries"]
    with start(tmp_path, "final", args=retain) as server:
        server.wait_ready()
        with LeanClient.connect(server.port) as client:
            assert all(multi_states(client, list(range(count)), seed)), ctx
            got = client.get_data("/fp/c")
            assert got is not None and got[1].version == count, f"{ctx} /fp/c {got}"

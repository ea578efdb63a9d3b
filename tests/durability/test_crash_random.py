"""Durability under SIGKILL at random moments, with real server processes.

The rule under test (ZooKeeper's guarantee "durability of acknowledged writes", DESIGN.md):
a write acknowledged to a client survives any crash of the server; a write in flight when
the server dies is either entirely there or entirely absent; and what survives is a prefix
of what the session sent, because one session's writes enter the log in order.

One writer session pipelines a seeded random mix of writes while a timer SIGKILLs the
server at a random moment (sometimes during start-up and recovery, sometimes while idle);
the server is restarted on the same data directory and the recovered tree is checked
against what the writer saw acknowledged:

* ``setData`` on counter nodes ``/c<i>``: the k-th set writes ``data(k)`` with expected
  version k-1. After a restart a counter's version v satisfies acked <= v <= sent (v is
  the acked count, or more when sets in flight made it), its data is ``data(v)`` (data and
  version never disagree) and, when v is the last acknowledged set, its Stat equals the
  Stat that set's reply carried, field for field.
* sequential creates under ``/seq``: each reply's name is predicted exactly (the suffix is
  the parent's cversion); after a restart the suffixes are exactly 0..n-1 in the order the
  creates were sent (none reused, none skipped), cversion is n, and the next create after
  the restart continues at n.
* ``multi`` (two creates under ``/multi`` and a versioned set of ``/mc``): all three or
  none, never part.
* an ephemeral node per round from a separate session: present right after the restart
  (the session was restored with a fresh timeout), gone once the session timeout passes.

The test runs for ``COORD_DURABILITY_BUDGET`` seconds (default 30) or 60 rounds; its seed
(``COORD_DURABILITY_SEED``) is printed and is part of every assertion message.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    wait_until,
)

from coord.protocol import (
    CreateMode,
    CreateRequest,
    CreateResponse,
    MultiOp,
    MultiRequest,
    MultiResponse,
    OpCode,
    SetDataRequest,
    SetDataResponse,
    Stat,
)
from coord.protocol import ErrorCode as Err

BUDGET = float(os.environ.get("COORD_DURABILITY_BUDGET", "30"))
MAX_ROUNDS = 60
COUNTERS = 3
#: Timeout of the sessions owning ephemerals, in ms (tick 100 ms: 200..2000 allowed).
EPHEMERAL_SESSION_MS = 1000
WRITER_SESSION_MS = 2000


def counter_data(k: int) -> bytes:
    """The data the k-th set of a counter writes: its number, padded to vary the size."""
    return f"{k}:".encode() + b"x" * ((k * 37) % 700)


@dataclass
class Op:
    """One write of a round, numbered ``g`` in the order it was sent."""

    g: int
    kind: str  # "set", "seq", "multi"
    node: int = 0  # set: counter index
    k: int = 0  # set: the counter's set number; multi: /mc's set number
    name: str = ""  # seq: the predicted name; multi: the suffix of its two nodes
    acked: bool = False


@dataclass
class Model:
    """What the client knows: sent and acknowledged writes, and the last verified state."""

    seed: int
    acked_k: list[int] = field(default_factory=lambda: [0] * COUNTERS)
    sent_k: list[int] = field(default_factory=lambda: [0] * COUNTERS)
    acked_stat: list[Stat | None] = field(default_factory=lambda: [None] * COUNTERS)
    mc_acked: int = 0
    mc_sent: int = 0
    seq_count: int = 0  # children of /seq known to exist
    seq_acked: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (round, g)
    multi_acked: set[str] = field(default_factory=set)
    ephemerals: dict[str, int] = field(default_factory=dict)  # path -> owner session
    max_zxid: int = 0
    ops: list[Op] = field(default_factory=list)  # this round's
    acked_total: int = 0

    def fail(self, message: str) -> str:
        return f"[seed={self.seed}] {message}"

    def __repr__(self) -> str:  # short: assertion messages carry the details
        return f"<Model seed={self.seed} acked={self.acked_total}>"


def seq_prefix(round_no: int, g: int) -> str:
    return f"r{round_no:04d}g{g:06d}-"


def round_requests(
    model: Model, round_no: int, rng: random.Random, cap: int
) -> Iterator[tuple[int, Any, Op]]:
    """The writes of one round, generated lazily (each as it is sent)."""
    seq_next = model.seq_count
    for g in range(cap):
        roll = rng.random()
        if roll < 0.5:
            i = rng.randrange(COUNTERS)
            model.sent_k[i] += 1
            k = model.sent_k[i]
            op = Op(g, "set", node=i, k=k)
            record: Any = SetDataRequest(f"/c{i}", counter_data(k), k - 1)
            code = OpCode.SET_DATA
        elif roll < 0.8:
            name = f"{seq_prefix(round_no, g)}{seq_next:010d}"
            seq_next += 1
            op = Op(g, "seq", name=name)
            record = CreateRequest(
                f"/seq/{seq_prefix(round_no, g)}", b"", OPEN_ACL, CreateMode.PERSISTENT_SEQUENTIAL
            )
            code = OpCode.CREATE
        else:
            model.mc_sent += 1
            k = model.mc_sent
            suffix = f"r{round_no:04d}g{g:06d}"
            op = Op(g, "multi", k=k, name=suffix)
            record = MultiRequest(
                (
                    MultiOp(OpCode.CREATE, CreateRequest(f"/multi/a-{suffix}", b"a", OPEN_ACL, 0)),
                    MultiOp(OpCode.CREATE, CreateRequest(f"/multi/b-{suffix}", b"b", OPEN_ACL, 0)),
                    MultiOp(OpCode.SET_DATA, SetDataRequest("/mc", str(k).encode(), k - 1)),
                )
            )
            code = OpCode.MULTI
        model.ops.append(op)
        yield code, record, op


def on_reply(model: Model, op: Op, reply: Reply) -> None:
    """Check one acknowledgement and record it."""
    assert reply.err == 0, model.fail(f"op {op} failed with {Err(reply.err).name}")
    assert reply.zxid > model.max_zxid, model.fail(
        f"ack of {op} has zxid 0x{reply.zxid:x}, not above 0x{model.max_zxid:x}"
    )
    model.max_zxid = reply.zxid
    op.acked = True
    model.acked_total += 1
    if op.kind == "set":
        stat = SetDataResponse.from_bytes(reply.body).stat
        assert stat.version == op.k, model.fail(f"set {op} acked with version {stat.version}")
        model.acked_k[op.node] = op.k
        model.acked_stat[op.node] = stat
    elif op.kind == "seq":
        path = CreateResponse.from_bytes(reply.body).path
        assert path == f"/seq/{op.name}", model.fail(
            f"sequential create {op} got {path}: the sequence counter did not continue"
        )
        model.seq_acked[op.name] = (0, op.g)
    else:
        results = MultiResponse.from_bytes(reply.body).results
        assert [r.err for r in results] == [0, 0, 0], model.fail(f"multi {op}: {results}")
        model.multi_acked.add(op.name)
        model.mc_acked = op.k


def setup_tree(client: LeanClient) -> None:
    for i in range(COUNTERS):
        client.create(f"/c{i}", counter_data(0))
    client.create("/mc", b"0")
    for parent in ("/seq", "/multi", "/eph"):
        client.create(parent)


def verify(model: Model, client: LeanClient, round_no: int, spawned_at: float) -> None:
    """Check the recovered tree against the model, then make the model match it."""
    fail = model.fail
    applied: dict[int, bool] = {}
    # Counters: acked <= version <= sent; data matches version; Stat as acknowledged.
    counters = client.get_many([f"/c{i}" for i in range(COUNTERS)])
    versions = []
    for i in range(COUNTERS):
        got = counters[f"/c{i}"]
        assert got is not None, fail(f"/c{i} is gone")
        data, stat = got
        v = stat.version
        versions.append(v)
        assert data == counter_data(v), fail(
            f"/c{i} has version {v} but data {(data or b'')[:12]!r}...: data and Stat disagree"
        )
        assert model.acked_k[i] <= v <= model.sent_k[i], fail(
            f"/c{i} has version {v}; acknowledged sets {model.acked_k[i]}, sent "
            f"{model.sent_k[i]}: an acknowledged write was lost"
            if v < model.acked_k[i]
            else f"/c{i} has version {v}, more than the {model.sent_k[i]} sets ever sent"
        )
        if v == model.acked_k[i] and model.acked_stat[i] is not None:
            assert stat == model.acked_stat[i], fail(
                f"/c{i} Stat after restart {stat} differs from the acknowledged "
                f"{model.acked_stat[i]}"
            )
    # /mc and the multis: all or nothing.
    got_mc = client.get_data("/mc")
    assert got_mc is not None, fail("/mc is gone")
    mc_data, mc_stat = got_mc
    vmc = mc_stat.version
    assert mc_data == str(vmc).encode(), fail(f"/mc version {vmc} but data {mc_data!r}")
    assert model.mc_acked <= vmc <= model.mc_sent, fail(
        f"/mc version {vmc}; acknowledged multis {model.mc_acked}, sent {model.mc_sent}"
    )
    multi_names, _ = client.children("/multi")
    present = set(multi_names)
    for suffix in model.multi_acked:
        assert f"a-{suffix}" in present and f"b-{suffix}" in present, fail(
            f"acknowledged multi {suffix} lost"
        )
    assert len(present) == 2 * vmc, fail(
        f"/multi has {len(present)} children but /mc was set {vmc} times by multis: "
        "a multi was applied in part"
    )
    # Sequential children: suffixes exactly 0..n-1, in the order sent, none reused.
    seq_names, seq_stat = client.children("/seq")
    by_suffix = sorted(seq_names, key=lambda name: int(name[-10:]))
    suffixes = [int(name[-10:]) for name in by_suffix]
    assert suffixes == list(range(len(seq_names))), fail(
        f"/seq suffixes are not 0..{len(seq_names) - 1}: {suffixes[:5]}... (reused or skipped)"
    )
    assert seq_stat.cversion == len(seq_names) == seq_stat.num_children, fail(
        f"/seq cversion {seq_stat.cversion}, {len(seq_names)} children"
    )
    prefixes = [name[:-10] for name in by_suffix]
    assert prefixes == sorted(prefixes) and len(set(prefixes)) == len(prefixes), fail(
        "sequential children are not numbered in the order they were created"
    )
    seq_present = set(seq_names)
    lost = [name for name in model.seq_acked if name not in seq_present]
    assert not lost, fail(f"acknowledged sequential nodes lost: {lost[:5]}")
    # This round's writes: acked ones applied, and the applied ones are a prefix.
    for op in model.ops:
        if op.kind == "set":
            applied[op.g] = op.k <= versions[op.node]
        elif op.kind == "seq":
            applied[op.g] = op.name in seq_present
        else:
            a, b = f"a-{op.name}" in present, f"b-{op.name}" in present
            assert a == b, fail(f"multi {op.name} half applied: a={a} b={b}")
            assert a == (op.k <= vmc), fail(f"multi {op.name}: creates {a}, set of /mc {vmc}")
            applied[op.g] = a
        if op.acked:
            assert applied[op.g], fail(f"acknowledged {op} is missing after the restart")
    count = sum(applied.values())
    assert all(applied[g] for g in range(count)), fail(
        f"round {round_no}: the applied writes are not a prefix of those sent: "
        f"{[g for g in range(len(model.ops)) if not applied[g]][:5]} missing among "
        f"the first {count}"
    )
    # Ephemerals: the last round's is back (its session restored with a fresh timeout).
    eph_names, _ = client.children("/eph")
    alive = time.monotonic() - spawned_at < EPHEMERAL_SESSION_MS / 1000 * 0.7
    for path, owner in model.ephemerals.items():
        if path.endswith(f"r{round_no:04d}") and alive:
            assert path.rsplit("/", 1)[1] in eph_names, fail(
                f"ephemeral {path} of a session restored {time.monotonic() - spawned_at:.2f} "
                "s ago is gone before its timeout"
            )
            eph_stat = client.exists(path)
            assert eph_stat is not None and eph_stat.ephemeral_owner == owner, fail(
                f"ephemeral {path} owner {eph_stat}"
            )
    # The model now follows what is durable.
    model.sent_k = list(versions)
    model.acked_k = list(versions)
    model.acked_stat = [counters[f"/c{i}"][1] for i in range(COUNTERS)]  # type: ignore[index]
    model.mc_sent = model.mc_acked = vmc
    model.seq_count = len(seq_names)
    model.ops = []


@pytest.mark.slow
def test_Server_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path: Path) -> None:
    seed = seed_for("crash-random")
    rng = random.Random(seed)
    model = Model(seed)
    data_dir = tmp_path / "data"
    instance = 0

    def new_server() -> ServerProcess:
        nonlocal instance
        instance += 1
        # A fresh port each time: another process may have taken the last one.
        return ServerProcess(data_dir, tmp_path / f"server-{instance:03d}.log").start()

    server = new_server().wait_ready()
    with LeanClient.connect(server.port) as client:
        setup_tree(client)
    started = time.monotonic()
    rounds = kills_at_startup = 0
    try:
        for round_no in range(1, MAX_ROUNDS + 1):
            if time.monotonic() - started > BUDGET:
                break
            rounds = round_no
            ephemeral_client: LeanClient | None = None
            try:
                ephemeral_client = LeanClient.connect(server.port, timeout_ms=EPHEMERAL_SESSION_MS)
                path = f"/eph/r{round_no:04d}"
                ephemeral_client.create(path, b"", CreateMode.EPHEMERAL)
                model.ephemerals[path] = ephemeral_client.session_id
            except ServerGone:
                pass
            cap = rng.choice([20, 300, 3000])
            window = rng.choice([1, 4, 32, 128])
            delay = rng.choice(
                [rng.uniform(0, 0.03), rng.uniform(0.03, 0.3), rng.uniform(0.3, 0.6)]
            )
            assert server.process is not None
            process = server.process
            timer = threading.Timer(delay, process.kill)
            timer.start()
            try:
                with LeanClient.connect(server.port, timeout_ms=WRITER_SESSION_MS) as writer:
                    Pipeline(writer, window).run(
                        round_requests(model, round_no, rng, cap),
                        lambda op, reply: on_reply(model, op, reply),
                    )
                    # Everything answered before the kill: it comes while idle.
                    timer.join()
            except ServerGone:
                pass
            finally:
                timer.join()
                if ephemeral_client is not None:
                    ephemeral_client.close()
            status = server.kill()
            assert status == -9, model.fail(
                f"server exited with {status} before the SIGKILL:\n{server.output()}"
            )
            if rng.random() < 0.15:
                # Kill it again while it starts up and recovers.
                kills_at_startup += 1
                server = new_server()
                time.sleep(rng.uniform(0, 0.3))
                server.kill()
            server = new_server().wait_ready()
            with LeanClient.connect(server.port) as checker:
                verify(model, checker, round_no, server.spawned_at)
                # The zxids go on increasing after the restart.
                assert checker.last_zxid >= 0
        assert rounds >= 3, model.fail(f"only {rounds} rounds ran in {BUDGET} s")
        # Finally: a graceful restart keeps everything too, and every ephemeral of the
        # killed sessions goes once the sessions' timeout has passed.
        assert server.terminate() == 0, model.fail(server.output())
        server = new_server().wait_ready()
        with LeanClient.connect(server.port) as checker:
            verify(model, checker, rounds, server.spawned_at)
            wait_until(
                lambda: not checker.children("/eph")[0],
                EPHEMERAL_SESSION_MS / 1000 + 5,
                model.fail("the ephemerals of killed sessions to be removed"),
            )
            # And the sequence counter continues after all the restarts.
            name = checker.create("/seq/final-", b"", CreateMode.PERSISTENT_SEQUENTIAL)
            assert name == f"/seq/final-{model.seq_count:010d}", model.fail(name)
        print(
            f"crash-random: seed={seed} rounds={rounds} kills-at-startup={kills_at_startup} "
            f"acked={model.acked_total} seq={model.seq_count} multis={model.mc_acked}"
        )
    finally:
        server.kill()

"""Micro-benchmarks of the durable store: the floor under group commit.

``python -m benchmarks.storage_bench --dir DIR`` measures, on the disk holding ``DIR``:

1. **fsync**: append ~150 bytes to a file and ``os.fsync`` it (and ``os.fdatasync``),
   p50/p99 over ``--fsyncs`` rounds -- what any durable write costs at least;
2. **synced batches**: :meth:`RocksDBStore.write` of batches of 1, 10 and 100 entries of
   ~150 bytes, each with a ~100-byte node record and the applied index (the shape of a
   commit), p50/p99 latency and entries/s, with the write inline and in a worker thread;
3. **group commit**: requests arrive at ``--rates`` per second (open loop, read in bursts
   of up to 256 whenever the event loop is free), a commit loop writes everything pending
   as one batch (as ``Server._commit_loop`` does), with a simulated ``--work-us`` of CPU
   per request (decode; apply and reply) split between arrival and commit: inline versus
   threaded writes, ops/s and latency from arrival, also on a simulated slower disk
   (``--slow-disk-ms`` added to every synced write);
4. **start-up**: ``--nodes`` node records of ~100 bytes: how long writing them, opening
   the store and ``iter_nodes`` take (recovery is "load the records").

Numbers are for this machine's disk; the ratios between the rows are what matter.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.lowlevel

from coord.plugins.builtin.rocksdb_store import THREAD_ABOVE_FSYNC, RocksDBStore
from coord.server._storage import StoreBatch

__all__ = ["fsync_latencies", "main"]

ENTRY = b"e" * 150
NODE = b"n" * 100


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:7.3f} ms"


def fsync_latencies(
    directory: Path, rounds: int, sync: Callable[[int], None] = os.fsync
) -> list[float]:
    """Append 150 bytes to a fresh file in ``directory`` and ``sync`` it, ``rounds`` times;
    the seconds each append + sync took. The file is removed afterwards."""
    path = directory / f"fsync-{os.getpid()}.probe"
    samples: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            os.write(fd, ENTRY)
            sync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    return samples


def bench_fsync(directory: Path, rounds: int) -> None:
    for name, sync in (("fsync", os.fsync), ("fdatasync", os.fdatasync)):
        samples = fsync_latencies(directory, rounds, sync)
        print(
            f"{name:10} 150 B append: p50 {_ms(_pct(samples, 50))}  "
            f"p99 {_ms(_pct(samples, 99))}  ({rounds} rounds)"
        )


def _batch(store: RocksDBStore, size: int) -> StoreBatch:
    first = store.last_index + 1
    return StoreBatch(
        entries=[(first + i, ENTRY) for i in range(size)],
        nodes={f"/bench/n{(first + i) % 10_000:05d}": NODE for i in range(size)},
        applied_index=first + size - 1,
    )


async def bench_batches(directory: Path, rounds: int) -> None:
    for threaded in (False, True):
        data_dir = directory / f"batches-{threaded}"
        store = RocksDBStore.open(data_dir, threaded_writes=threaded)
        try:
            for size in (1, 10, 100):
                samples: list[float] = []
                for _ in range(rounds):
                    batch = _batch(store, size)
                    start = time.perf_counter()
                    await store.write(batch)
                    samples.append(time.perf_counter() - start)
                total = sum(samples)
                mode = "thread" if threaded else "inline"
                print(
                    f"synced batch of {size:3} ({mode}): p50 {_ms(_pct(samples, 50))}  "
                    f"p99 {_ms(_pct(samples, 99))}  {rounds * size / total:9.0f} entries/s"
                )
        finally:
            await store.close()
        shutil.rmtree(data_dir)


def _spin(microseconds: float) -> None:
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


def _slow_disk(store: RocksDBStore, extra_ms: float) -> None:
    """Make every synced write ``extra_ms`` slower, as on a disk with a slower flush
    (sleeping, like an fsync, releases the GIL)."""
    if not extra_ms:
        return
    write_plan = store._write_plan

    def slower(plan: object, sync: bool) -> None:
        if sync:
            time.sleep(extra_ms / 1e3)
        write_plan(plan, sync)  # type: ignore[arg-type]

    store._write_plan = slower  # type: ignore[method-assign]


async def bench_group_commit(
    directory: Path,
    rate: float,
    seconds: float,
    work_us: float,
    threaded: bool,
    slow_ms: float,
) -> tuple[float, float, float, float]:
    """Requests arrive at ``rate``/s (open loop); returns ops/s completed, p50 and p99
    latency from arrival to reply (s), and the mean batch size."""
    data_dir = directory / f"group-{threaded}"
    store = RocksDBStore.open(data_dir, threaded_writes=threaded)
    _slow_disk(store, slow_ms)
    pending: list[float] = []
    wakeup = anyio.Event()
    latencies: list[float] = []
    batches = 0
    arriving = True

    async def commit_loop() -> None:
        nonlocal pending, wakeup, batches
        while arriving or pending:
            if not pending:
                wakeup = anyio.Event()
                await wakeup.wait()
                continue
            batch, pending = pending, []
            await store.write(_batch(store, len(batch)))
            batches += 1
            for arrival in batch:
                _spin(work_us / 2)  # apply, encode and send the reply
                latencies.append(time.perf_counter() - arrival)

    async def arrivals() -> None:
        nonlocal arriving
        start = time.perf_counter()
        sent = 0
        while (now := time.perf_counter()) - start < seconds:
            due = min(int((now - start) * rate), sent + 256)  # a read's worth of requests
            while sent < due:
                _spin(work_us / 2)  # read and decode the request
                pending.append(start + sent / rate)
                sent += 1
            wakeup.set()
            if sent < int((time.perf_counter() - start) * rate):
                await anyio.lowlevel.checkpoint()  # more are due: read them next turn
            else:  # the loop idles (in epoll, GIL released) until the next request is due
                await anyio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        arriving = False
        wakeup.set()

    start = time.perf_counter()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(commit_loop)
            tg.start_soon(arrivals)
    finally:
        await store.close()
        shutil.rmtree(data_dir)
    elapsed = time.perf_counter() - start
    return (
        len(latencies) / elapsed,
        _pct(latencies, 50),
        _pct(latencies, 99),
        len(latencies) / max(batches, 1),
    )


async def bench_startup(directory: Path, count: int) -> None:
    data_dir = directory / "startup"
    store = RocksDBStore.open(data_dir)
    start = time.perf_counter()
    chunk = 10_000
    for base in range(0, count, chunk):
        nodes: dict[str, bytes | None] = {
            f"/app/s{i // 1000:04d}/n{i:07d}": random.randbytes(len(NODE))
            for i in range(base, base + chunk)
        }
        await store.write(StoreBatch(nodes=nodes), sync=False)
    await store.write(StoreBatch(applied_index=1))
    written = time.perf_counter() - start
    await store.close()
    size = sum(f.stat().st_size for f in (data_dir / "rocksdb").iterdir())

    start = time.perf_counter()
    store = RocksDBStore.open(data_dir)
    opened = time.perf_counter() - start
    try:
        start = time.perf_counter()
        n = sum(1 for _ in store.iter_nodes())
        iterated = time.perf_counter() - start
        start = time.perf_counter()
        store.verify()
        verified = time.perf_counter() - start
    finally:
        await store.close()
    print(
        f"{count} node records of {len(NODE)} B: written (unsynced batches of {chunk}) in "
        f"{written:.2f} s; {size / 2**20:.0f} MiB on disk"
    )
    print(f"  open after a clean close: {_ms(opened)}")
    print(f"  iter_nodes over {n}: {iterated:.2f} s ({n / iterated:,.0f} records/s)")
    print(f"  verify (every record of every family): {verified:.2f} s")

    # A crash leaves the records in the WAL and memtables: open replays the WAL.
    shutil.rmtree(data_dir)
    store = RocksDBStore.open(data_dir)
    wal_nodes: dict[str, bytes | None] = {f"/w/n{i:07d}": NODE for i in range(200_000)}
    await store.write(StoreBatch(nodes=wal_nodes))
    crash_copy = directory / "startup-crashed"
    shutil.copytree(data_dir, crash_copy)  # the files as a crash would leave them
    await store.close()
    (crash_copy / "LOCK.coord").unlink()
    start = time.perf_counter()
    store = RocksDBStore.open(crash_copy)
    replayed = time.perf_counter() - start
    await store.close()
    print(f"  open replaying a WAL of 200000 records (~25 MiB): {_ms(replayed)}")
    shutil.rmtree(data_dir)
    shutil.rmtree(crash_copy)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.storage_bench")
    parser.add_argument("--dir", type=Path, help="a directory on the disk to measure")
    parser.add_argument("--fsyncs", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=1000, help="batches per size")
    parser.add_argument(
        "--rates", type=float, nargs="*", default=[1000, 5000, 15000, 1e7], help="offered ops/s"
    )
    parser.add_argument(
        "--slow-disk-ms",
        type=float,
        nargs="*",
        default=[0, 2],
        help="extra latency per synced write, simulating slower disks",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per group-commit run")
    parser.add_argument("--work-us", type=float, default=40.0, help="CPU per request")
    parser.add_argument("--nodes", type=int, default=1_000_000, help="0 skips start-up")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval (s): how long a worker thread may wait for the GIL",
    )
    args = parser.parse_args(argv)

    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    base = Path(tempfile.mkdtemp(prefix="storage-bench-", dir=args.dir))
    backend_options = {"use_uvloop": True} if args.uvloop else {}
    try:
        print(f"disk of {base}")
        bench_fsync(base, args.fsyncs)
        probe = RocksDBStore.open(base / "probe")
        mode = "a worker thread" if probe.threaded_writes else "inline"
        print(
            f"RocksDBStore.open's fsync probe: {_ms(probe.fsync_seconds)} -> synced writes "
            f"run {mode} (threshold {_ms(THREAD_ABOVE_FSYNC)})"
        )
        anyio.run(probe.close)
        anyio.run(bench_batches, base, args.batches, backend_options=backend_options)
        print(
            f"group commit, open loop, {args.work_us:.0f} us CPU per request, "
            f"{args.seconds:g} s runs (latency from arrival to reply):"
        )
        for slow_ms in args.slow_disk_ms:
            for rate in args.rates:
                for threaded in (False, True):
                    done, p50, p99, mean = anyio.run(
                        bench_group_commit,
                        base,
                        rate,
                        args.seconds,
                        args.work_us,
                        threaded,
                        slow_ms,
                        backend_options=backend_options,
                    )
                    mode = "thread" if threaded else "inline"
                    print(
                        f"  fsync +{slow_ms:g} ms, offered {rate:8.0f}/s ({mode}): "
                        f"{done:7.0f} ops/s  p50 {_ms(p50)}  p99 {_ms(p99)}  "
                        f"{mean:6.1f} per batch"
                    )
        if args.nodes:
            anyio.run(bench_startup, base, args.nodes, backend_options=backend_options)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

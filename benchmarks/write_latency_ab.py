"""A/B of coord's single-session write latency between source trees.

``python -m benchmarks.write_latency_ab TREE_A TREE_B [...] --rounds 6`` starts a fresh
``coord server`` (default durable storage) from each tree in turn -- ``PYTHONPATH=TREE``,
so a tree is any directory holding a ``coord`` package, e.g. ``git archive HEAD`` of
another commit unpacked under ``/tmp`` -- and, per run:

1. probes the disk where the server keeps its data (150 B append + ``fsync``, as
   ``benchmarks.compare``);
2. times ``-n`` setData requests (100 B, version -1) from one blocking raw-socket session
   with one request in flight (a client far simpler than any server: its cost is the
   same for every tree);
3. reads the server's CPU time around them (``/proc/PID/stat``).

Rounds alternate the order of the trees (A B, B A, ...), each run waits for the machine
to be idle (as ``compare --quiet-wait``), and the summary gives, per tree, the median and
the range over the rounds of: the probe's p50, the write p10/p50/p90, write p50 over the
probe's p50, and the server's CPU microseconds per write. It compares coord with coord;
``benchmarks.compare`` puts coord beside ZooKeeper.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import loadgen
from benchmarks.compare import wait_quiet
from benchmarks.storage_bench import fsync_latencies

__all__ = ["main", "run_tree"]

_INT = struct.Struct(">i")


def _string(value: bytes) -> bytes:
    return _INT.pack(len(value)) + value


def _frame(body: bytes) -> bytes:
    return _INT.pack(len(body)) + body


def _receive_frame(sock: socket.socket) -> bytes:
    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            if not chunk:
                raise EOFError("the server closed the connection")
            data += chunk
        return data

    return exactly(_INT.unpack(exactly(4))[0])


def _time_writes(port: int, count: int) -> list[float]:
    """Seconds per setData round trip, one session, one request in flight."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connect = struct.pack(">iqiq", 0, 0, 30000, 0) + _string(bytes(16)) + b"\0"
        sock.sendall(_frame(connect))
        _receive_frame(sock)
        path = f"/write-latency-ab-{os.getpid()}-{time.monotonic_ns()}".encode()
        acl = _INT.pack(1) + _INT.pack(31) + _string(b"world") + _string(b"anyone")
        create = struct.pack(">ii", 1, 1) + _string(path) + _string(b"x" * 100) + acl
        sock.sendall(_frame(create + _INT.pack(0)))
        if struct.unpack_from(">i", _receive_frame(sock), 12)[0] != 0:
            raise RuntimeError("create failed")
        request = _frame(
            struct.pack(">ii", 2, 5) + _string(path) + _string(b"y" * 100) + _INT.pack(-1)
        )
        clock = time.perf_counter
        samples = []
        for _ in range(count):
            started = clock()
            sock.sendall(request)
            reply = _receive_frame(sock)
            samples.append(clock() - started)
            if struct.unpack_from(">i", reply, 12)[0] != 0:
                raise RuntimeError("setData failed")
        return samples


def _percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_tree(tree: Path, writes: int, warmup: int = 300) -> dict[str, float]:
    """One run against a fresh server from ``tree``: ms (fsync, p10, p50, p90), µs cpu."""
    directory = Path(tempfile.mkdtemp(prefix="coord-ab-"))
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(tree))
    data_dir = str(directory / "data")
    command = [sys.executable, "-m", "coord", "server", "--host", "127.0.0.1", "--port",
               str(port), "--data-dir", data_dir, "--max-client-connections", "0"]  # fmt: skip
    with open(directory / "server.log", "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tree)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                loadgen.probe("127.0.0.1", port, timeout=2.0)
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"no server from {tree}; see {directory}") from None
                time.sleep(0.1)
        _time_writes(port, warmup)
        fsync = _percentile(fsync_latencies(directory, 300), 50)
        cpu = _cpu_seconds(server.pid)
        samples = _time_writes(port, writes)
        cpu = _cpu_seconds(server.pid) - cpu
    finally:
        server.terminate()
        server.wait(15)
    shutil.rmtree(directory, ignore_errors=True)
    return {
        "fsync": fsync * 1e3,
        "p10": _percentile(samples, 10) * 1e3,
        "p50": _percentile(samples, 50) * 1e3,
        "p90": _percentile(samples, 90) * 1e3,
        "ratio": _percentile(samples, 50) / fsync,
        "cpu_us": cpu / writes * 1e6,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """The ``python -m benchmarks.write_latency_ab`` command."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.write_latency_ab")
    parser.add_argument("trees", nargs="+", type=Path, help="directories holding a coord package")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("-n", "--writes", type=int, default=3000, help="writes timed per run")
    parser.add_argument("--quiet-wait", type=float, default=20.0, help="seconds, per run")
    args = parser.parse_args(argv)
    results: dict[Path, list[dict[str, float]]] = {tree: [] for tree in args.trees}
    for round_ in range(args.rounds):
        for tree in args.trees if round_ % 2 == 0 else args.trees[::-1]:
            quiet = wait_quiet(args.quiet_wait)
            run = run_tree(tree, args.writes)
            results[tree].append(run)
            cells = " ".join(f"{key} {value:.3f}" for key, value in run.items())
            print(f"{tree}: {cells} ({quiet})", flush=True)
    for tree, runs in results.items():
        cells = []
        for key in runs[0]:
            values = [run[key] for run in runs]
            cells.append(
                f"{key} {statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"
            )
        print(f"== {tree} ({len(runs)} runs): " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

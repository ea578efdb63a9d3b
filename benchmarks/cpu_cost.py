"""Server CPU per request: a load-independent measure of coord's write path.

``python -m benchmarks.cpu_cost`` starts one coord server (default durable storage, data
in a temporary directory) and drives each scenario of :mod:`benchmarks.loadgen` against
it, reporting the server's CPU microseconds per request (``Result.server_cpu`` over the
requests answered in the window) next to the rate and the cores other processes kept
busy. On a machine shared with other work, wall-clock throughput varies by tens of
percent while CPU per request moves by a few, so this is the number to compare when
optimizing; ``benchmarks.compare`` gives the ratios against ZooKeeper.

``--profile DIR`` also samples the server with ``py-spy`` (if installed) during each
scenario and writes one collapsed-stack file per scenario (``DIR/<scenario>.txt``, one
``stack count`` line per distinct stack, for flame graphs or ``--top``).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from benchmarks import loadgen
from benchmarks.compare import CoordServer
from benchmarks.loadgen import LoadSpec, Result

__all__ = ["main", "micros_per_request", "top_functions"]


def micros_per_request(result: Result) -> float | None:
    """The server's CPU microseconds per request answered in the measured window."""
    if result.server_cpu is None or not result.requests:
        return None
    return result.server_cpu / result.requests * 1e6


def _user_system(pid: int) -> tuple[float, float]:
    """CPU seconds a process spent in user and in kernel mode so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def top_functions(collapsed: Path, limit: int = 25) -> list[tuple[str, float, float]]:
    """``(function, self share, total share)`` of the heaviest functions in a py-spy
    collapsed-stack file, by self time."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return []
    return [(name, n / samples, total[name] / samples) for name, n in own.most_common(limit)]


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_cost", description=__doc__)
    parser.add_argument(
        "--scenarios", nargs="+", default=["set", "create", "create-delete", "set-latency"]
    )
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--outstanding", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--coord-arg", action="append", default=[], help="more server flags")
    parser.add_argument("--profile", type=Path, help="py-spy collapsed stacks into this dir")
    parser.add_argument("--top", type=int, default=0, help="print the N heaviest functions")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = _argument_parser().parse_args(argv)
    out = out or sys.stdout
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        if not Path(spy).exists():
            print("py-spy not found: pip install py-spy", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="coord-cpu-") as tmp:
        server = CoordServer(Path(tmp), args.coord_arg)
        server.start()
        try:
            for round_ in range(args.rounds):
                for scenario in args.scenarios:
                    spec = LoadSpec(
                        port=server.port,
                        scenario=scenario,
                        sessions=args.sessions,
                        outstanding=args.outstanding,
                        duration=args.duration,
                        warmup=args.warmup,
                    )
                    spy_proc = None
                    target = None
                    if args.profile is not None:
                        target = args.profile / f"{scenario}.txt"
                        spy_proc = subprocess.Popen(
                            [spy, "record", "--pid", str(server.pid), "--format", "raw",
                             "--rate", "250", "--nonblocking", "--function", "--gil",
                             "-o", str(target),
                             "--duration", str(int(args.warmup + args.duration + 1))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        )  # fmt: skip
                    assert server.pid is not None
                    user0, system0 = _user_system(server.pid)
                    result = loadgen.run(spec, server_pid=server.pid)
                    user1, system1 = _user_system(server.pid)
                    busy = (user1 - user0) + (system1 - system0)
                    kernel = (system1 - system0) / busy if busy else 0.0
                    if spy_proc is not None:
                        spy_proc.wait(60)
                    cost = micros_per_request(result)
                    other = "?"
                    if result.machine_cpu is not None and result.server_cpu is not None:
                        rest = result.machine_cpu - result.server_cpu - result.client_cpu
                        other = f"{rest / result.seconds:.2f}"
                    cost_text = f"{cost:.2f}" if cost is not None else "?"
                    print(
                        f"round {round_ + 1} {scenario:14s} {result.rate:9,.0f} req/s  "
                        f"server {cost_text} us/req ({kernel:.0%} kernel)  "
                        f"p50 {result.latency_ms.get('p50', 0):.3f} ms"
                        f"  errors {result.error_count}  cores busy: other {other}",
                        file=out,
                        flush=True,
                    )
                    if target is not None and args.top and target.exists():
                        for name, own, total in top_functions(target, args.top):
                            print(f"    {own:6.1%} {total:6.1%}  {name}", file=out)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

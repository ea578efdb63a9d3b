"""Run coord and Apache ZooKeeper side by side and print coord/ZooKeeper ratios.

``python -m benchmarks.compare`` starts a standalone Apache ZooKeeper 3.8 (Debian's package,
with its production defaults, see :mod:`benchmarks._zookeeper`) and a coord server
(``python -m coord server``), both on free 127.0.0.1 ports, and drives each scenario of
:mod:`benchmarks.loadgen` against one and then the other with identical parameters
(the order alternates between rounds). Both servers share the machine with the load
generator, so the ratio is what matters, not the absolute numbers. If coord cannot be
started, ZooKeeper's numbers are still printed, with the reason coord is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TextIO

from benchmarks import loadgen
from benchmarks._zookeeper import SERVER_JVM_OPTIONS, BenchZooKeeper
from benchmarks.loadgen import SCENARIOS, LoadSpec, Result

__all__ = ["CoordServer", "Machine", "main"]

_COORD_START_TIMEOUT = 30.0
#: Given to every coord server: as ZooKeeper here (maxClientCnxns=0), no per-IP connection
#: limit; data beside ZooKeeper's, on the same file system (used once storage is durable).
COORD_ARGS = ("--max-client-connections", "0", "--data-dir", "{datadir}")
#: A run is flagged when other processes kept this many cores busy on average.
_DISTURBED = 0.2

#: Printed under every table: ZooKeeper's durability setting.
ZOOKEEPER_NOTE = (
    "ZooKeeper runs with its defaults: forceSync=yes, every write batch is fsynced to "
    "its transaction log before the reply."
)
#: Printed while coord runs with its default storage, which is in memory until the
#: durable store becomes the default.
MEMORY_CAVEAT = (
    "coord runs with its default storage backend, `memory` (no fsync): until the "
    "durable store is the default, write ratios (set, create-delete, mix) flatter coord. "
    "Pass --coord-arg=--storage=NAME to benchmark a durable backend."
)


def storage_note(coord_args: Sequence[str]) -> str:
    """The caveat about coord's storage, given the extra ``coord server`` arguments."""
    for i, arg in enumerate(coord_args):
        if arg.startswith("--storage="):
            return f"coord storage backend: {arg.split('=', 1)[1]} (--storage given)."
        if arg == "--storage" and i + 1 < len(coord_args):
            return f"coord storage backend: {coord_args[i + 1]} (--storage given)."
    return MEMORY_CAVEAT


_TITLES = {
    "get": "getData 100 B (req/s)",
    "set": "setData 100 B (req/s)",
    "create-delete": "create+delete ephemeral-sequential (req/s)",
    "mix": "90% get / 10% set (req/s)",
}


# --- the machine ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Machine:
    """Where the benchmark ran."""

    cpu: str
    cores: int
    memory_gib: float
    kernel: str
    python: str
    uvloop: str
    java: str
    zookeeper: str
    data_fs: str

    @classmethod
    def detect(cls, zookeeper: str, data_dir: Path) -> Machine:
        """Read the CPU model, core count and memory from /proc; versions from the tools."""
        cpu = "unknown"
        with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        memory = 0.0
        with contextlib.suppress(OSError), open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) / 2**20
        try:
            uv = importlib.metadata.version("uvloop")
        except importlib.metadata.PackageNotFoundError:
            uv = "not installed (asyncio)"
        return cls(
            cpu=cpu,
            cores=len(os.sched_getaffinity(0)),
            memory_gib=round(memory, 1),
            kernel=f"{platform.system()} {platform.release()}",
            python=platform.python_version(),
            uvloop=uv,
            java=_java_version(),
            zookeeper=zookeeper,
            data_fs=_filesystem(data_dir),
        )

    def lines(self) -> list[str]:
        """Human-readable description, one fact per line."""
        return [
            f"CPU: {self.cpu}, {self.cores} cores; RAM {self.memory_gib} GiB; {self.kernel}",
            f"Python {self.python}, uvloop {self.uvloop}; {self.java}",
            f"Apache ZooKeeper {self.zookeeper}",
            f"data directories on: {self.data_fs}",
        ]


def _java_version() -> str:
    java = shutil.which("java")
    if java is None:
        return "no java"
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "java (version unknown)"
    lines = done.stderr.strip().splitlines()
    return lines[0] if lines else "java (version unknown)"


def _filesystem(path: Path) -> str:
    """The mount holding ``path``: device, mount point and type, from /proc/mounts."""
    best = ("?", "/", "?")
    resolved = str(path.resolve())
    with contextlib.suppress(OSError), open("/proc/mounts", encoding="utf-8") as f:
        for line in f:
            device, mount, fstype = line.split()[:3]
            inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best[1]):
                best = (device, mount, fstype)
    return f"{best[0]} at {best[1]} ({best[2]}), under {resolved}"


# --- coord as a child process -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class CoordServer:
    """``python -m coord server`` on a free 127.0.0.1 port, logging into ``directory``.

    Args:
        directory: For the log file and ``{datadir}``, which ``extra_args`` may use.
        extra_args: More command-line arguments; ``{datadir}`` is replaced by a fresh
            directory next to ZooKeeper's (same file system).
    """

    def __init__(self, directory: Path, extra_args: Sequence[str] = ()) -> None:
        self.port = _free_port()
        self.directory = directory
        data_dir = directory / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.command = [
            sys.executable,
            "-m",
            "coord",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *(arg.replace("{datadir}", str(data_dir)) for arg in (*COORD_ARGS, *extra_args)),
        ]
        self.log_path = directory / "coord.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process and self.process.poll() is None else None

    def start(self) -> None:
        """Launch the server and wait until it accepts a ZooKeeper session.

        Raises:
            RuntimeError: The server exited or did not accept a session in time; the
                message says why and ends with the tail of its log.
        """
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + _COORD_START_TIMEOUT
        last_error = "not tried"
        while True:
            status = self.process.poll()
            if status is not None:
                self._fail(f"`{' '.join(self.command[1:4])}` exited with status {status}")
            try:
                loadgen.probe("127.0.0.1", self.port, timeout=2.0)
                return
            except Exception as exc:  # any failure to talk ZooKeeper: not ready (yet)
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                self._fail(f"no ZooKeeper session within {_COORD_START_TIMEOUT:g} s ({last_error})")
            time.sleep(0.1)

    def _fail(self, message: str) -> None:
        self.stop()
        tail = ""
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            # The last lines that say something (not traceback or exception-group art).
            useful = [text for line in lines if (text := line.strip(" |+-^~"))]
            tail = " | ".join(useful[-2:])
        raise RuntimeError(f"{message}{'; log: ' + tail if tail else ''}")

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 10 s)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the comparison ------------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    scenario: str
    zookeeper: list[Result] = field(default_factory=list)
    coord: list[Result] = field(default_factory=list)


def _rates(results: list[Result]) -> list[float]:
    return [r.rate for r in results if r.requests]


def _latencies(results: list[Result], key: str) -> list[float]:
    return [r.latency_ms[key] for r in results if key in r.latency_ms]


def _table_rows(rows: list[_Row]) -> Iterator[tuple[str, str, str, str]]:
    """(measure, ZooKeeper, coord, ratio) for the table; ratio = coord / ZooKeeper.

    A cell is the median over rounds, followed by the range when there were several.
    """
    for row in rows:
        if row.scenario == "latency":
            for key in ("p50", "p99"):
                zk = _latencies(row.zookeeper, key)
                co = _latencies(row.coord, key)
                title = f"getData round trip {key} (ms, lower is better)"
                yield title, _cell(zk, 3), _cell(co, 3), _ratio(co, zk)
        else:
            zk = _rates(row.zookeeper)
            co = _rates(row.coord)
            yield _TITLES[row.scenario], _cell(zk, 0), _cell(co, 0), _ratio(co, zk)
        for name, results in (("ZooKeeper", row.zookeeper), ("coord", row.coord)):
            errors = sum(r.error_count for r in results)
            if errors:
                yield f"  ^ {name} errors", str(errors), "", ""


def _cell(values: list[float], digits: int) -> str:
    if not values:
        return "n/a"
    text = f"{statistics.median(values):,.{digits}f}"
    if len(values) > 1:
        text += f" ({min(values):,.{digits}f}-{max(values):,.{digits}f})"
    return text


def _ratio(coord: list[float], zookeeper: list[float]) -> str:
    if not coord or not zookeeper:
        return "n/a"
    return f"{statistics.median(coord) / statistics.median(zookeeper):.2f}"


def render(
    rows: list[_Row],
    machine: Machine,
    spec: LoadSpec,
    command: str,
    coord_status: str,
    style: str,
    storage: str = MEMORY_CAVEAT,
) -> str:
    """The report: machine, parameters, table, caveats, and per-run details."""
    table = list(_table_rows(rows))
    header = ("measure", "ZooKeeper", "coord", "coord/ZK")
    setup = (
        f"throughput scenarios: {spec.sessions} sessions x {spec.outstanding} outstanding, "
        f"{spec.procs} load-generator process(es), {spec.warmup:g} s warm-up + "
        f"{spec.duration:g} s measured, {spec.data_size} B data; latency: 1 session, "
        "1 request in flight"
    )
    notes = [
        ZOOKEEPER_NOTE,
        storage,
        f"ZooKeeper JVM: {' '.join(SERVER_JVM_OPTIONS)} (as zkServer.sh), default GC and JIT.",
        f"coord: {coord_status}",
    ]
    details = [_detail(name, r) for row in rows for name, r in _runs(row)]
    disturbed = [r for row in rows for _, r in _runs(row) if _other_cores(r) > _DISTURBED]
    if disturbed:
        notes.append(
            f"{len(disturbed)} run(s) shared the machine with other load (> {_DISTURBED} "
            "cores busy outside the server and the generator, see 'other' below); "
            "their numbers are less reliable."
        )
    if style == "docs-table":
        out = [f"`{command}`", "", *[f"- {line}" for line in machine.lines()], f"- {setup}", ""]
        out.append("| " + " | ".join(header) + " |")
        out.append("|---|---:|---:|---:|")
        out += ["| " + " | ".join(cells) + " |" for cells in table]
        out += ["", *[f"- {note}" for note in notes], "", "Runs:", "", "```", *details, "```"]
        return "\n".join(out) + "\n"
    widths = [max(len(cells[i]) for cells in [header, *table]) for i in range(4)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))])

    out = [f"$ {command}", *machine.lines(), setup, "", line(header)]
    out.append("  ".join("-" * w for w in widths))
    out += [line(cells) for cells in table]
    out += ["", *notes, "", "runs:", *details]
    return "\n".join(out) + "\n"


def _other_cores(result: Result) -> float:
    if result.machine_cpu is None or result.server_cpu is None or not result.seconds:
        return 0.0
    other = result.machine_cpu - result.server_cpu - result.client_cpu
    return other / result.seconds


def _runs(row: _Row) -> Iterator[tuple[str, Result]]:
    for name, results in (("ZooKeeper", row.zookeeper), ("coord", row.coord)):
        for result in results:
            yield name, result


def _detail(name: str, result: Result) -> str:
    s = result.spec
    shape = f"{s.sessions}x{s.outstanding}"
    return f"{s.scenario:<13} {name:<9} {shape:>6}  {loadgen.format_result(result)}"


def _progress(line: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def _argument_parser() -> argparse.ArgumentParser:
    defaults = LoadSpec()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description="Benchmark coord against Apache ZooKeeper 3.8 on this machine.",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=defaults.warmup, help="seconds")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=list(SCENARIOS),
        choices=SCENARIOS,
        metavar="NAME",
        help=f"subset of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--sessions", type=int, default=defaults.sessions)
    parser.add_argument("--outstanding", type=int, default=defaults.outstanding)
    parser.add_argument("--procs", type=int, default=defaults.procs, help="generator processes")
    parser.add_argument("--data-size", type=int, default=defaults.data_size, help="bytes")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs per scenario and server, alternating which server goes first; the "
        "table shows medians and ranges (default: 3)",
    )
    parser.add_argument(
        "--output",
        choices=("text", "docs-table"),
        default="text",
        help="docs-table: Markdown for docs/benchmarks.md",
    )
    parser.add_argument("--json", type=Path, help="also write every run's results here")
    parser.add_argument(
        "--coord-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `coord server` ({datadir}: a data dir beside ZooKeeper's)",
    )
    parser.add_argument("--no-coord", action="store_true", help="benchmark ZooKeeper only")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """The ``python -m benchmarks.compare`` command.

    Returns:
        0; 1 if any run had errors; 2 if ZooKeeper could not be started.
    """
    args = _argument_parser().parse_args(argv)
    out = out or sys.stdout
    command = "python -m benchmarks.compare " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    base = LoadSpec(
        duration=args.duration,
        warmup=args.warmup,
        sessions=args.sessions,
        outstanding=args.outstanding,
        procs=args.procs,
        data_size=args.data_size,
    )
    zookeeper = BenchZooKeeper()
    _progress("starting Apache ZooKeeper")
    try:
        zookeeper.start()
    except Exception as exc:
        print(f"ZooKeeper: could not start: {exc}", file=sys.stderr)
        return 2
    coord: CoordServer | None = None
    workdir = Path(tempfile.mkdtemp(prefix="coord-bench-"))
    try:
        machine = Machine.detect(zookeeper.version, zookeeper.directory / "data")
        _progress(f"ZooKeeper {machine.zookeeper} at {zookeeper.address}")
        if args.no_coord:
            coord_status = "not run (--no-coord)"
        else:
            _progress("starting coord")
            coord = CoordServer(workdir, args.coord_arg)
            try:
                coord.start()
                coord_status = f"`{' '.join(['python', *coord.command[1:]])}`"
                _progress(f"coord at 127.0.0.1:{coord.port}")
            except RuntimeError as exc:
                coord_status = f"not available ({exc})"
                _progress(f"coord: not available ({exc})")
                coord = None
        rows = _run_all(args, base, zookeeper, coord)
        storage = storage_note(args.coord_arg)
        report = render(rows, machine, base, command, coord_status, args.output, storage)
        print(report, file=out, end="")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "command": command,
                        "machine": asdict(machine),
                        "coord": coord_status,
                        "runs": [
                            {"server": name, "rate": r.rate, **asdict(r)}
                            for row in rows
                            for name, r in _runs(row)
                        ],
                    },
                    indent=2,
                ),
                encoding="utf-8",
            )
        errors = sum(r.error_count for row in rows for _, r in _runs(row))
        return 1 if errors else 0
    finally:
        if coord is not None:
            coord.stop()
        zookeeper.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _run_all(
    args: argparse.Namespace,
    base: LoadSpec,
    zookeeper: BenchZooKeeper,
    coord: CoordServer | None,
) -> list[_Row]:
    rows: list[_Row] = []
    for scenario in dict.fromkeys(args.scenarios):
        row = _Row(scenario)
        rows.append(row)
        for round_ in range(args.rounds):
            servers: list[tuple[str, int, int | None]] = [
                ("ZooKeeper", zookeeper.port, zookeeper.pid)
            ]
            if coord is not None:
                servers.append(("coord", coord.port, coord.pid))
            if round_ % 2:
                servers.reverse()
            for name, port, pid in servers:
                spec = replace(base, scenario=scenario, port=port)
                _progress(f"{scenario} on {name} (round {round_ + 1}/{args.rounds})")
                try:
                    result = loadgen.run(spec, server_pid=pid, progress=_progress)
                except Exception as exc:  # a failed run is reported, the others go on
                    _progress(f"{scenario} on {name}: failed: {type(exc).__name__}: {exc}")
                    result = Result(spec.normalized(), errors={f"run failed: {exc}": 1})
                (row.zookeeper if name == "ZooKeeper" else row.coord).append(result)
    return rows


if __name__ == "__main__":
    sys.exit(main())

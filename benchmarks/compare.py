"""Run coord and Apache ZooKeeper side by side and print coord/ZooKeeper ratios.

``python -m benchmarks.compare`` starts a standalone Apache ZooKeeper 3.8 (Debian's package,
with its production defaults, see :mod:`benchmarks._zookeeper`) and a coord server
(``python -m coord server``, with its default durable storage, data directory beside
ZooKeeper's on the same file system), both on free 127.0.0.1 ports, and drives each
scenario of :mod:`benchmarks.loadgen` against one and then the other with identical
parameters (the order alternates between rounds). Both servers share the machine with the
load generator, so the ratio is what matters, not the absolute numbers. If coord cannot be
started, ZooKeeper's numbers are still printed, with the reason coord is missing.

Durable writes are bounded below by the disk: the report also measures the latency of a
150-byte append + fsync on the data directories' file system (at the start, before every
round of ``set-latency`` and at the end), shows it in the table, relates each server's
single-write latency to it ("write p50 / fsync p50") and checks the durable-storage
targets (coord's write throughput at least ZooKeeper's; coord's write p50 at 1 session x
1 outstanding within 2x the fsync p50).
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
from benchmarks.loadgen import LATENCY_SCENARIOS, SCENARIOS, LoadSpec, Result
from benchmarks.results import Chart, Measure, ResultSet, measure_from_runs
from benchmarks.storage_bench import fsync_latencies
from coord.server import ServerConfig

__all__ = ["CoordServer", "DiskProbe", "Machine", "coord_revision", "main"]

_COORD_START_TIMEOUT = 30.0
#: Given to every coord server: as ZooKeeper here (maxClientCnxns=0), no per-IP connection
#: limit; data beside ZooKeeper's, on the same file system.
COORD_ARGS = ("--max-client-connections", "0", "--data-dir", "{datadir}")
#: A run is flagged when other processes kept this many cores busy on average.
_DISTURBED = 0.2
#: Appends + fsyncs per disk probe (and as many + fdatasyncs).
_FSYNC_ROUNDS = 1000
#: The targets of the durable-storage issue.
TARGET_WRITE_RATIO = 1.0  # coord write throughput / ZooKeeper's, at least
TARGET_FSYNC_FACTOR = 2.0  # coord write p50 (1 x 1) / disk fsync p50, at most
#: Write scenarios whose throughput is a target (both servers durable).
_WRITE_THROUGHPUT = ("set", "create", "create-delete")

#: Printed under every table: ZooKeeper's durability setting.
ZOOKEEPER_NOTE = (
    "ZooKeeper runs with its defaults: forceSync=yes, every write batch is fsynced "
    "(fdatasync) to its transaction log before the replies."
)
#: Printed when coord runs in memory.
MEMORY_CAVEAT = (
    "coord storage backend: memory (no fsync): the write rows (set, create, create-delete, "
    "mix) compare an fsyncing ZooKeeper with a non-durable coord and flatter coord."
)
#: coord's default storage backend.
DEFAULT_STORAGE = ServerConfig().storage


def coord_storage(coord_args: Sequence[str]) -> tuple[str, bool]:
    """The storage backend coord runs with, and whether ``--storage`` chose it."""
    for i, arg in enumerate(coord_args):
        if arg.startswith("--storage="):
            return arg.split("=", 1)[1], True
        if arg == "--storage" and i + 1 < len(coord_args):
            return coord_args[i + 1], True
    return DEFAULT_STORAGE, False


def storage_note(coord_args: Sequence[str]) -> str:
    """What the report says about coord's storage, given the extra ``coord server``
    arguments."""
    name, given = coord_storage(coord_args)
    source = "--storage given" if given else "coord's default"
    if name == "memory":
        return MEMORY_CAVEAT
    if name == "rocksdb":
        return (
            f"coord storage backend: rocksdb ({source}), durable: each group-committed "
            "batch of writes is one synced RocksDB write (one WAL fdatasync) before its "
            "replies."
        )
    return f"coord storage backend: {name} ({source})."


_TITLES = {
    "get": "getData 100 B (req/s)",
    "set": "setData 100 B (req/s)",
    "create": "create persistent-sequential 100 B (req/s)",
    "create-delete": "create+delete ephemeral-sequential (req/s)",
    "mix": "90% get / 10% set (req/s)",
    "latency": "getData 1x1 round trip",
    "set-latency": "setData 1x1 round trip",
}
#: Throughput scenarios whose latency under load gets a row of its own.
_LOADED_LATENCY = ("set", "create", "create-delete")


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


#: What ``coord server`` runs (the client SDK and recipes do not matter here).
_SERVER_SOURCES = (
    "coord/server",
    "coord/plugins",
    "coord/protocol",
    "coord/cli.py",
    "coord/__main__.py",
)


def coord_revision() -> str:
    """The coord source being measured: the git commit of the working tree, and whether
    the server's code has uncommitted changes (it is imported from the working tree)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%h %cd", "--date=iso"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", *_SERVER_SOURCES],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    changed = " + uncommitted changes in the server's code" if dirty else ""
    return f"commit {head}{changed}"


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

    def launch(self) -> None:
        """Start the server process and return at once (see :meth:`start`)."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self) -> None:
        """Launch the server and wait until it accepts a ZooKeeper session.

        Raises:
            RuntimeError: The server exited or did not accept a session in time; the
                message says why and ends with the tail of its log.
        """
        self.launch()
        assert self.process is not None
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

    def stop(self, grace: float = 10.0) -> None:
        """Terminate the server (SIGTERM: it drains and closes its store; SIGKILL after
        ``grace`` seconds)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the disk ----------------------------------------------------------------------------


def _percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass(frozen=True, slots=True)
class DiskProbe:
    """One measurement of the data directories' disk, in milliseconds: a 150-byte append
    to a file followed by ``fsync`` (and by ``fdatasync``, which ZooKeeper's log and
    RocksDB's WAL use), :data:`_FSYNC_ROUNDS` times each, as ``storage_bench`` does."""

    when: str
    fsync_p50: float
    fsync_p99: float
    fdatasync_p50: float
    fdatasync_p99: float

    @classmethod
    def measure(cls, directory: Path, when: str, rounds: int = _FSYNC_ROUNDS) -> DiskProbe:
        """Measure now, in ``directory`` (a probe file is written and removed)."""
        full = fsync_latencies(directory, rounds, os.fsync)
        data = fsync_latencies(directory, rounds, os.fdatasync)
        return cls(
            when,
            _percentile(full, 50) * 1e3,
            _percentile(full, 99) * 1e3,
            _percentile(data, 50) * 1e3,
            _percentile(data, 99) * 1e3,
        )

    def line(self) -> str:
        """One line for the per-run details."""
        return (
            f"disk probe ({self.when}): 150 B append + fsync p50 {self.fsync_p50:.3f} ms "
            f"p99 {self.fsync_p99:.3f} ms; + fdatasync p50 {self.fdatasync_p50:.3f} ms "
            f"p99 {self.fdatasync_p99:.3f} ms"
        )


def _fsync_p50(probes: Sequence[DiskProbe]) -> float | None:
    return statistics.median(p.fsync_p50 for p in probes) if probes else None


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


def _shape(row: _Row) -> str:
    for _, result in _runs(row):
        return f"{result.spec.sessions}x{result.spec.outstanding}"
    return "?"


def _table_rows(
    rows: list[_Row], probes: Sequence[DiskProbe] = ()
) -> Iterator[tuple[str, str, str, str]]:
    """(measure, ZooKeeper, coord, ratio) for the table; ratio = coord / ZooKeeper.

    A cell is the median over rounds, followed by the range when there were several; a
    latency-under-load cell is "median p50 / median p99".
    """
    if probes:
        disk = _pair([p.fsync_p50 for p in probes], [p.fsync_p99 for p in probes], digits=3)
        yield "disk: 150 B append + fsync p50 / p99 (ms)", disk, disk, "-"
    for row in rows:
        title = _TITLES[row.scenario]
        if row.scenario in LATENCY_SCENARIOS:
            for key in ("p50", "p99"):
                zk = _latencies(row.zookeeper, key)
                co = _latencies(row.coord, key)
                yield (
                    f"{title} {key} (ms, lower is better)",
                    _cell(zk, 3),
                    _cell(co, 3),
                    _ratio(co, zk),
                )
        else:
            zk = _rates(row.zookeeper)
            co = _rates(row.coord)
            yield title, _cell(zk, 0), _cell(co, 0), _ratio(co, zk)
            if row.scenario in _LOADED_LATENCY:
                cells = [
                    _pair(_latencies(results, "p50"), _latencies(results, "p99"), digits=1)
                    for results in (row.zookeeper, row.coord)
                ]
                ratio = _ratio(_latencies(row.coord, "p50"), _latencies(row.zookeeper, "p50"))
                yield f"  latency at {_shape(row)}, p50 / p99 (ms)", cells[0], cells[1], ratio
        for name, results in (("ZooKeeper", row.zookeeper), ("coord", row.coord)):
            errors = sum(r.error_count for r in results)
            if errors:
                yield f"  ^ {name} errors", str(errors), "", ""
    fsync = _fsync_p50(probes)
    if fsync:
        by_name = {row.scenario: row for row in rows}
        for scenario, label in (("set-latency", "1x1"), ("set", "under load")):
            found = by_name.get(scenario)
            if found is None:
                continue
            zk = [v / fsync for v in _latencies(found.zookeeper, "p50")]
            co = [v / fsync for v in _latencies(found.coord, "p50")]
            shape = _shape(found)
            where = f"setData {shape}" + (f", {label}" if label != shape else "")
            cells = [f"{statistics.median(v):,.2f}" if v else "n/a" for v in (zk, co)]
            yield f"write p50 / fsync p50 ({where})", cells[0], cells[1], _ratio(co, zk)


def _cell(values: list[float], digits: int) -> str:
    if not values:
        return "n/a"
    text = f"{statistics.median(values):,.{digits}f}"
    if len(values) > 1:
        text += f" ({min(values):,.{digits}f}-{max(values):,.{digits}f})"
    return text


def _pair(p50: list[float], p99: list[float], digits: int) -> str:
    if not p50 or not p99:
        return "n/a"
    return f"{statistics.median(p50):,.{digits}f} / {statistics.median(p99):,.{digits}f}"


def _ratio(coord: list[float], zookeeper: list[float]) -> str:
    if not coord or not zookeeper:
        return "n/a"
    return f"{statistics.median(coord) / statistics.median(zookeeper):.2f}"


def _disturbance(row: _Row) -> str:
    """A warning when runs of ``row`` shared the machine with other load."""
    runs = list(_runs(row))
    disturbed = sum(1 for _, r in runs if _other_cores(r) > _DISTURBED)
    if not disturbed:
        return ""
    return f" (but {disturbed} of its {len(runs)} runs had other load: repeat when quiet)"


def targets(rows: list[_Row], probes: Sequence[DiskProbe], durable: bool) -> list[str]:
    """The durable-storage issue's targets, each "met" or "NOT met" with its numbers."""
    by_name = {row.scenario: row for row in rows}
    lines: list[str] = []
    if not durable:
        lines.append("coord ran without durable storage: the write targets do not apply.")
    for scenario in _WRITE_THROUGHPUT:
        row = by_name.get(scenario)
        if row is None:
            continue
        zk, co = _rates(row.zookeeper), _rates(row.coord)
        if not zk or not co:
            lines.append(f"{_TITLES[scenario]}: coord >= ZooKeeper: not measured")
            continue
        ratio = statistics.median(co) / statistics.median(zk)
        verdict = "met" if ratio >= TARGET_WRITE_RATIO else "NOT met"
        lines.append(
            f"{_TITLES[scenario].removesuffix(' (req/s)')} throughput, coord >= ZooKeeper: "
            f"{statistics.median(co):,.0f} vs {statistics.median(zk):,.0f} req/s = "
            f"{ratio:.2f}x -> {verdict}{_disturbance(row)}"
        )
    fsync = _fsync_p50(probes)
    row = by_name.get("set-latency")
    if row is not None and fsync:
        co = _latencies(row.coord, "p50")
        if co:
            factor = statistics.median(co) / fsync
            verdict = "met" if factor <= TARGET_FSYNC_FACTOR else "NOT met"
            lines.append(
                f"write p50 within {TARGET_FSYNC_FACTOR:g}x fsync p50 (setData, 1 session x 1 "
                f"outstanding): coord {statistics.median(co):.3f} ms / fsync "
                f"{fsync:.3f} ms = {factor:.2f}x -> {verdict}{_disturbance(row)}"
            )
    row = by_name.get("set")
    if row is not None and fsync:
        co = _latencies(row.coord, "p50")
        if co:
            lines.append(
                f"(under load, setData {_shape(row)}: coord p50 {statistics.median(co):.1f} ms "
                f"= {statistics.median(co) / fsync:,.0f}x fsync p50, mostly queueing of "
                "the requests in flight; not the target's measure)"
            )
    return lines


def render(
    rows: list[_Row],
    machine: Machine,
    spec: LoadSpec,
    command: str,
    coord_status: str,
    style: str,
    storage: str = MEMORY_CAVEAT,
    probes: Sequence[DiskProbe] = (),
    durable: bool = False,
    extra_notes: Sequence[str] = (),
) -> str:
    """The report: machine, parameters, table, targets, caveats, and per-run details."""
    table = list(_table_rows(rows, probes))
    header = ("measure", "ZooKeeper", "coord", "coord/ZK")
    setup = (
        f"throughput scenarios: {spec.sessions} sessions x {spec.outstanding} outstanding, "
        f"{spec.procs} load-generator process(es), {spec.warmup:g} s warm-up + "
        f"{spec.duration:g} s measured, {spec.data_size} B data; latency scenarios: "
        "1 session, 1 request in flight"
    )
    notes = [
        ZOOKEEPER_NOTE,
        storage,
        f"ZooKeeper JVM: {' '.join(SERVER_JVM_OPTIONS)} (as zkServer.sh), default GC and JIT.",
        f"coord: {coord_status}",
        *extra_notes,
    ]
    goals = targets(rows, probes, durable)
    details = [p.line() for p in probes]
    details += [_detail(name, r) for row in rows for name, r in _runs(row)]
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
        out += ["", "Targets:", "", *[f"- {goal}" for goal in goals]]
        out += ["", *[f"- {note}" for note in notes], "", "Runs:", "", "```", *details, "```"]
        return "\n".join(out) + "\n"
    widths = [max(len(cells[i]) for cells in [header, *table]) for i in range(4)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))])

    out = [f"$ {command}", *machine.lines(), setup, "", line(header)]
    out.append("  ".join("-" * w for w in widths))
    out += [line(cells) for cells in table]
    out += ["", "targets:", *goals, "", *notes, "", "runs:", *details]
    return "\n".join(out) + "\n"


_SHORT = {"set": "setData", "create": "create", "create-delete": "create+delete"}


def result_set(
    rows: list[_Row], command: str, measured: str, source: str, charts_prefix: str
) -> ResultSet:
    """The comparison as a :class:`benchmarks.results.ResultSet` (``--results-json``):
    the table's medians and ranges, a bars chart of the throughputs and a ratio chart of
    everything, named ``<charts_prefix>-throughput.svg`` and ``<charts_prefix>-ratios.svg``.
    """
    measures: list[Measure | None] = []
    for row in rows:
        title = _TITLES[row.scenario].removesuffix(" (req/s)")
        if row.scenario in LATENCY_SCENARIOS:
            for key in ("p50", "p99"):
                co, zk = _latencies(row.coord, key), _latencies(row.zookeeper, key)
                measures.append(measure_from_runs(f"{title}, {key}", "ms", "lower", co, zk))
            continue
        measures.append(
            measure_from_runs(title, "req/s", "higher", _rates(row.coord), _rates(row.zookeeper))
        )
        if row.scenario in _LOADED_LATENCY:
            for key in ("p50", "p99"):
                co, zk = _latencies(row.coord, key), _latencies(row.zookeeper, key)
                name = f"{_SHORT[row.scenario]} latency at {_shape(row)}, {key}"
                measures.append(measure_from_runs(name, "ms", "lower", co, zk))
    present = tuple(m for m in measures if m is not None)
    if not present:
        raise ValueError("no scenario was measured on both servers")
    throughput = tuple(m.name for m in present if m.unit == "req/s")
    charts = []
    if throughput:
        charts.append(Chart(f"{charts_prefix}-throughput.svg", "bars", "Throughput", throughput))
    charts.append(
        Chart(
            f"{charts_prefix}-ratios.svg",
            "ratio",
            "coord / ZooKeeper",
            tuple(
                m.name
                for m in present
                if m.zookeeper > 0 and (not m.name.endswith("p99") or "1x1" in m.name)
            ),
        )
    )
    return ResultSet(
        title="coord and Apache ZooKeeper, standalone",
        measured=measured,
        source=source,
        command=command,
        measures=present,
        charts=tuple(charts),
    )


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
        "--results-json",
        type=Path,
        metavar="FILE",
        help="also write the summary (medians, ranges, charts) in the format of "
        "benchmarks/results/ (see benchmarks/results.py; `make plots` draws it)",
    )
    parser.add_argument(
        "--coord-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `coord server` ({datadir}: a data dir beside ZooKeeper's)",
    )
    parser.add_argument("--no-coord", action="store_true", help="benchmark ZooKeeper only")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="run nothing: combine the --json files of earlier invocations into one "
        "report (medians and ranges over all their runs)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="S",
        help="before each run, wait up to S seconds for the machine to be quiet (less than "
        f"{_DISTURBED} cores busy over a second; default 0: do not wait)",
    )
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
    if args.from_json:
        return _combine(args.from_json, args.output, out, args.results_json)
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
    zk_data = zookeeper.directory / "data"
    # Beside ZooKeeper's directory, so on the same file system.
    workdir = Path(tempfile.mkdtemp(prefix="coord-bench-", dir=zookeeper.directory.parent))
    storage, _ = coord_storage(args.coord_arg)
    revision = coord_revision()
    try:
        machine = Machine.detect(zookeeper.version, zk_data)
        _progress(f"ZooKeeper {machine.zookeeper} at {zookeeper.address}")
        if args.no_coord:
            coord_status = "not run (--no-coord)"
        else:
            _progress("starting coord")
            coord = CoordServer(workdir, args.coord_arg)
            try:
                coord.start()
                coord_status = f"`{' '.join(['python', *coord.command[1:]])}`"
                _progress(f"coord at 127.0.0.1:{coord.port} (storage: {storage})")
            except RuntimeError as exc:
                coord_status = f"not available ({exc})"
                _progress(f"coord: not available ({exc})")
                coord = None
        probes = [DiskProbe.measure(workdir, "start")]
        _progress(probes[-1].line())
        rows = _run_all(args, base, zookeeper, coord, probes, workdir)
        probes.append(DiskProbe.measure(workdir, "end"))
        _progress(probes[-1].line())
        notes = [
            f"coord source: {revision}",
            _placement(zk_data, workdir / "data", storage if coord else None),
        ]
        durable = coord is not None and storage != "memory"
        note = storage_note(args.coord_arg)
        report = render(
            rows, machine, base, command, coord_status, args.output, note, probes, durable, notes
        )
        print(report, file=out, end="")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "command": command,
                        "machine": asdict(machine),
                        "coord": coord_status,
                        "coord_storage": storage,
                        "storage_note": note,
                        "durable": durable,
                        "notes": notes,
                        "disk_probes_ms": [asdict(p) for p in probes],
                        "targets": targets(rows, probes, durable),
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
        if args.results_json:
            _write_results(args.results_json, rows, command, f"{revision}; {args.rounds} rounds")
        errors = sum(r.error_count for row in rows for _, r in _runs(row))
        return 1 if errors else 0
    finally:
        if coord is not None:
            coord.stop()
        zookeeper.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _write_results(
    path: Path, rows: list[_Row], command: str, source: str, when: float | None = None
) -> None:
    measured = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))
    result_set(rows, command, measured, source, path.stem).write(path)
    _progress(f"results written to {path}")


def _combine(
    paths: Sequence[Path], style: str, out: TextIO, results_json: Path | None = None
) -> int:
    """Render one report from the ``--json`` files of several invocations: every run of a
    scenario and server, from all of them, goes into its medians and ranges."""
    by_name: dict[str, _Row] = {}
    probes: list[DiskProbe] = []
    commands: list[str] = []
    notes: list[str] = []
    statuses: list[str] = []
    machine: Machine | None = None
    durable = True
    note = MEMORY_CAVEAT
    base = LoadSpec()
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        commands.append(data["command"])
        machine = machine or Machine(**data["machine"])
        statuses.append(data["coord"])
        note = data.get("storage_note", storage_note(["--storage", data["coord_storage"]]))
        durable = durable and data.get("durable", data["coord_storage"] != "memory")
        notes += [f"{path.name}: {line}" for line in data.get("notes", [])]
        probes += [DiskProbe(**probe) for probe in data["disk_probes_ms"]]
        for run in data["runs"]:
            spec = LoadSpec(**run["spec"])
            fields = {k: v for k, v in run.items() if k not in ("server", "rate", "spec")}
            result = Result(spec, **fields)
            row = by_name.setdefault(spec.scenario, _Row(spec.scenario))
            (row.zookeeper if run["server"] == "ZooKeeper" else row.coord).append(result)
            if spec.scenario not in LATENCY_SCENARIOS:
                base = replace(spec, port=base.port)
    if machine is None:
        print("no --json files given", file=sys.stderr)
        return 2
    order = {name: i for i, name in enumerate(SCENARIOS)}
    rows = sorted(by_name.values(), key=lambda row: order.get(row.scenario, len(order)))
    command = " ; ".join(commands) + f"  (combined: {len(paths)} invocations)"
    status = statuses[0] if len(set(statuses)) == 1 else " | ".join(statuses)
    print(
        render(rows, machine, base, command, status, style, note, probes, durable, notes),
        file=out,
        end="",
    )
    if results_json:
        sources = "; ".join(notes) or f"{len(paths)} invocations"
        newest = max(path.stat().st_mtime for path in paths)  # when the last run ended
        _write_results(results_json, rows, command, f"combined: {sources}", newest)
    errors = sum(r.error_count for row in rows for _, r in _runs(row))
    return 1 if errors else 0


def _placement(zk_data: Path, coord_data: Path, storage: str | None) -> str:
    """Where both servers kept their data, whether on one file system, and how much coord
    wrote (evidence that its durable store was in use)."""
    text = f"data directories: ZooKeeper {zk_data}, coord {coord_data}"
    try:
        same = os.stat(zk_data).st_dev == os.stat(coord_data).st_dev
    except OSError:
        return text
    text += "; same file system" if same else "; DIFFERENT file systems (the disk rows differ)"
    if storage is not None and storage != "memory":
        size = sum(f.stat().st_size for f in coord_data.rglob("*") if f.is_file())
        text += f"; coord's data directory held {size / 2**20:,.1f} MiB after the runs"
    return text


def _machine_load(seconds: float) -> float | None:
    """Cores the whole machine kept busy over the next ``seconds``."""
    before = loadgen._machine_busy()
    time.sleep(seconds)
    after = loadgen._machine_busy()
    if before is None or after is None:
        return None
    return (after - before) / seconds


def wait_quiet(limit: float, threshold: float = _DISTURBED) -> str:
    """Wait (at most ``limit`` seconds) until the machine is quiet: less than ``threshold``
    cores busy over one second, with both servers idle. Returns what happened."""
    if limit <= 0:
        return ""
    started = time.monotonic()
    load = _machine_load(1.0)
    while load is not None and load >= threshold and time.monotonic() - started < limit:
        load = _machine_load(1.0)
    waited = time.monotonic() - started
    if load is None:
        return "machine load unknown"
    state = "quiet" if load < threshold else f"still busy after {limit:g} s"
    return f"{state}: {load:.2f} cores busy (waited {waited:.0f} s)"


def _run_all(
    args: argparse.Namespace,
    base: LoadSpec,
    zookeeper: BenchZooKeeper,
    coord: CoordServer | None,
    probes: list[DiskProbe],
    probe_dir: Path,
) -> list[_Row]:
    rows: list[_Row] = []
    for scenario in dict.fromkeys(args.scenarios):
        row = _Row(scenario)
        rows.append(row)
        for round_ in range(args.rounds):
            if scenario == "set-latency":
                # The disk's fsync, right before the single-write latency it bounds.
                probes.append(DiskProbe.measure(probe_dir, f"before set-latency {round_ + 1}"))
                _progress(probes[-1].line())
            servers: list[tuple[str, int, int | None]] = [
                ("ZooKeeper", zookeeper.port, zookeeper.pid)
            ]
            if coord is not None:
                servers.append(("coord", coord.port, coord.pid))
            if round_ % 2:
                servers.reverse()
            for name, port, pid in servers:
                spec = replace(base, scenario=scenario, port=port)
                quiet = wait_quiet(args.quiet_wait)
                _progress(
                    f"{scenario} on {name} (round {round_ + 1}/{args.rounds})"
                    + (f"; machine {quiet}" if quiet else "")
                )
                try:
                    result = loadgen.run(spec, server_pid=pid, progress=_progress)
                except Exception as exc:  # a failed run is reported, the others go on
                    _progress(f"{scenario} on {name}: failed: {type(exc).__name__}: {exc}")
                    result = Result(spec.normalized(), errors={f"run failed: {exc}": 1})
                (row.zookeeper if name == "ZooKeeper" else row.coord).append(result)
    return rows


if __name__ == "__main__":
    sys.exit(main())

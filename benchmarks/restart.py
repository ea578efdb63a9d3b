"""Restart with a million small znodes: coord against Apache ZooKeeper.

``python -m benchmarks.restart`` does, for each server in turn (coord with its default
durable storage, then a standalone Apache ZooKeeper 3.8 with its production defaults, see
:mod:`benchmarks._zookeeper`), on free 127.0.0.1 ports, with the data directories on the
same file system:

1. **Fill**: ``--parents`` parents ``/r/0000`` ... each with ``--nodes / --parents``
   children ``/r/0000/0000`` ... of ``--data-size`` bytes (default 1000 x 1000 x 10 B),
   created by ``--sessions`` sessions with ``--window`` requests in flight each
   (:meth:`benchmarks.loadgen.SimpleClient.pipeline`). Then the server is left alone until
   its data directory stops changing (ZooKeeper writes a snapshot every ~``snapCount`` =
   100,000 transactions, in the background; coord persists its applied state in the
   idle turn of its commit loop), at most ``--settle`` seconds, and its RSS is read.
2. **Graceful stop**: SIGTERM (coord drains and writes its last state batch; ZooKeeper's
   JVM runs its shutdown hooks); the time to exit and the data directory's size.
3. **Restart**, ``--restarts`` times: the process is spawned and a client polls (every
   10 ms, each attempt bounded) until a getData of the *last* node created succeeds:
   that is the time to serve. ZooKeeper loads its latest snapshot and replays the
   transaction log after it; coord loads its node records from RocksDB and replays the
   log after its applied index. The RSS (``VmRSS`` from ``/proc/PID/status``) is read
   then, again after a full read (a pipelined getData of every node, each checked against
   the data written), with the peak (``VmHWM``).

Every phase is bounded; ``--nodes 100000`` makes a quick run. The table shows medians
(and ranges) over the restarts; the per-restart lines follow it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from benchmarks import loadgen
from benchmarks._zookeeper import SERVER_JVM_OPTIONS, BenchZooKeeper
from benchmarks.compare import (
    CoordServer,
    Machine,
    coord_revision,
    coord_storage,
    storage_note,
    wait_quiet,
)
from benchmarks.loadgen import SimpleClient
from benchmarks.results import Better, Chart, Measure, ResultSet, measure_from_runs
from coord.protocol import ACL, CreateRequest, GetDataRequest, Id, OpCode, Perm, Record

__all__ = ["Fill", "Restart", "ServerReport", "main"]

_OPEN_ACL = (ACL(int(Perm.ALL), Id("world", "anyone")),)
_ROOT = "/r"
_SERVE_TIMEOUT = 600.0  # a restart that takes longer than this is reported as failed
_ATTEMPT_TIMEOUT = 2.0
_POLL_INTERVAL = 0.01
_PHASE_TIMEOUT = 1800.0  # fill or full read


# --- the tree -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """The tree: ``parents`` parents under ``/r``, ``children`` children each."""

    parents: int
    children: int
    data: bytes

    @classmethod
    def for_nodes(cls, nodes: int, parents: int, data_size: int) -> Shape:
        """``nodes`` leaves spread over ``parents`` parents (fewer if there are fewer
        nodes); the leaf count is rounded down to a multiple of the parents."""
        parents = max(1, min(parents, nodes))
        return cls(parents, max(1, nodes // parents), b"d" * data_size)

    @property
    def leaves(self) -> int:
        """Leaf znodes (the parents and ``/r`` come on top)."""
        return self.parents * self.children

    @property
    def width(self) -> int:
        return max(4, len(str(max(self.parents, self.children) - 1)))

    def parent(self, i: int) -> str:
        return f"{_ROOT}/{i:0{self.width}d}"

    def leaf(self, i: int, j: int) -> str:
        return f"{self.parent(i)}/{j:0{self.width}d}"

    @property
    def last(self) -> str:
        """The last node the fill creates."""
        return self.leaf(self.parents - 1, self.children - 1)

    def leaves_of(self, parents: range) -> Iterator[tuple[int, int]]:
        for i in parents:
            for j in range(self.children):
                yield i, j


def _slices(count: int, parts: int) -> list[range]:
    """``range(count)`` cut into ``parts`` contiguous slices (some may be empty)."""
    size = -(-count // parts)
    return [range(k * size, min(count, (k + 1) * size)) for k in range(parts)]


# --- measurements -----------------------------------------------------------------------------


def rss_mib(pid: int | None) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a process in MiB, from ``/proc/PID/status``."""
    if pid is None:
        return None
    values: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024  # kB
    except OSError:
        return None
    if len(values) != 2:
        return None
    return values["VmRSS"], values["VmHWM"]


def dir_mib(path: Path) -> float:
    """The disk space the files under ``path`` occupy (allocated blocks: ZooKeeper's
    preallocated, sparse transaction log counts only as far as it was written), MiB."""
    total = 0
    for f in path.rglob("*"):
        with contextlib.suppress(OSError):
            if f.is_file():
                total += f.stat().st_blocks * 512
    return total / 2**20


def _dir_state(path: Path) -> list[tuple[str, int, float]]:
    out = []
    for f in sorted(path.rglob("*")):
        with contextlib.suppress(OSError):
            if f.is_file():
                st = f.stat()
                out.append((str(f), st.st_size, st.st_mtime))
    return out


def settle(path: Path, quiet: float, limit: float) -> float:
    """Wait until no file under ``path`` changed for ``quiet`` seconds (at most ``limit``
    seconds); returns the seconds waited."""
    started = time.monotonic()
    last = _dir_state(path)
    last_change = started
    while time.monotonic() - started < limit:
        time.sleep(0.25)
        now = _dir_state(path)
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            break
    return time.monotonic() - started


@dataclass(slots=True)
class Fill:
    """What the fill measured."""

    nodes: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    settle_seconds: float = 0.0
    rss_mib: float | None = None
    stop_seconds: float = 0.0
    disk_mib: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.nodes / self.seconds if self.seconds else 0.0


@dataclass(slots=True)
class Restart:
    """One restart: time to serve, RSS, the full read."""

    serve_seconds: float | None = None
    rss_serving_mib: float | None = None
    read_seconds: float = 0.0
    read_nodes: int = 0
    read_errors: dict[str, int] = field(default_factory=dict)
    rss_read_mib: float | None = None
    peak_rss_mib: float | None = None
    stop_seconds: float = 0.0
    error: str | None = None
    note: str = ""


@dataclass(slots=True)
class ServerReport:
    """Everything measured on one server."""

    name: str
    status: str = ""
    fill: Fill = field(default_factory=Fill)
    restarts: list[Restart] = field(default_factory=list)


# --- talking to the server --------------------------------------------------------------------


def _error_name(code: int) -> str:
    return loadgen._error_name(code)


async def _fill(host: str, port: int, shape: Shape, sessions: int, window: int) -> dict[str, int]:
    """Create ``/r``, the parents and the leaves; error counts by name (none if all went
    well)."""
    errors: dict[str, int] = {}

    def count(codes: dict[int, int]) -> None:
        for code, n in codes.items():
            if code:
                errors[_error_name(code)] = errors.get(_error_name(code), 0) + n

    client = await SimpleClient.connect(host, port)
    try:
        creates: list[tuple[OpCode, Record]] = [
            (OpCode.CREATE, CreateRequest(_ROOT, b"", _OPEN_ACL, 0))
        ]
        creates += [
            (OpCode.CREATE, CreateRequest(shape.parent(i), b"", _OPEN_ACL, 0))
            for i in range(shape.parents)
        ]
        count(await client.pipeline(creates, window))
    finally:
        await client.close()

    async def session(parents: range) -> None:
        c = await SimpleClient.connect(host, port)
        try:
            data = shape.data
            count(
                await c.pipeline(
                    (
                        (OpCode.CREATE, CreateRequest(shape.leaf(i, j), data, _OPEN_ACL, 0))
                        for i, j in shape.leaves_of(parents)
                    ),
                    window,
                )
            )
        finally:
            await c.close()

    await asyncio.gather(*(session(part) for part in _slices(shape.parents, sessions)))
    return errors


async def _read_all(
    host: str, port: int, shape: Shape, sessions: int, window: int
) -> tuple[int, dict[str, int]]:
    """getData of every leaf, each checked against the data written; (nodes read
    correctly, error counts by name)."""
    errors: dict[str, int] = {}
    good = 0
    # GetDataResponse: buffer (int length, bytes), then the Stat.
    expected = len(shape.data).to_bytes(4, "big") + shape.data
    size = len(expected)

    def check(_index: int, err: int, body: bytes) -> None:
        nonlocal good
        if err:
            errors[_error_name(err)] = errors.get(_error_name(err), 0) + 1
        elif body[:size] != expected:
            errors["wrong-data"] = errors.get("wrong-data", 0) + 1
        else:
            good += 1

    async def session(parents: range) -> None:
        c = await SimpleClient.connect(host, port)
        try:
            await c.pipeline(
                (
                    (OpCode.GET_DATA, GetDataRequest(shape.leaf(i, j), False))
                    for i, j in shape.leaves_of(parents)
                ),
                window,
                check,
            )
        finally:
            await c.close()

    await asyncio.gather(*(session(part) for part in _slices(shape.parents, sessions)))
    return good, errors


async def _get_once(host: str, port: int, path: str) -> int:
    """One session, one getData of ``path``; its error code."""
    client = await SimpleClient.connect(host, port)
    try:
        err, _ = await client.request(OpCode.GET_DATA, GetDataRequest(path, False))
        return err
    finally:
        await client.close()


def wait_serving(
    host: str, port: int, path: str, alive: Callable[[], bool], started: float
) -> float:
    """Poll until a getData of ``path`` succeeds; the seconds since ``started``.

    Neither server takes sessions before its data is loaded, so an answer other than
    success (``NO_NODE``) means the data did not survive the restart.

    Raises:
        RuntimeError: The process died, the node is missing, or the server did not serve
            within the time limit.
    """
    while True:
        try:
            err = loadgen._run_bounded(_get_once(host, port, path), _ATTEMPT_TIMEOUT)
        except Exception:  # refused, reset, closed or timed out while starting: not yet
            err = None
        if err == 0:
            return time.monotonic() - started
        if err is not None:
            raise RuntimeError(f"serving, but getData {path} answers {_error_name(err)}")
        if not alive():
            raise RuntimeError("the server exited while starting")
        if time.monotonic() - started > _SERVE_TIMEOUT:
            raise RuntimeError(f"not serving {path} after {_SERVE_TIMEOUT:g} s")
        time.sleep(_POLL_INTERVAL)


# --- one server --------------------------------------------------------------------------------


class _Server:
    """What the procedure needs from a server: start, stop gracefully, relaunch, pid."""

    name = "?"
    port = 0

    def start(self) -> None:
        raise NotImplementedError

    def stop_gracefully(self) -> float:
        raise NotImplementedError

    def launch(self) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        raise NotImplementedError

    @property
    def data_dir(self) -> Path:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def before_stop(self) -> str:
        """Something worth knowing about the state just before the stop after the fill."""
        return ""

    def after_start(self) -> str:
        """Something worth knowing about the start that just happened."""
        return ""


class _Coord(_Server):
    name = "coord"

    def __init__(self, workdir: Path, extra_args: Sequence[str]) -> None:
        self.server = CoordServer(workdir, extra_args)
        self.port = self.server.port
        self.workdir = workdir

    def start(self) -> None:
        self.server.start()

    def stop_gracefully(self) -> float:
        started = time.monotonic()
        self.server.stop(grace=120.0)
        return time.monotonic() - started

    def launch(self) -> None:
        self.server.launch()

    def alive(self) -> bool:
        return self.server.pid is not None

    @property
    def pid(self) -> int | None:
        return self.server.pid

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def close(self) -> None:
        self.server.stop()

    @property
    def command(self) -> str:
        return " ".join(["python", *self.server.command[1:]])

    def after_start(self) -> str:
        """coord's own account of its recovery (its last ``recovered ...`` log line)."""
        with contextlib.suppress(OSError):
            lines = self.server.log_path.read_text(encoding="utf-8", errors="replace")
            recovered = [line for line in lines.splitlines() if "recovered" in line]
            if recovered:
                return "log: " + recovered[-1].split("coord.server: ", 1)[-1]
        return ""


class _ZooKeeper(_Server):
    name = "ZooKeeper"

    def __init__(self) -> None:
        self.server = BenchZooKeeper()

    def start(self) -> None:
        self.server.start()
        self.port = self.server.port

    def stop_gracefully(self) -> float:
        return self.server.stop_server()

    def launch(self) -> None:
        self.server.launch()

    def alive(self) -> bool:
        return self.server.running

    @property
    def pid(self) -> int | None:
        return self.server.pid

    @property
    def data_dir(self) -> Path:
        return self.server.directory / "data"

    def close(self) -> None:
        self.server.stop()

    def before_stop(self) -> str:
        """Snapshots on disk and how many transactions a restart replays after the latest."""
        last = 0
        with contextlib.suppress(OSError, ValueError):
            for line in self.server.four_letter_word("srvr").splitlines():
                if line.startswith("Zxid:"):
                    last = int(line.split(":", 1)[1].strip(), 16)
        snaps = sorted(
            int(f.name.split(".", 1)[1], 16)
            for f in (self.data_dir / "version-2").glob("snapshot.*")
            if f.name.split(".", 1)[1].isalnum()
        )
        if not snaps:
            return f"no snapshot; last zxid {last:#x}"
        behind = (last & 0xFFFFFFFF) - (snaps[-1] & 0xFFFFFFFF)
        return (
            f"{len(snaps)} snapshot(s), latest at zxid {snaps[-1]:#x}; last zxid {last:#x}: "
            f"the first restart replays {behind:,} txns from the log"
        )


def _measure(server: _Server, shape: Shape, args: argparse.Namespace) -> ServerReport:
    report = ServerReport(server.name)
    host = "127.0.0.1"
    fill = report.fill
    _quiet(args.quiet_wait)
    _progress(f"{server.name}: filling {shape.leaves:,} znodes at 127.0.0.1:{server.port}")
    started = time.monotonic()
    fill.errors = loadgen._run_bounded(
        _fill(host, server.port, shape, args.sessions, args.window), _PHASE_TIMEOUT
    )
    fill.seconds = time.monotonic() - started
    fill.nodes = shape.leaves
    _progress(
        f"{server.name}: filled in {fill.seconds:.1f} s ({fill.rate:,.0f} creates/s), "
        f"errors {fill.errors or 0}; waiting for the data directory to settle"
    )
    fill.settle_seconds = settle(server.data_dir, quiet=2.0, limit=args.settle)
    rss = rss_mib(server.pid)
    fill.rss_mib = rss[0] if rss else None
    fill.note = server.before_stop()
    fill.stop_seconds = server.stop_gracefully()
    fill.disk_mib = dir_mib(server.data_dir)
    _progress(
        f"{server.name}: settled after {fill.settle_seconds:.1f} s, RSS "
        f"{_cell([fill.rss_mib], 0)} MiB; "
        f"stopped in {fill.stop_seconds:.1f} s; data directory {fill.disk_mib:,.1f} MiB"
    )
    for n in range(args.restarts):
        restart = Restart()
        report.restarts.append(restart)
        _quiet(args.quiet_wait)
        started = time.monotonic()
        server.launch()
        try:
            restart.serve_seconds = wait_serving(
                host, server.port, shape.last, server.alive, started
            )
            rss = rss_mib(server.pid)
            restart.rss_serving_mib = rss[0] if rss else None
            restart.note = server.after_start()
            _progress(
                f"{server.name}: restart {n + 1}: serving {shape.last} after "
                f"{restart.serve_seconds:.2f} s, RSS {_cell([restart.rss_serving_mib], 0)} MiB; "
                "full read"
            )
            started = time.monotonic()
            restart.read_nodes, restart.read_errors = loadgen._run_bounded(
                _read_all(host, server.port, shape, args.sessions, args.window), _PHASE_TIMEOUT
            )
            restart.read_seconds = time.monotonic() - started
            rss = rss_mib(server.pid)
            if rss:
                restart.rss_read_mib, restart.peak_rss_mib = rss
            _progress(
                f"{server.name}: restart {n + 1}: read {restart.read_nodes:,} nodes in "
                f"{restart.read_seconds:.1f} s, errors {restart.read_errors or 0}, "
                f"RSS {_cell([restart.rss_read_mib], 0)} MiB "
                f"(peak {_cell([restart.peak_rss_mib], 0)} MiB)"
            )
        except Exception as exc:  # reported in the table; the other server still runs
            restart.error = f"{type(exc).__name__}: {exc}"
            _progress(f"{server.name}: restart {n + 1} failed: {restart.error}")
        restart.stop_seconds = server.stop_gracefully()
        if restart.error:
            break
    return report


# --- output ----------------------------------------------------------------------------------


def _cell(values: Sequence[float | None], digits: int) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "n/a"
    text = f"{statistics.median(present):,.{digits}f}"
    if len(present) > 1:
        text += f" ({min(present):,.{digits}f}-{max(present):,.{digits}f})"
    return text


def _rows(reports: Sequence[ServerReport], shape: Shape) -> list[tuple[str, ...]]:
    def each(get: Callable[[ServerReport], str]) -> tuple[str, ...]:
        return tuple(get(r) for r in reports)

    def restarts(get: Callable[[Restart], float | None], digits: int) -> tuple[str, ...]:
        return each(lambda r: _cell([get(x) for x in r.restarts if x.error is None], digits))

    return [
        (
            f"fill: {shape.leaves:,} creates of {len(shape.data)} B (s)",
            *each(lambda r: f"{r.fill.seconds:,.1f}"),
        ),
        ("fill rate (creates/s)", *each(lambda r: f"{r.fill.rate:,.0f}")),
        ("RSS after the fill (MiB)", *each(lambda r: _cell([r.fill.rss_mib], 0))),
        ("graceful stop after the fill (s)", *each(lambda r: f"{r.fill.stop_seconds:.2f}")),
        ("data on disk after the stop (MiB allocated)", *each(lambda r: f"{r.fill.disk_mib:,.1f}")),
        ("restart: time to serve the last node (s)", *restarts(lambda x: x.serve_seconds, 2)),
        ("RSS when serving (MiB)", *restarts(lambda x: x.rss_serving_mib, 0)),
        ("full read: getData of every node (s)", *restarts(lambda x: x.read_seconds, 1)),
        ("RSS after the full read (MiB)", *restarts(lambda x: x.rss_read_mib, 0)),
        ("peak RSS since the restart (VmHWM, MiB)", *restarts(lambda x: x.peak_rss_mib, 0)),
    ]


def result_set(
    reports: Sequence[ServerReport], shape: Shape, command: str, measured: str
) -> ResultSet:
    """coord against ZooKeeper as a :class:`benchmarks.results.ResultSet`
    (``--results-json``): the table's numbers, a bars chart of the times and one of the
    memory and disk.

    Raises:
        ValueError: coord or ZooKeeper was not measured (both are needed).
    """
    by_name = {r.name: r for r in reports if not r.status}
    coord, zk = by_name.get("coord"), by_name.get("ZooKeeper")
    if coord is None or zk is None:
        raise ValueError("--results-json needs both coord and ZooKeeper measured")

    def fill(name: str, unit: str, better: Better, get: Callable[[Fill], float | None]) -> None:
        a, b = get(coord.fill), get(zk.fill)
        measures.append(
            measure_from_runs(
                name, unit, better, [a] if a is not None else [], [b] if b is not None else []
            )
        )

    def restarts(name: str, unit: str, get: Callable[[Restart], float | None]) -> None:
        a, b = (
            [v for v in (get(x) for x in r.restarts if x.error is None) if v is not None]
            for r in (coord, zk)
        )
        measures.append(measure_from_runs(name, unit, "lower", a, b))

    measures: list[Measure | None] = []
    fill_name = f"fill: {shape.leaves:,} creates"
    fill(fill_name, "s", "lower", lambda f: f.seconds)
    fill("fill rate", "creates/s", "higher", lambda f: f.rate)
    fill("RSS after the fill", "MiB", "lower", lambda f: f.rss_mib)
    fill("graceful stop after the fill", "s", "lower", lambda f: f.stop_seconds)
    fill("data on disk after the stop", "MiB", "lower", lambda f: f.disk_mib)
    restarts("restart: time to serve the last node", "s", lambda x: x.serve_seconds)
    restarts("RSS when serving", "MiB", lambda x: x.rss_serving_mib)
    restarts("full read: getData of every node", "s", lambda x: x.read_seconds)
    restarts("RSS after the full read", "MiB", lambda x: x.rss_read_mib)
    restarts("peak RSS since the restart", "MiB", lambda x: x.peak_rss_mib)
    present = tuple(m for m in measures if m is not None)
    names = {m.name for m in present}
    times = tuple(
        n
        for n in (
            fill_name,
            "restart: time to serve the last node",
            "full read: getData of every node",
        )
        if n in names
    )
    memory = tuple(
        n
        for n in (
            "RSS after the fill",
            "RSS when serving",
            "RSS after the full read",
            "data on disk after the stop",
        )
        if n in names
    )
    charts = []
    if times:
        charts.append(Chart("restart-time.svg", "bars", f"{shape.leaves:,} znodes: times", times))
    if memory:
        charts.append(
            Chart("restart-memory.svg", "bars", f"{shape.leaves:,} znodes: memory and disk", memory)
        )
    return ResultSet(
        title=f"Restart with {shape.leaves:,} znodes",
        measured=measured,
        source=f"python -m benchmarks.restart; {len(coord.restarts)} restarts per server",
        command=command,
        measures=present,
        charts=tuple(charts),
    )


def _details(report: ServerReport) -> Iterator[str]:
    f = report.fill
    yield (
        f"{report.name}: fill {f.nodes:,} in {f.seconds:.1f} s ({f.rate:,.0f}/s), errors "
        f"{f.errors or 0}; settled {f.settle_seconds:.1f} s; RSS {_cell([f.rss_mib], 0)} MiB; "
        f"stop {f.stop_seconds:.2f} s; {f.disk_mib:,.1f} MiB on disk"
        + (f"; {f.note}" if f.note else "")
    )
    for n, x in enumerate(report.restarts, 1):
        if x.error:
            yield f"{report.name}: restart {n}: FAILED: {x.error}"
            continue
        yield (
            f"{report.name}: restart {n}: serving after {x.serve_seconds:.2f} s, RSS "
            f"{_cell([x.rss_serving_mib], 0)} MiB; full read {x.read_nodes:,} ok in "
            f"{x.read_seconds:.1f} s, errors {x.read_errors or 0}; RSS "
            f"{_cell([x.rss_read_mib], 0)} MiB, peak {_cell([x.peak_rss_mib], 0)} MiB; "
            f"stop {x.stop_seconds:.2f} s" + (f"; {x.note}" if x.note else "")
        )


def render(
    reports: Sequence[ServerReport],
    shape: Shape,
    machine: Machine | None,
    command: str,
    style: str,
    notes: Sequence[str],
) -> str:
    """The report: machine, table, notes and per-restart lines."""
    header = ("measure", *(r.name for r in reports))
    table = _rows(reports, shape)
    setup = (
        f"{shape.leaves:,} znodes: {shape.parents:,} parents x {shape.children:,} children "
        f"of {len(shape.data)} B; medians (min-max) over the restarts"
    )
    details = [line for r in reports for line in _details(r)]
    machine_lines = machine.lines() if machine else []
    if style == "docs-table":
        out = [f"`{command}`", "", *[f"- {line}" for line in machine_lines], f"- {setup}", ""]
        out.append("| " + " | ".join(header) + " |")
        out.append("|---|" + "---:|" * len(reports))
        out += ["| " + " | ".join(cells) + " |" for cells in table]
        out += ["", *[f"- {note}" for note in notes], "", "```", *details, "```"]
        return "\n".join(out) + "\n"
    widths = [max(len(cells[i]) for cells in [header, *table]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))])

    out = [f"$ {command}", *machine_lines, setup, "", line(header)]
    out.append("  ".join("-" * w for w in widths))
    out += [line(cells) for cells in table]
    out += ["", *notes, "", *details]
    return "\n".join(out) + "\n"


def _quiet(limit: float) -> None:
    state = wait_quiet(limit)
    if state:
        _progress(f"machine {state}")


def _progress(line: str) -> None:
    print(f"[restart {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.restart",
        description="Fill coord and Apache ZooKeeper with small znodes, restart them, and "
        "measure the time to serve and the memory.",
    )
    parser.add_argument("--nodes", type=int, default=1_000_000, help="leaf znodes")
    parser.add_argument("--parents", type=int, default=1000)
    parser.add_argument("--data-size", type=int, default=10, help="bytes per leaf")
    parser.add_argument("--restarts", type=int, default=3, help="restarts per server")
    parser.add_argument("--sessions", type=int, default=4, help="client sessions")
    parser.add_argument("--window", type=int, default=1000, help="requests in flight each")
    parser.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="seconds at most to wait after the fill for the data directory to settle",
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        default=["coord", "zookeeper"],
        choices=["coord", "zookeeper"],
        help="which servers, in this order",
    )
    parser.add_argument(
        "--coord-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `coord server`",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="S",
        help="before the fill and each restart, wait up to S seconds for the machine to "
        "be quiet (default 0: do not wait)",
    )
    parser.add_argument("--output", choices=("text", "docs-table"), default="text")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--results-json",
        type=Path,
        metavar="FILE",
        help="also write the summary in the format of benchmarks/results/ "
        "(see benchmarks/results.py; `make plots` draws it)",
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """The ``python -m benchmarks.restart`` command.

    Returns:
        0; 1 if anything failed or any request had an error.
    """
    args = _argument_parser().parse_args(argv)
    out = out or sys.stdout
    command = "python -m benchmarks.restart " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    shape = Shape.for_nodes(args.nodes, args.parents, args.data_size)
    loadgen._install_uvloop()
    workdir = Path(tempfile.mkdtemp(prefix="coord-restart-"))
    reports: list[ServerReport] = []
    notes: list[str] = []
    machine: Machine | None = None
    try:
        for name in dict.fromkeys(args.servers):
            server: _Server = (
                _Coord(workdir / "coord", args.coord_arg) if name == "coord" else _ZooKeeper()
            )
            try:
                _progress(f"starting {server.name}")
                server.start()
                if isinstance(server, _ZooKeeper):
                    machine = machine or Machine.detect(server.server.version, server.data_dir)
                    notes.append(
                        "ZooKeeper: forceSync=yes, snapCount=100000 (defaults), JVM "
                        f"{' '.join(SERVER_JVM_OPTIONS)}; data in {server.data_dir}"
                    )
                else:
                    assert isinstance(server, _Coord)
                    notes.append(f"coord: `{server.command}`; source: {coord_revision()}")
                    notes.append(storage_note(args.coord_arg))
                    if coord_storage(args.coord_arg)[0] == "memory":
                        notes.append("coord in memory keeps nothing across a restart!")
                report = _measure(server, shape, args)
            except Exception as exc:  # the other server is still measured
                _progress(f"{server.name}: failed: {type(exc).__name__}: {exc}")
                report = ServerReport(server.name, status=f"failed: {exc}")
                notes.append(f"{server.name}: FAILED: {type(exc).__name__}: {exc}")
            finally:
                server.close()
            reports.append(report)
        if machine is None:
            machine = Machine.detect("not run", workdir)
        print(render(reports, shape, machine, command, args.output, notes), file=out, end="")
        if args.json:
            payload: dict[str, Any] = {
                "command": command,
                "machine": asdict(machine),
                "shape": {"parents": shape.parents, "children": shape.children},
                "servers": [asdict(r) for r in reports],
            }
            args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        if args.results_json:
            measured = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            result_set(reports, shape, command, measured).write(args.results_json)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = any(
        r.status
        or r.fill.errors
        or any(x.error or x.read_errors or x.read_nodes != shape.leaves for x in r.restarts)
        for r in reports
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

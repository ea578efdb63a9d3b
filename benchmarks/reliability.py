"""Run the process-level fault scenario against a 3-member ensemble and report the checks.

``python -m benchmarks.reliability --target zookeeper`` starts three Apache ZooKeeper 3.8
members on 127.0.0.1 (:class:`coord.testing.ZooKeeperEnsemble`, ``forceSync=yes``, peer
links through proxies so the leader can be partitioned), runs
:func:`coord.testing.run_chaos` with every fault (kill the leader, kill a follower, pause
the leader past the session timeout, partition the leader, kill all and restart) repeated
``--rounds`` times, and prints a Markdown table: acknowledged writes, acknowledged writes
lost, violations per check, the longest write outage after each kind of fault, and the
operation counts. ``--output FILE`` also writes the table (and the run's details) there;
``--json FILE`` writes the raw numbers, and ``--from-json`` renders several such files side
by side (one column each) without running anything.

Targets are registered in :data:`TARGETS`: a name and a function returning a context
manager that yields a started :class:`coord.testing.Cluster`. ``coord`` runs
:class:`coord.testing._ensemble.CoordEnsemble` (tick 500 ms, like the ZooKeeper members)
through :class:`coord.testing.OneBasedCluster`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TextIO

from benchmarks.results import Chart as ResultChart
from benchmarks.results import Measure, ResultSet, measure_from_runs
from coord.testing import (
    ChaosConfig,
    ChaosResult,
    Cluster,
    Fault,
    FaultReport,
    OneBasedCluster,
    Violation,
    ZooKeeperEnsemble,
    render_markdown,
    run_chaos,
    zookeeper_available,
)

__all__ = ["TARGETS", "main", "result_set"]


@contextlib.contextmanager
def _zookeeper(size: int) -> Iterator[Cluster]:
    reason = zookeeper_available()
    if reason is not None:
        raise SystemExit(f"Apache ZooKeeper unavailable: {reason}")
    with ZooKeeperEnsemble(size, log_level="WARN") as ensemble:
        yield ensemble


@contextlib.contextmanager
def _coord(size: int) -> Iterator[Cluster]:
    try:
        from coord.testing._ensemble import CoordEnsemble
    except ImportError as error:
        raise SystemExit(f"coord's ensemble is not available here: {error}") from None
    with CoordEnsemble(size, config={"tick_time": 500}) as ensemble:
        yield OneBasedCluster(ensemble)


#: Target name -> factory of a context manager yielding a started cluster of ``size``.
TARGETS: dict[str, Callable[[int], AbstractContextManager[Cluster]]] = {
    "zookeeper": _zookeeper,
    "coord": _coord,
}


def _progress(line: str) -> None:
    print(f"[reliability {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def _argument_parser() -> argparse.ArgumentParser:
    defaults = ChaosConfig()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.reliability",
        description="Faults against a 3-member ensemble; lost writes, violations, outages.",
    )
    parser.add_argument("--target", choices=sorted(TARGETS), default="zookeeper")
    parser.add_argument("--size", type=int, default=3, help="members (default 3)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="times the whole fault list is applied"
    )
    parser.add_argument(
        "--faults",
        nargs="+",
        default=[f.name.lower() for f in Fault],
        choices=[f.name.lower() for f in Fault],
        metavar="FAULT",
        help="subset of " + ", ".join(f.name.lower() for f in Fault) + " (default: all)",
    )
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--registers", type=int, default=defaults.registers)
    parser.add_argument("--session-timeout", type=float, default=defaults.session_timeout)
    parser.add_argument("--hold", type=float, default=8.0, help="seconds each fault lasts")
    parser.add_argument("--quiet", type=float, default=6.0, help="seconds after each repair")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--linearizable-reads",
        action="store_true",
        help="sync before each read and check reads for linearizability too",
    )
    parser.add_argument("--output", type=Path, help="also write the Markdown report here")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="run nothing: render earlier --json files side by side",
    )
    parser.add_argument(
        "--results-json",
        type=Path,
        metavar="FILE",
        help="with --from-json of a coord and a zookeeper run: also write the outages in "
        "the format of benchmarks/results/ (see benchmarks/results.py; `make plots`)",
    )
    return parser


def _to_json(result: ChaosResult) -> dict[str, object]:
    return {
        "target": result.target,
        "duration": result.duration,
        "counts": dict(result.counts),
        "faults": [
            {
                "fault": r.fault.name,
                "member": r.member,
                "injected": r.injected,
                "repaired": r.repaired,
                "write_outage": r.write_outage,
            }
            for r in result.faults
        ],
        "acknowledged_writes": result.acknowledged_writes,
        "acknowledged_writes_lost": result.acknowledged_writes_lost,
        "violations": [[v.check, v.detail] for v in result.violations],
        "checks": result.checks,
    }


def _from_json(data: dict[str, Any]) -> ChaosResult:
    return ChaosResult(
        str(data["target"]),
        duration=float(data["duration"]),
        counts=Counter({str(k): int(v) for k, v in data["counts"].items()}),
        faults=[
            FaultReport(
                Fault[f["fault"]], f["member"], f["injected"], f["repaired"], f["write_outage"]
            )
            for f in data["faults"]
        ],
        acknowledged_writes=int(data["acknowledged_writes"]),
        acknowledged_writes_lost=int(data["acknowledged_writes_lost"]),
        violations=[Violation(c, d) for c, d in data["violations"]],
        checks=dict(data["checks"]),
    )


def _report(result: ChaosResult, config: ChaosConfig, command: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        render_markdown([result]),
        "Faults, in order (seconds since the workload started; outage = time from the fault "
        "to the completion of the first successful write invoked after it):",
        "",
    ]
    for r in result.faults:
        outage = "no write" if r.write_outage is None else f"{r.write_outage:.2f} s"
        lines.append(
            f"- {r.injected:6.1f} s {r.fault.value} (member {r.member}), repaired at "
            f"{r.repaired:.1f} s: write outage {outage}"
        )
    lines += [
        "",
        f"Workload: {config.clients} clients, {config.registers} registers, session timeout "
        f"{config.session_timeout} s; each fault held {config.hold} s (a pause at least "
        f"{config.session_timeout + 1} s), then {config.quiet} s quiet.",
    ]
    if result.linearizability is not None:
        lines.append(
            f"Linearizability checker: {result.linearizability.operations} operations on "
            f"{len(result.linearizability.keys)} keys in {result.linearizability.seconds:.2f} s."
        )
    if result.violations:
        lines += ["", "Violations:", ""]
        lines += [f"- {v}" for v in result.violations[:50]]
    return "\n".join(lines) + "\n"


def result_set(results: Sequence[ChaosResult], command: str, measured: str) -> ResultSet:
    """coord's run against ZooKeeper's as a :class:`benchmarks.results.ResultSet`: the
    longest write outage per kind of fault (a bars chart) and the acknowledged writes;
    lost writes and violations go into the notes.

    Raises:
        ValueError: ``results`` lacks a ``coord`` or a ``zookeeper`` run.
    """
    by_target = {r.target: r for r in results}
    coord, zk = by_target.get("coord"), by_target.get("zookeeper")
    if coord is None or zk is None:
        raise ValueError("--results-json needs a coord run and a zookeeper run")

    def longest(result: ChaosResult, fault: Fault) -> list[float]:
        outages = [
            r.write_outage for r in result.faults if r.fault is fault and r.write_outage is not None
        ]
        return [max(outages)] if outages else []

    measures: list[Measure | None] = [
        measure_from_runs(fault.value, "s", "lower", longest(coord, fault), longest(zk, fault))
        for fault in Fault
    ]
    measures.append(
        measure_from_runs(
            "acknowledged writes",
            "writes",
            "higher",
            [coord.acknowledged_writes],
            [zk.acknowledged_writes],
        )
    )
    present = tuple(m for m in measures if m is not None)
    outages = tuple(m.name for m in present if m.unit == "s")
    notes = tuple(
        f"{name}: acknowledged writes lost {r.acknowledged_writes_lost}, "
        f"violations {len(r.violations)}"
        for name, r in (("coord", coord), ("ZooKeeper", zk))
    )
    charts = ()
    if outages:
        charts = (
            ResultChart(
                "reliability-outages.svg",
                "bars",
                "Longest write outage per fault (lower is better)",
                outages,
            ),
        )
    return ResultSet(
        title="Reliability under faults: longest write outage per fault",
        measured=measured,
        source="python -m benchmarks.reliability (docs/reliability.md)",
        command=command,
        measures=present,
        charts=charts,
        notes=notes,
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """The ``python -m benchmarks.reliability`` command.

    Returns:
        0 when nothing was lost or violated, 1 otherwise.
    """
    args = _argument_parser().parse_args(argv)
    out = out or sys.stdout
    if args.from_json:
        results = [_from_json(json.loads(path.read_text())) for path in args.from_json]
        out.write(render_markdown(results))
        if args.results_json:
            newest = max(path.stat().st_mtime for path in args.from_json)
            measured = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(newest))
            command = "python -m benchmarks.reliability --from-json " + " ".join(
                str(path) for path in args.from_json
            )
            result_set(results, command, measured).write(args.results_json)
        return 0 if all(r.ok for r in results) else 1
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    command = "python -m benchmarks.reliability " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    faults = tuple(Fault[name.upper()] for name in args.faults) * args.rounds
    config = ChaosConfig(
        faults=faults,
        clients=args.clients,
        registers=args.registers,
        session_timeout=args.session_timeout,
        warmup=args.warmup,
        hold=args.hold,
        quiet=args.quiet,
        linearizable_reads=args.linearizable_reads,
        seed=args.seed,
        check_timeout=300.0,
    )
    _progress(f"starting {args.size} {args.target} members")
    with TARGETS[args.target](args.size) as cluster:
        _progress(f"members at {cluster.connect_string}; {len(faults)} faults")
        result = run_chaos(cluster, config, target=args.target, progress=_progress)
    _progress(result.summary().splitlines()[0])
    report = _report(result, config, command)
    out.write(report)
    if args.output:
        args.output.write_text(report, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(_to_json(result), indent=1), encoding="utf-8")
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

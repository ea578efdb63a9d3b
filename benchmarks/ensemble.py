"""Three-member ensembles side by side: coord against Apache ZooKeeper on this machine.

``python -m benchmarks.ensemble`` starts a 3-member Apache ZooKeeper 3.8 ensemble
(``forceSync=yes``, production JVM options) and a 3-member coord ensemble (its defaults:
RocksDB, fsync per batch), all on 127.0.0.1, and measures, one ensemble after the other:

* ``set``: synced setData throughput, sessions spread over all members (each write goes
  through the leader and a majority's disks);
* ``get``: getData throughput, sessions spread over all members (reads are local);
* ``set-latency``: one session, one write at a time, on a follower: p50 and p99;
* ``failover``: a writer connected to every member sets a node in a loop; the leader is
  killed with SIGKILL; the time until the next acknowledged write (median of
  ``--failovers`` rounds; the killed member restarts and catches up between rounds).

Everything shares the machine (the members of both ensembles and the load generator), so
ratios matter, not absolute numbers; the report says how busy the machine was otherwise.
Targets (issue 6): write throughput at least 0.7x ZooKeeper's, reads at least equal,
fail-over within 2x ZooKeeper's.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import loadgen
from benchmarks.loadgen import LoadSpec, Result
from benchmarks.results import Chart, Measure, ResultSet, measure_from_runs

__all__ = ["main", "result_set"]

TARGETS = {"set": 0.7, "get": 1.0, "failover": 2.0}


def _progress(line: str) -> None:
    print(f"[ensemble {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


@dataclass
class Outcome:
    """One ensemble's numbers."""

    name: str
    results: dict[str, Result] = field(default_factory=dict)
    failovers: list[float] = field(default_factory=list)

    @property
    def failover(self) -> float:
        return statistics.median(self.failovers) if self.failovers else float("nan")


class _Side:
    """An ensemble under test: ``ensemble`` has start, stop, connect_string,
    wait_for_leader, kill; subclasses say how a member restarts and what its zxid is."""

    ensemble: Any

    def __enter__(self) -> _Side:
        self.ensemble.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ensemble.stop()

    @property
    def connect_string(self) -> str:
        return str(self.ensemble.connect_string)

    def kill_leader(self) -> int:
        leader = int(self.ensemble.wait_for_leader())
        self.ensemble.kill(leader)
        return leader

    def restart(self, member: int) -> None:
        raise NotImplementedError

    def zxids(self) -> list[str]:
        raise NotImplementedError

    def wait_converged(self) -> None:
        _converge(self.zxids)


class _CoordSide(_Side):
    def __init__(self) -> None:
        from coord.testing._ensemble import CoordEnsemble

        self.ensemble = CoordEnsemble(3, proxies=False, config={"max_client_connections": 0})

    def restart(self, member: int) -> None:
        self.ensemble.start_member(member)
        self.ensemble.wait_for_leader()

    def zxids(self) -> list[str]:
        return [self.ensemble.srvr(i).get("Zxid", "") for i in self.ensemble.members]


class _ZooKeeperSide(_Side):
    def __init__(self) -> None:
        from benchmarks._zookeeper import SERVER_JVM_OPTIONS
        from coord.testing._zookeeper_ensemble import ZooKeeperEnsemble

        # ZooKeeper's sample configuration and zkServer.sh's JVM settings, forceSync on.
        self.ensemble = ZooKeeperEnsemble(
            3,
            tick_time=2000,
            init_limit=10,
            sync_limit=5,
            force_sync=True,
            proxied=False,
            log_level="WARN",
            jvm_options=SERVER_JVM_OPTIONS,
        )

    def restart(self, member: int) -> None:
        self.ensemble.restart(member)
        self.ensemble.wait_for_leader()

    def zxids(self) -> list[str]:
        out = []
        for i in range(self.ensemble.size):
            for line in self.ensemble.four_letter_word(i, "srvr").splitlines():
                if line.startswith("Zxid:"):
                    out.append(line.split(":", 1)[1].strip())
        return out


def _converge(zxids: Callable[[], list[str]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            values = zxids()
            if len(values) == 3 and len(set(values)) == 1:
                return
        time.sleep(0.1)
    raise TimeoutError("members did not converge")


def _spec(connect: str, scenario: str, args: argparse.Namespace) -> LoadSpec:
    servers = connect.split(",")
    host, _, port = servers[0].rpartition(":")
    more = tuple(servers[1:])
    if scenario == "set-latency":
        # One session on a follower-or-leader member: the second listed.
        host, _, port = servers[1].rpartition(":")
        more = ()
    return LoadSpec(
        host=host,
        port=int(port),
        scenario=scenario,
        sessions=args.sessions,
        outstanding=args.outstanding,
        duration=args.duration,
        warmup=args.warmup,
        procs=args.procs,
        more_servers=more,
    )


def _failover(side: _Side) -> float:
    """Seconds from killing the leader to the next acknowledged write."""
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry

    retry = KazooRetry(max_tries=-1, delay=0.01, max_delay=0.05)
    client = KazooClient(
        hosts=side.connect_string, timeout=10.0, connection_retry=retry, command_retry=retry
    )
    client.start(timeout=30)
    try:
        client.ensure_path("/failover")
        for _ in range(20):
            client.set("/failover", b"before")
        killed_at = time.monotonic()
        leader = side.kill_leader()
        killed_at = (killed_at + time.monotonic()) / 2
        client.retry(client.set, "/failover", b"after")  # through ConnectionLoss
        elapsed = time.monotonic() - killed_at
    finally:
        client.stop()
        client.close()
    side.restart(leader)
    side.wait_converged()
    return elapsed


def _measure(name: str, side: _Side, args: argparse.Namespace) -> Outcome:
    outcome = Outcome(name)
    with side:
        _progress(f"{name}: up at {side.connect_string}")
        for scenario in args.scenarios:
            spec = _spec(side.connect_string, scenario, args)
            outcome.results[scenario] = loadgen.run(spec, progress=_progress)
            _progress(f"{name} {scenario}: {loadgen.format_result(outcome.results[scenario])}")
        for k in range(args.failovers):
            seconds = _failover(side)
            outcome.failovers.append(seconds)
            _progress(f"{name} failover {k + 1}/{args.failovers}: {seconds:.3f} s")
    return outcome


def _rows(coord: Outcome, zk: Outcome) -> Iterator[str]:
    yield "| Measure | coord | ZooKeeper | coord / ZooKeeper | Target |"
    yield "|---|---|---|---|---|"
    for scenario, result in coord.results.items():
        other = zk.results.get(scenario)
        if other is None:
            continue
        if scenario == "set-latency":
            for q in ("p50", "p99"):
                a, b = result.latency_ms.get(q, 0.0), other.latency_ms.get(q, 0.0)
                yield f"| setData latency {q} (ms), 1x1 | {a:.2f} | {b:.2f} | {a / b:.2f} | - |"
            continue
        ratio = result.rate / other.rate if other.rate else float("nan")
        target = TARGETS.get(scenario)
        goal = f">= {target}x" + (" met" if ratio >= target else " NOT met") if target else "-"
        yield (
            f"| {scenario} throughput (req/s) | {result.rate:,.0f} | {other.rate:,.0f} | "
            f"{ratio:.2f} | {goal} |"
        )
    if coord.failovers and zk.failovers:
        ratio = coord.failover / zk.failover
        goal = "<= 2x " + ("met" if ratio <= TARGETS["failover"] else "NOT met")
        yield (
            f"| leader fail-over (s, median of {len(coord.failovers)}) | {coord.failover:.3f} | "
            f"{zk.failover:.3f} | {ratio:.2f} | {goal} |"
        )


_NAMES = {"set": "setData throughput", "get": "getData throughput"}


def result_set(coord: Outcome, zk: Outcome, command: str, measured: str) -> ResultSet:
    """The comparison as a :class:`benchmarks.results.ResultSet` (``--results-json``), with
    a bars chart of the throughputs and a ratio chart of everything."""
    measures: list[Measure | None] = []
    for scenario, result in coord.results.items():
        other = zk.results.get(scenario)
        if other is None:
            continue
        if scenario == "set-latency":
            for q in ("p50", "p99"):
                a, b = result.latency_ms.get(q), other.latency_ms.get(q)
                measures.append(
                    measure_from_runs(
                        f"setData latency {q}, 1x1",
                        "ms",
                        "lower",
                        [a] if a is not None else [],
                        [b] if b is not None else [],
                    )
                )
            continue
        name = _NAMES.get(scenario, f"{scenario} throughput")
        measures.append(measure_from_runs(name, "req/s", "higher", [result.rate], [other.rate]))
    if coord.failovers and zk.failovers:
        name = f"leader fail-over (median of {len(coord.failovers)})"
        measures.append(measure_from_runs(name, "s", "lower", coord.failovers, zk.failovers))
    present = tuple(m for m in measures if m is not None)
    if not present:
        raise ValueError("nothing was measured on both ensembles")
    charts = []
    throughput = tuple(m.name for m in present if m.unit == "req/s")
    if throughput:
        charts.append(
            Chart("ensemble-throughput.svg", "bars", "3-member ensembles: throughput", throughput)
        )
    charts.append(
        Chart(
            "ensemble-ratios.svg",
            "ratio",
            "3-member ensembles: coord / ZooKeeper",
            tuple(m.name for m in present if m.zookeeper > 0),
        )
    )
    return ResultSet(
        title="Three-member ensembles",
        measured=measured,
        source="python -m benchmarks.ensemble",
        command=command,
        measures=present,
        charts=tuple(charts),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ensemble", description=__doc__)
    parser.add_argument(
        "--scenarios", nargs="+", default=["set", "get", "set-latency"], metavar="NAME"
    )
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--outstanding", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--failovers", type=int, default=5)
    parser.add_argument(
        "--results-json",
        type=Path,
        metavar="FILE",
        help="also write the numbers in the format of benchmarks/results/ "
        "(see benchmarks/results.py; `make plots` draws it)",
    )
    args = parser.parse_args(argv)
    zk = _measure("zookeeper", _ZooKeeperSide(), args)
    coord = _measure("coord", _CoordSide(), args)
    print("\n".join(_rows(coord, zk)))
    if args.results_json:
        command = "python -m benchmarks.ensemble " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        measured = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        result_set(coord, zk, command, measured).write(args.results_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

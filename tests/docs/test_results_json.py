"""The benchmark commands write their summaries in the format of benchmarks/results/
(``--results-json``), which benchmarks/plots.py draws.

Nothing is benchmarked here: each command's summary is built from results made up in the
test, through the same code path as a real run (``--from-json`` where the command has one).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks import compare, ensemble, plots, reliability, restart
from benchmarks.loadgen import LoadSpec, Result
from benchmarks.results import ResultSet, load
from coord.testing import ChaosResult, Fault, FaultReport


def _run(scenario: str, requests: int, p50: float, p99: float) -> Result:
    spec = LoadSpec(scenario=scenario)
    if scenario in ("latency", "set-latency"):
        spec = LoadSpec(scenario=scenario, sessions=1, outstanding=1)
    latency = {"p50": p50, "p99": p99, "p999": p99, "max": p99, "mean": p50}
    return Result(spec, requests=requests, seconds=10.0, latency_ms=latency)


def _draws(result_set: ResultSet) -> None:
    """Every chart of the set renders."""
    for chart in result_set.charts:
        assert plots.recorded_digest(plots.render(result_set, chart))


def test_compare_from_json_writes_results(tmp_path: Path) -> None:
    """``compare --from-json ... --results-json`` summarizes every run: medians, ranges."""
    runs = [
        ("ZooKeeper", _run("set", 700_000, 40.0, 90.0)),
        ("ZooKeeper", _run("set", 800_000, 44.0, 95.0)),
        ("coord", _run("set", 1_200_000, 25.0, 60.0)),
        ("coord", _run("set", 1_300_000, 24.0, 64.0)),
        ("coord", _run("set", 1_100_000, 26.0, 70.0)),
        ("ZooKeeper", _run("set-latency", 3_000, 0.28, 0.5)),
        ("coord", _run("set-latency", 3_000, 0.29, 0.6)),
    ]
    machine = compare.Machine("cpu", 2, 23.5, "linux", "3.11", "0.23", "17", "3.8.0", "ext4")
    raw = {
        "command": "python -m benchmarks.compare --scenarios set set-latency",
        "machine": asdict(machine),
        "coord": "ok",
        "coord_storage": "rocksdb",
        "storage_note": "durable",
        "durable": True,
        "notes": ["coord source: abc1234"],
        "disk_probes_ms": [asdict(compare.DiskProbe("start", 0.12, 0.19, 0.12, 0.19))],
        "runs": [{"server": name, "rate": r.rate, **asdict(r)} for name, r in runs],
    }
    (tmp_path / "run.json").write_text(json.dumps(raw))
    out = tmp_path / "standalone.json"
    code = compare.main(
        ["--from-json", str(tmp_path / "run.json"), "--results-json", str(out)], io.StringIO()
    )
    assert code == 0
    result_set = load(out)
    set_data = result_set.measure("setData 100 B")
    assert (set_data.coord, set_data.zookeeper) == (120_000, 75_000)
    assert set_data.coord_range == (110_000, 130_000)
    assert set_data.zookeeper_range == (70_000, 80_000)
    assert result_set.measure("setData latency at 32x100, p50").coord == 25.0
    assert result_set.measure("setData 1x1 round trip, p99").zookeeper == 0.5
    assert [c.file for c in result_set.charts] == [
        "standalone-throughput.svg",
        "standalone-ratios.svg",
    ]
    assert "abc1234" in result_set.source
    _draws(result_set)


def test_ensemble_results(tmp_path: Path) -> None:
    coord = ensemble.Outcome("coord", {"set": _run("set", 336_080, 1, 2)}, [0.03, 0.04, 0.05])
    zk = ensemble.Outcome("zookeeper", {"set": _run("set", 172_200, 1, 2)}, [0.5, 0.51, 0.6])
    coord.results["set-latency"] = _run("set-latency", 100, 1.28, 2.74)
    zk.results["set-latency"] = _run("set-latency", 100, 0.54, 0.94)
    result_set = ensemble.result_set(coord, zk, "python -m benchmarks.ensemble", "today")
    result_set.write(tmp_path / "e.json")
    loaded = load(tmp_path / "e.json")
    assert loaded.measure("setData throughput").coord == pytest.approx(33_608)
    assert loaded.measure("setData latency p99, 1x1").zookeeper == 0.94
    failover = loaded.measure("leader fail-over (median of 3)")
    assert (failover.coord, failover.zookeeper_range) == (0.04, (0.5, 0.6))
    _draws(loaded)


def test_restart_results(tmp_path: Path) -> None:
    shape = restart.Shape.for_nodes(1000, 10, 10)

    def report(name: str, seconds: float, serve: list[float]) -> restart.ServerReport:
        fill = restart.Fill(nodes=1000, seconds=seconds, rss_mib=100.0, disk_mib=5.0)
        runs = [restart.Restart(serve_seconds=s, rss_serving_mib=120.0) for s in serve]
        runs.append(restart.Restart(error="did not come back"))  # left out of the medians
        return restart.ServerReport(name, fill=fill, restarts=runs)

    reports = [report("coord", 1.0, [3.0, 4.0, 5.0]), report("ZooKeeper", 2.0, [3.0, 3.5])]
    result_set = restart.result_set(reports, shape, "python -m benchmarks.restart", "today")
    result_set.write(tmp_path / "r.json")
    loaded = load(tmp_path / "r.json")
    assert loaded.measure("fill: 1,000 creates").coord == 1.0
    assert loaded.measure("fill rate").zookeeper == 500.0
    serve = loaded.measure("restart: time to serve the last node")
    assert (serve.coord, serve.coord_range, serve.zookeeper) == (4.0, (3.0, 5.0), 3.25)
    assert {c.file for c in loaded.charts} == {"restart-time.svg", "restart-memory.svg"}
    _draws(loaded)
    with pytest.raises(ValueError, match="both coord and ZooKeeper"):
        restart.result_set(reports[:1], shape, "c", "today")


def test_reliability_from_json_writes_results(tmp_path: Path) -> None:
    """``reliability --from-json zk.json coord.json --results-json`` keeps the longest
    outage per kind of fault, and the lost writes and violations in the notes."""

    def result(target: str, outages: list[float | None]) -> ChaosResult:
        faults = [
            FaultReport(fault, 1, float(i), float(i) + 1, outage)
            for i, (fault, outage) in enumerate(zip(list(Fault) * 2, outages))
        ]
        return ChaosResult(
            target, duration=10.0, counts=Counter({"cas ok": 3}), faults=faults,
            acknowledged_writes=100, checks={"linearizability": "ok"},
        )  # fmt: skip

    zk = result("zookeeper", [0.5, 0.01, 3.5, 2.4, 3.4, 0.56, 0.0, 2.4, 2.41, 3.45])
    coord = result("coord", [0.5, 0.0, 2.6, 0.8, 2.7, 0.72, 0.01, 2.5, 0.6, None])
    for name, r in (("zk", zk), ("coord", coord)):
        (tmp_path / f"{name}.json").write_text(json.dumps(reliability._to_json(r)))
    out = tmp_path / "rel.json"
    args = ["--from-json", str(tmp_path / "zk.json"), str(tmp_path / "coord.json")]
    assert reliability.main([*args, "--results-json", str(out)], io.StringIO()) == 0
    loaded = load(out)
    assert loaded.measure("kill leader").coord == 0.72
    assert loaded.measure("kill follower").zookeeper == 0.01
    assert loaded.measure("kill all").coord == 2.7  # the fault with no write is left out
    assert loaded.measure("acknowledged writes").coord == 100
    assert any("acknowledged writes lost 0, violations 0" in n for n in loaded.notes)
    _draws(loaded)

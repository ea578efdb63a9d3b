"""run_chaos against a 3-member Apache ZooKeeper ensemble, one fault per test, and against a
deliberately broken cluster (which must be caught).

Each fault test runs the workload for about ten seconds (warm-up, the fault held a few
seconds, a quiet period) and asserts ZooKeeper's guarantees: nothing acknowledged lost, no
violation of any check.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

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
    require_zookeeper,
    run_chaos,
)

pytestmark = pytest.mark.zookeeper

FAST = ChaosConfig(
    clients=4,
    registers=3,
    session_timeout=2.0,
    ephemeral_session_timeout=2.0,
    warmup=1.0,
    hold=3.0,
    quiet=2.0,
    op_timeout=10.0,
    final_timeout=30.0,
    seed=1,
)


@pytest.fixture(autouse=True)
def _quiet_kazoo() -> Iterator[None]:
    logger = logging.getLogger("kazoo")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture(scope="module")
def ensemble() -> Iterator[ZooKeeperEnsemble]:
    require_zookeeper()
    with ZooKeeperEnsemble(3) as zk:
        yield zk


def run(cluster: ZooKeeperEnsemble, config: ChaosConfig) -> ChaosResult:
    lines: list[str] = []
    result = run_chaos(cluster, config, target="zookeeper", progress=lines.append)
    print("\n".join(lines))
    print(result.summary())
    return result


@pytest.mark.parametrize("fault", list(Fault), ids=[f.name.lower() for f in Fault])
def test_run_chaos_ZooKeeper_loses_nothing_under(ensemble: ZooKeeperEnsemble, fault: Fault) -> None:
    """Under each fault, a 3-member ZooKeeper keeps every acknowledged write, stays
    linearizable, keeps its read guarantees, cleans ephemerals, converges, and delivers
    watches; writes resume after the fault."""
    config = replace(FAST, faults=(fault,))
    result = run(ensemble, config)
    assert result.ok, result.summary()
    assert result.acknowledged_writes_lost == 0
    assert result.violations == []
    assert set(result.checks) == {
        "linearizability",
        "convergence",
        "acknowledged writes",
        "reads",
        "ephemerals",
        "watches",
    }
    assert all(verdict == "ok" for verdict in result.checks.values())
    assert result.acknowledged_writes > 50
    assert result.counts["cas ok"] > 0 and result.counts["create ok"] > 0
    assert sum(n for k, n in result.counts.items() if k.startswith("ephemeral created")) > 0
    (report,) = result.faults
    assert report.fault is fault
    assert report.write_outage is not None and report.write_outage < 20
    assert result.linearizability is not None and result.linearizability.ok


class ForgetfulZooKeeper(ZooKeeperEnsemble):
    """A one-member "ensemble" whose crash rolls its data back by about a second: a store
    that acknowledged writes it had not made durable. The harness must notice."""

    def kill_all(self) -> None:
        data = self.directory / "member-1" / "data" / "version-2"
        saved = Path(tempfile.mkdtemp(prefix="forgetful-")) / "version-2"
        self.pause(0)
        try:
            shutil.copytree(data, saved)
        finally:
            self.resume(0)
        time.sleep(1.0)  # writes go on and are acknowledged, then forgotten
        super().kill_all()
        shutil.rmtree(data)
        shutil.copytree(saved, data)
        shutil.rmtree(saved.parent)


def test_run_chaos_catches_a_cluster_that_forgets_acknowledged_writes() -> None:
    """The checks are not vacuous: a rollback of acknowledged writes is reported as lost
    writes and as a linearizability violation (at the latest, the final state read after
    the run contradicts the acknowledged versions)."""
    require_zookeeper()
    config = replace(FAST, faults=(Fault.KILL_ALL,), op_timeout=3.0, quiet=1.0)
    with ForgetfulZooKeeper(1, proxied=False) as cluster:
        result = run(cluster, config)
    assert not result.ok
    assert result.acknowledged_writes_lost > 0
    kinds = {v.check for v in result.violations}
    assert "lost write" in kinds
    assert "linearizability" in kinds
    assert result.checks["linearizability"] != "ok"
    assert result.linearizability is not None and not result.linearizability.ok
    assert "not linearizable" in result.linearizability.explain()


def test_render_markdown_puts_targets_side_by_side() -> None:
    """One column per target; lost writes, violations, checks, outages and counts as rows."""
    zk = ChaosResult(
        "zookeeper",
        duration=40.0,
        counts=Counter({"cas ok": 10, "read ok": 5}),
        faults=[FaultReport(Fault.KILL_LEADER, 2, 2.0, 6.0, 0.45)],
        acknowledged_writes=10,
        checks={"linearizability": "ok"},
    )
    broken = ChaosResult(
        "coord",
        counts=Counter({"cas ok": 3}),
        faults=[FaultReport(Fault.KILL_LEADER, 0, 2.0, 6.0, None)],
        acknowledged_writes=3,
        acknowledged_writes_lost=1,
        violations=[Violation("lost write", "x")],
        checks={"linearizability": "1 violations"},
    )
    table = render_markdown([zk, broken])
    lines = table.splitlines()
    assert lines[0] == "|  | zookeeper | coord |"
    assert "| **acknowledged writes lost** | **0** | **1** |" in lines
    assert "| **violations** | **0** | **1** |" in lines
    assert "| check: linearizability | ok | 1 violations |" in lines
    assert "| longest write outage: kill leader | 0.45 s | no write |" in lines
    assert "| ops: read ok | 5 | 0 |" in lines
    assert zk.ok and not broken.ok


class OneBasedEnsemble:
    """A stand-in with coord's CoordEnsemble numbering (ids from 1, a members dict)."""

    def __init__(self) -> None:
        self.members = {1: "a", 2: "b", 3: "c"}
        self.connect_string = "h:1,h:2,h:3"
        self.calls: list[tuple[str, int | None]] = []
        self.current_leader: int | None = 3

    def member_address(self, ident: int) -> str:
        return f"h:{ident}"

    def leader(self) -> int | None:
        return self.current_leader

    def wait_for_leader(self) -> int:
        self.calls.append(("wait_for_leader", None))
        return 3

    def __getattr__(self, name: str) -> object:
        def record(ident: int | None = None) -> None:
            self.calls.append((name, ident))

        return record


def test_OneBasedCluster_shifts_member_numbers() -> None:
    """Index i of the harness is member id i + 1 of a one-based ensemble."""
    ensemble = OneBasedEnsemble()
    cluster = OneBasedCluster(ensemble)
    assert isinstance(cluster, Cluster)
    assert cluster.members == ["h:1", "h:2", "h:3"]
    assert cluster.member_address(0) == "h:1"
    assert cluster.connect_string == "h:1,h:2,h:3"
    assert cluster.leader() == 2
    ensemble.current_leader = None
    assert cluster.leader() is None
    cluster.kill(0)
    cluster.pause(1)
    cluster.resume(1)
    cluster.restart(2)
    cluster.partition(2)
    cluster.heal()
    cluster.kill_all()
    cluster.start_all()
    assert ensemble.calls == [
        ("kill", 1),
        ("pause", 2),
        ("resume", 2),
        ("restart", 3),
        ("partition", 3),
        ("heal", None),
        ("kill_all", None),
        ("start_all", None),
        ("wait_for_leader", None),
    ]

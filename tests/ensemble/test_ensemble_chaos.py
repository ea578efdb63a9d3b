"""run_chaos against a 3-member coord ensemble: one fault per test, the same workload and
checks as against Apache ZooKeeper (tests/testing/test_chaos.py).

Concurrent clients do compare-and-set on registers, sequential creates and ephemeral
sessions while a fault is held; afterwards the history must be linearizable, no
acknowledged write lost, reads monotonic, ephemerals of closed sessions gone, replicas
converged, watches delivered, and writes must have resumed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from ensemble_support import FAST

from coord.testing import (
    ChaosConfig,
    ChaosResult,
    CoordEnsemble,
    Fault,
    OneBasedCluster,
    run_chaos,
)

CHAOS = ChaosConfig(
    clients=4,
    registers=3,
    session_timeout=2.0,
    ephemeral_session_timeout=2.0,
    warmup=1.0,
    hold=3.0,
    quiet=2.0,
    op_timeout=10.0,
    final_timeout=30.0,
    seed=7,
)


@pytest.fixture(autouse=True)
def _quiet_kazoo() -> Iterator[None]:
    logger = logging.getLogger("kazoo")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture(scope="module")
def cluster() -> Iterator[OneBasedCluster]:
    with CoordEnsemble(3, config=FAST) as ensemble:
        yield OneBasedCluster(ensemble)


def _run(cluster: OneBasedCluster, config: ChaosConfig) -> ChaosResult:
    lines: list[str] = []
    result = run_chaos(cluster, config, target="coord", progress=lines.append)
    print("\n".join(lines))
    print(result.summary())
    if not result.ok:  # what the members said, for the record
        ensemble: CoordEnsemble = cluster.ensemble
        for ident, member in ensemble.members.items():
            tail = Path(member.log).read_text(errors="replace").splitlines()[-40:]
            print(f"--- member {ident} ({member.log}), last lines:", *tail, sep="\n")
    return result


@pytest.mark.parametrize("fault", list(Fault), ids=[f.name.lower() for f in Fault])
def test_coord_ensemble_loses_nothing_and_stays_linearizable_under(
    cluster: OneBasedCluster, fault: Fault
) -> None:
    result = _run(cluster, replace(CHAOS, faults=(fault,)))
    assert result.ok, result.summary()
    assert result.acknowledged_writes_lost == 0
    assert result.violations == []
    assert all(verdict == "ok" for verdict in result.checks.values()), result.checks
    assert len(result.checks) == 6
    assert result.acknowledged_writes > 50
    assert result.counts["cas ok"] > 0 and result.counts["create ok"] > 0
    (report,) = result.faults
    assert report.write_outage is not None and report.write_outage < 20
    assert result.linearizability is not None and result.linearizability.ok

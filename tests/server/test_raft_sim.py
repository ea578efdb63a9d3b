"""The seeded simulator over the real consensus core (coord.testing._raft_sim).

Each seed runs an ensemble under loss, delay, reordering, duplication, partitions,
crash/restart, log compaction with snapshot transfer, membership changes, leadership
transfers and ReadIndex reads, with the real state machine applying server-encoded
entries; it checks election safety, agreement of committed prefixes, identical trees,
durability of every committed entry, ReadIndex bounds, and liveness after healing. A
failure names its seed; replay it alone with ``COORD_RAFT_SEED=<seed>`` (or
``python -m coord.testing._raft_sim <seed> <voters>``). ``COORD_RAFT_SEEDS=<n>`` runs
``n`` seeds per ensemble size instead of the default (a nightly sweep).
"""

from __future__ import annotations

import os

import pytest

from coord.testing._raft_sim import run_seed

_ONE = os.environ.get("COORD_RAFT_SEED")
SEEDS = [int(_ONE)] if _ONE else range(int(os.environ.get("COORD_RAFT_SEEDS", "1000")))


@pytest.mark.parametrize("voters", [3, 5])
def test_RaftSimulation_invariants_hold_under_faults(voters: int) -> None:
    """Safety after every event and liveness after healing, for every seed; and the
    faults and features are really exercised across the seeds."""
    totals = {"reads": 0, "snapshots": 0, "conf_changes": 0, "transfers": 0}
    for seed in SEEDS:
        try:
            sim = run_seed(seed, voters)
        except BaseException:
            print(f"raft simulation failed: voters={voters} seed={seed} "
                  f"(replay: COORD_RAFT_SEED={seed} or "
                  f"python -m coord.testing._raft_sim {seed} {voters})")  # fmt: skip
            raise
        assert sim.committed, f"seed {seed}: nothing committed"
        totals["reads"] += sim.reads_done
        totals["snapshots"] += sim.snapshots_installed
        totals["conf_changes"] += sim.conf_changes
        totals["transfers"] += sim.transfers
    if not _ONE:
        assert all(totals.values()), totals

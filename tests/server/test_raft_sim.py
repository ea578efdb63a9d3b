"""The seeded simulator over the real consensus core (coord.testing._raft_sim).

Each seed runs an ensemble under loss, delay, reordering, duplication, partitions and
crash/restart, checking election safety, agreement of committed prefixes and applied
sequences, durability of every committed entry, and liveness after healing. A failure
names its seed; replay it alone with ``COORD_RAFT_SEED=<seed>``.
"""

from __future__ import annotations

import os

import pytest

from coord.testing._raft_sim import Simulation

SEEDS = [int(os.environ["COORD_RAFT_SEED"])] if os.environ.get("COORD_RAFT_SEED") else range(150)


@pytest.mark.parametrize("voters", [3, 5])
def test_RaftSimulation_invariants_hold_under_faults(voters: int) -> None:
    """Safety after every event and liveness after healing, for every seed."""
    for seed in SEEDS:
        sim = Simulation(seed, voters=voters, learners=1 if seed % 4 == 0 else 0)
        try:
            sim.run(fault_steps=2000, liveness_bound=3000)
        except BaseException:
            print(f"raft simulation failed: voters={voters} seed={seed} "
                  f"(replay: COORD_RAFT_SEED={seed})")  # fmt: skip
            raise
        assert sim.committed, f"seed {seed}: nothing committed"

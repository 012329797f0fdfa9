"""The seeded simulated cluster of runners: every invariant holds on every seed.

Each seed is a cluster of three runners (ownership cores, real Paxos nodes, a
fencing fake store) through crashes, restarts, hangs, pauses that fall
anywhere in a runner's loop, false suspicion and a lossy, duplicating,
reordering link; then it heals and must recover. HARUNNER_SEED=<seed> runs
just that seed; HARUNNER_SOAK=1 runs 20,000.
"""

from __future__ import annotations

import os

from cluster_scenarios import run, seeds
from cluster_sim import Params

CI_SEEDS = 1_000
SOAK_SEEDS = 20_000


def test_every_seed_keeps_every_invariant() -> None:
    count = SOAK_SEEDS if os.environ.get("HARUNNER_SOAK") else CI_SEEDS
    for seed in seeds(count):
        outcome = run(seed)
        assert outcome.violation is None, outcome.describe()


def test_the_woken_owner_never_takes_back_its_job() -> None:
    """The scenario of issue 12, on many seeds: the owner hangs past the timeout, wakes."""
    params = Params(faults=1, faults_for=1.0)
    for seed in seeds(100, base=50_000):
        outcome = run(seed, params, force="owner_hang")
        assert outcome.violation is None, outcome.describe()

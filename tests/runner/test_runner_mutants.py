"""Each deliberately broken ownership core must be caught by the invariant named for it.

A mutant that survives means the simulated cluster or its checker is too
weak to trust for the real core. The first counterexample is printed.
"""

from __future__ import annotations

import pytest
from cluster_mutants import MUTANTS
from cluster_scenarios import run

BUDGET = 300  # seeds; each mutant is caught within the first few today


@pytest.mark.parametrize("name", MUTANTS)
def test_mutant_is_caught(name: str) -> None:
    runner_class, invariant = MUTANTS[name]
    for seed in range(BUDGET):
        outcome = run(seed, runner_class=runner_class)
        if outcome.violation is not None:
            break
    else:
        pytest.fail(f"mutant {name} survived {BUDGET} seeds")
    assert outcome.violation.invariant == invariant, outcome.describe()
    print(f"\nmutant {name}: caught by '{invariant}'\n{outcome.describe()}")

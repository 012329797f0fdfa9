"""Each deliberately broken protocol variant must be caught by the explorer in the CI budget.

A mutant that survives means the explorer or the checker is too weak to
trust for the real protocol. The shortest counterexample found is printed.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from sim_explorer import Outcome, Setup, budget, explore, hunt, replay, shrink
from sim_mutants import MUTANTS

END_TO_END = frozenset({"chosen", "learned", "promises", "ballots"})


@pytest.mark.parametrize("name", MUTANTS)
def test_mutant_is_caught(name: str) -> None:
    setup = MUTANTS[name]
    examples, steps = budget(ci=(400, 300), soak=(5_000, 300))
    outcome, explored = hunt(setup, examples, steps)
    assert outcome is not None and outcome.violation is not None, (
        f"mutant {name} survived {explored} steps")
    shortest = min((shrink(found, setup) for found in more(outcome, setup, steps)), key=len)
    print(f"\nmutant {name}: caught by '{outcome.violation.invariant}' at seed {outcome.seed} "
          f"after {explored} steps; shortest counterexample {len(shortest)} actions\n"
          + Outcome(outcome.seed, shortest, replay(outcome.seed, shortest, setup)).describe())


def more(first: Outcome, setup: Setup, steps: int, wanted: int = 5) -> list[Outcome]:
    """`first` and up to `wanted - 1` more counterexamples from the seeds after it."""
    found = [first]
    for seed in range(first.seed + 1, first.seed + 200):
        if len(found) == wanted or os.environ.get("HARUNNER_SEED"):
            break
        if (outcome := explore(seed, steps, setup)).violation is not None:
            found.append(outcome)
    return found


@pytest.mark.skipif(os.environ.get("HARUNNER_SOAK") != "1", reason="soak only (HARUNNER_SOAK=1)")
def test_low_promise_mutant_breaks_agreement_itself() -> None:
    """Without the 'votes' invariant, random schedules still find two chosen values."""
    setup = replace(MUTANTS["accept-keeps-low-promise"], checks=END_TO_END)
    outcome, explored = hunt(setup, 20_000, 300)
    assert outcome is not None and outcome.violation is not None
    print(f"\nlow-promise mutant, end-to-end: '{outcome.violation.invariant}' at seed "
          f"{outcome.seed} after {explored} steps; shortest {len(shrink(outcome, setup))}")

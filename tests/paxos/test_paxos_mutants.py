"""Each deliberately broken protocol variant must be caught by the explorer in the CI budget.

A mutant that survives means the explorer or the checker is too weak to
trust for the real protocol. Each mutant must break one of the end-to-end
invariants (not only the acceptor's 'votes' invariant, which catches the
low-promise mutant much sooner). The shortest counterexample found among the
first few is printed; HARUNNER_SEED=<seed> explores just that seed.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from sim_explorer import Outcome, Setup, budget, explore, hunt, replay, shrink
from sim_mutants import MUTANTS

END_TO_END = frozenset({"chosen", "learned", "proposed", "promises", "ballots", "bounded"})


@pytest.mark.parametrize("name", MUTANTS)
def test_mutant_is_caught(name: str) -> None:
    """Caught by the end-to-end invariants alone (all but the acceptor's 'votes')."""
    setup = replace(MUTANTS[name], checks=END_TO_END)
    examples, steps = budget(ci=(5_000, 300), soak=(50_000, 300))
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


def test_the_votes_invariant_catches_the_low_promise_mutant_at_once() -> None:
    """The acceptor conjunct of the inductive invariant sees the bug before any harm."""
    outcome, explored = hunt(MUTANTS["accept-keeps-low-promise"], 200, 300)
    assert outcome is not None and outcome.violation is not None
    assert outcome.violation.invariant == "votes"
    print(f"\nlow-promise mutant, with the votes invariant: seed {outcome.seed} after "
          f"{explored} steps; shortest {len(shrink(outcome, MUTANTS['accept-keeps-low-promise']))}")

"""Safety of the Paxos core under adversarial schedules, checked after every step.

Two drivers over the same simulator and the same invariants (sim_checker.py):
the seeded explorer (many seeds, long schedules; HARUNNER_SEED=<seed> replays
one) and a Hypothesis rule-based state machine (derandomized, shrinks by
itself and prints its own reproduction on failure).
HARUNNER_SOAK=1 raises both budgets for soak runs.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sim import Simulator
from sim_explorer import KEYS, Outcome, Setup, budget, explore, hunt, replay, shrink

SOAK = os.environ.get("HARUNNER_SOAK") == "1"
SETUPS = {"3 voters": (Setup(), 2_000), "5 voters": (Setup(voters=(0, 1, 2, 3, 4)), 600),
          "3 voters and a forger": (Setup(forgery=True), 1_000)}


def report(outcome: Outcome, setup: Setup) -> str:
    """The violation with its shortest found schedule, ready to replay."""
    actions = shrink(outcome, setup)
    short = Outcome(outcome.seed, actions, replay(outcome.seed, actions, setup))
    return f"{short.describe()}\n(full schedule: {len(outcome.actions)} actions)"


@pytest.mark.parametrize("name", SETUPS)
def test_no_schedule_breaks_an_invariant(name: str) -> None:
    setup, examples = SETUPS[name]
    examples, steps = budget(ci=(examples, 300), soak=(examples * 10, 1_000))
    outcome, explored = hunt(setup, examples, steps, base=1_000_000)
    print(f"\nsafety[{name}]: {explored} steps explored, "
          f"{0 if outcome is None else 1} anomalies")
    assert outcome is None, report(outcome, setup)


def test_a_seed_replays_exactly() -> None:
    first, second = explore(7, 300), explore(7, 300)
    assert first.actions == second.actions and first.violation is None
    assert replay(7, first.actions) is None


class ClusterMachine(RuleBasedStateMachine):
    """The simulated cluster driven by Hypothesis rules; invariants after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.sim = Simulator(seed=0)

    slots = st.sampled_from((0, 1, 2))

    @rule(slot=slots, keys=st.lists(st.sampled_from(KEYS), min_size=1, unique=True))
    def propose(self, slot: int, keys: list[tuple[str, int]]) -> None:
        self.sim.propose(slot, keys)

    @precondition(lambda self: self.sim.net)
    @rule(index=st.integers(0, 10_000), copies=st.integers(0, 2))
    def deliver(self, index: int, copies: int) -> None:
        """Deliver a message (0 copies: drop it; 2: duplicate it first)."""
        envelope = self.sim.net[index % len(self.sim.net)]
        if copies == 2:
            self.sim.duplicate(envelope)
        (self.sim.deliver if copies else self.sim.drop)(envelope)

    @rule(slot=slots, seconds=st.floats(0, 1.0))
    def tick(self, slot: int, seconds: float) -> None:
        self.sim.now += seconds
        self.sim.tick(slot)

    @rule(slot=slots)
    def crash(self, slot: int) -> None:
        self.sim.crash(slot)

    @rule(slot=slots)
    def restart(self, slot: int) -> None:
        self.sim.restart(slot)

    @rule(slot=slots, files=st.sampled_from(("acceptor", "proposer", "both")))
    def wipe_and_repair(self, slot: int, files: str) -> None:
        self.sim.wipe(slot, files)
        self.sim.repair(slot)

    @rule(slot=slots, key=st.sampled_from(KEYS))
    def forget(self, slot: int, key: tuple[str, int]) -> None:
        self.sim.forget(slot, key[0], key[1] + 1)

    @invariant()
    def invariants_hold(self) -> None:
        self.sim.checker.check()


ClusterMachine.TestCase.settings = settings(
    max_examples=2_000 if SOAK else 200, stateful_step_count=100 if SOAK else 60,
    derandomize=True, database=None, deadline=None,
    suppress_health_check=list(HealthCheck))
TestClusterMachine = ClusterMachine.TestCase

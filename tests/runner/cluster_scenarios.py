"""Seeded fault schedules for the simulated cluster of runners, and one run per seed.

`run(seed)` builds a cluster, draws `params.faults` faults at random times
from the seed (crash and restart with a new incarnation, a hang past the hang
timeout, a short pause, a stop that falls between a runner's reads, a
one-way beat blackout that makes a peer falsely suspected) and runs it with
every invariant checked after each step; then the cluster heals (stops end,
crashed runners restart, the link stops losing messages but still
duplicates and reorders) and `recovered` is checked.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field, replace

from cluster_checker import Violation
from cluster_sim import Params, SimRunner, Simulator

SEED_ENV = "HARUNNER_SEED"
KINDS = ("crash", "restart", "hang", "pause", "mid_stop", "blackout", "owner_hang")


@dataclass
class Outcome:
    seed: int
    faults: list[str] = field(default_factory=list)
    violation: Violation | None = None

    def describe(self) -> str:
        return (f"seed {self.seed} ({SEED_ENV}={self.seed} replays it): {self.violation}\n  "
                + "\n  ".join(self.faults))


def plan(sim: Simulator, rng: random.Random, faults: list[str], force: str | None = None,
         ) -> None:
    """Schedule the seed's faults within the fault phase (all of kind `force` if given)."""
    params = sim.params
    hang = params.hang
    when = 0.3
    for _ in range(params.faults):
        when += rng.uniform(0.05, params.faults_for / params.faults)
        kind, slot = force or rng.choice(KINDS), rng.randrange(params.slots)
        if kind == "owner_hang":  # the stop of the bug: the owner of a job, past the hang
            slot = sim.store.records["job-0"].owner.slot  # type: ignore[union-attr]
        seconds = {"crash": rng.uniform(0.05, 1.0), "restart": 0.02,
                   "hang": rng.uniform(1.1, 3.0) * hang, "owner_hang": rng.uniform(1.1, 3.0) * hang,
                   "pause": rng.uniform(0.05, 1.0) * hang,
                   "mid_stop": rng.uniform(0.3, 3.0) * hang,
                   "blackout": rng.uniform(1.2, 2.5) * hang}[kind]
        other = (slot + rng.randrange(1, params.slots)) % params.slots
        faults.append(f"t={when:.3f} {kind} slot {slot} {seconds:.3f}s"
                      + (f" to slot {other}" if kind == "blackout" else ""))
        sim.at(when, _fault(sim, kind, slot, other, seconds))


def _fault(sim: Simulator, kind: str, slot: int, other: int, seconds: float):  # type: ignore[no-untyped-def]
    runner = sim.runners[slot]

    def fault() -> None:
        if kind in ("crash", "restart"):
            sim.crash(slot, seconds)
        elif kind in ("hang", "pause", "owner_hang"):
            if runner.up and not runner.stopped():
                runner.stop(seconds)
        elif kind == "mid_stop":
            runner.mid_stop = seconds
        elif kind == "blackout":
            sim.blackout(slot, other, seconds)
    return fault


def run(seed: int, params: Params | None = None, runner_class: type[SimRunner] = SimRunner,
        force: str | None = None) -> Outcome:
    """One seeded run: faults, then healing; the first violation is returned."""
    params = params or Params()
    outcome = Outcome(seed)
    sim = Simulator(seed, params, runner_class)
    plan(sim, random.Random(f"plan/{seed}"), outcome.faults, force)
    try:
        sim.run_until(params.faults_for + 3 * params.hang)
        for runner in sim.runners:
            runner.mid_stop = 0.0
            if not runner.up:
                runner.start()
        sim.params = replace(params, loss=0.0)
        sim.run_until(sim.now + params.heal_for)
        sim.checker.check_recovered()
    except Violation as violation:
        outcome.violation = violation
    return outcome


def seeds(count: int, base: int = 0) -> list[int]:
    """Just HARUNNER_SEED if it is set, else `count` seeds from `base`."""
    if os.environ.get(SEED_ENV):
        return [int(os.environ[SEED_ENV])]
    return list(range(base, base + count))

"""A seeded explorer of the simulated cluster: random adversarial schedules, checked.

`explore(seed, steps)` draws `steps` actions from `random.Random(seed)` and
runs them, checking every invariant after each. Actions are plain tuples
that name messages by content, so a trace replays exactly (`replay`) and can
be shortened (`shrink`) to a minimal counterexample.

    ("propose", slot, keys)        ("tick", slot, seconds)
    ("deliver", envelope-id)       ("drop", envelope-id)     ("duplicate", envelope-id)
    ("crash", slot)                ("restart", slot)
    ("forget", slot, job, below)   ("wipe", slot, files)            ("repair", slot)
    ("flush", slot)                finish a pending write (mutant shells only)
    ("forge", slot, message)       a forger's frame, straight to `slot` (Setup.forgery)

Envelope ids are (source, target, message): the first such envelope in flight.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sim import Envelope, Shell, Simulator
from sim_checker import INVARIANTS, Violation
from sim_forger import forgery

KEYS = (("a", 1), ("a", 2), ("b", 1))
Action = tuple[Any, ...]
SEED_ENV = "HARUNNER_SEED"
SOAK_ENV = "HARUNNER_SOAK"


@dataclass
class Outcome:
    """The end of one exploration: the actions run and the violation, if any."""

    seed: int
    actions: list[Action] = field(default_factory=list)
    violation: Violation | None = None

    def describe(self) -> str:
        lines = [f"seed {self.seed} ({SEED_ENV}={self.seed} replays it): {self.violation}"]
        lines += [f"  {i:3d} {format_action(a)}" for i, a in enumerate(self.actions)]
        return "\n".join(lines)


@dataclass(frozen=True)
class Setup:
    """What to explore: the shell (possibly a mutant) and the weights of the actions."""

    shell_class: type[Shell] = Shell
    voters: tuple[int, ...] = (0, 1, 2)
    faults: bool = True
    repairs: bool = True
    forgery: bool = False
    checks: frozenset[str] = frozenset(INVARIANTS)


def format_action(action: Action) -> str:
    if action[0] in ("deliver", "drop", "duplicate"):
        source, target, message = action[1]
        return f"{action[0]} {source}->{target} {message}"
    return " ".join(map(str, action))


def explore(seed: int, steps: int, setup: Setup = Setup()) -> Outcome:
    """Run `steps` random actions from `seed`; stop at the first violation."""
    rng = random.Random(seed)
    sim = Simulator(seed, setup.voters, shell_class=setup.shell_class, checks=setup.checks)
    outcome = Outcome(seed)
    for _ in range(steps):
        action = choose(rng, sim, setup)
        outcome.actions.append(action)
        try:
            run(sim, action)
            sim.checker.check()
        except Violation as violation:
            outcome.violation = violation
            break
    return outcome


def replay(seed: int, actions: Sequence[Action], setup: Setup = Setup()) -> Violation | None:
    """Run `actions` on a fresh cluster; the violation they lead to, if any."""
    sim = Simulator(seed, setup.voters, shell_class=setup.shell_class, checks=setup.checks)
    try:
        for action in actions:
            run(sim, action)
            sim.checker.check()
    except Violation as violation:
        return violation
    return None


def shrink(outcome: Outcome, setup: Setup = Setup()) -> list[Action]:
    """A shorter list of actions that still violates an invariant (delta debugging)."""
    actions = list(outcome.actions)
    chunk = max(1, len(actions) // 2)
    while chunk >= 1:
        start, changed = 0, False
        while start < len(actions):
            candidate = actions[:start] + actions[start + chunk:]
            if replay(outcome.seed, candidate, setup) is not None:
                actions, changed = candidate, True
            else:
                start += chunk
        if not changed:
            chunk //= 2
    return actions


def run(sim: Simulator, action: Action) -> None:
    """Carry out one action (a no-op if it no longer applies)."""
    kind, args = action[0], action[1:]
    if kind in ("deliver", "drop", "duplicate"):
        envelope = find(sim, args[0])
        if envelope is not None:
            getattr(sim, kind)(envelope)
    elif kind == "tick":
        sim.now += args[1]
        sim.tick(args[0])
    elif kind == "flush":
        sim.shells[args[0]].flush()
    elif kind == "forge":
        sim.forge(args[0], args[1])
    else:
        getattr(sim, kind)(*args)


def find(sim: Simulator, ident: tuple[int, int, Any]) -> Envelope | None:
    for envelope in sim.net:
        if (envelope.source, envelope.target, envelope.message) == ident:
            return envelope
    return None


def choose(rng: random.Random, sim: Simulator, setup: Setup) -> Action:
    """One random action that makes sense in the current state."""
    makers, weights = ((_FORGING_MAKERS, _FORGING_WEIGHTS) if setup.forgery
                       else (_MAKERS, _WEIGHTS))
    while True:
        maker = rng.choices(makers, weights=weights)[0]
        action = maker(rng, sim, setup)
        if action is not None:
            return action


def _message(kind: str) -> Callable[[random.Random, Simulator, Setup], Action | None]:
    def make(rng: random.Random, sim: Simulator, setup: Setup) -> Action | None:
        if not sim.net or (kind != "deliver" and not setup.faults):
            return None
        envelope = rng.choice(sim.net)
        return (kind, (envelope.source, envelope.target, envelope.message))
    return make


def _propose(rng: random.Random, sim: Simulator, setup: Setup) -> Action | None:
    keys = tuple(k for k in KEYS if rng.random() < 0.6) or (rng.choice(KEYS),)
    return ("propose", rng.choice(sim.voters), keys)


def _tick(rng: random.Random, sim: Simulator, setup: Setup) -> Action | None:
    return ("tick", rng.choice(sim.voters), round(rng.uniform(0, 4 * sim.timeout), 3))


def _crash(rng: random.Random, sim: Simulator, setup: Setup) -> Action | None:
    up = [s for s, shell in sim.shells.items() if shell.up]
    return ("crash", rng.choice(up)) if up and setup.faults else None


def _restart(rng: random.Random, sim: Simulator, setup: Setup) -> Action | None:
    down = [s for s, shell in sim.shells.items() if not shell.up]
    return ("restart", rng.choice(down)) if down else None


def _forget(rng: random.Random, sim: Simulator, setup: Setup) -> Action | None:
    job, generation = rng.choice(KEYS)
    return ("forget", rng.choice(sim.voters), job, generation + rng.randint(0, 1))


def _wipe(rng: random.Random, sim: Simulator, setup: Setup) -> Action | None:
    down = [s for s, shell in sim.shells.items() if not shell.up]
    files = rng.choice(("acceptor", "proposer", "both"))
    return ("wipe", rng.choice(down), files) if down and setup.repairs else None


def _repair(rng: random.Random, sim: Simulator, setup: Setup) -> Action | None:
    wiped = [s for s, shell in sim.shells.items() if not shell.up and
             not (shell.disk.acceptor.usable and shell.disk.proposer.usable)]
    return ("repair", rng.choice(wiped)) if wiped else None


def _flush(rng: random.Random, sim: Simulator, setup: Setup) -> Action | None:
    return ("flush", rng.choice(sim.voters))


def _forge(rng: random.Random, sim: Simulator, setup: Setup) -> Action | None:
    if not setup.forgery:
        return None
    target = rng.choice(sim.voters)
    return ("forge", target, forgery(rng, sim, target, KEYS))


_MAKERS = (_message("deliver"), _message("drop"), _message("duplicate"), _propose, _tick,
           _crash, _restart, _forget, _wipe, _repair, _flush)
_WEIGHTS = (60, 4, 3, 6, 8, 3, 5, 1, 1, 3, 4)
_FORGING_MAKERS = (*_MAKERS, _forge)
_FORGING_WEIGHTS = (*_WEIGHTS, 8)


def budget(ci: tuple[int, int], soak: tuple[int, int]) -> tuple[int, int]:
    """(examples, steps): the CI budget, or the soak budget if HARUNNER_SOAK=1."""
    return soak if os.environ.get(SOAK_ENV) == "1" else ci


def seeds(count: int, base: int) -> list[int]:
    """The seeds to explore: just HARUNNER_SEED if set, else `count` seeds from `base`."""
    if os.environ.get(SEED_ENV):
        return [int(os.environ[SEED_ENV])]
    return [base + i for i in range(count)]


def hunt(setup: Setup, count: int, steps: int, base: int = 0) -> tuple[Outcome | None, int]:
    """Explore seeds until one violates an invariant; (that outcome or None, steps run)."""
    explored = 0
    for seed in seeds(count, base):
        outcome = explore(seed, steps, setup)
        explored += len(outcome.actions)
        if outcome.violation is not None:
            return outcome, explored
    return None, explored

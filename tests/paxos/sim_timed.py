"""Timed runs of the simulated cluster: a stormy phase of faults, then a healed network.

Every message gets a delivery time when it is sent; in the storm a message
may be dropped, duplicated or held back (which also reorders), and nodes
crash and restart at random; a node that restarts proposes again, as a
runner does. At `heal` the network turns calm (no loss, delay 1..5 ms) and
every node is up. A run ends when every instance is decided and no proposer
is still busy. Everything is drawn from one seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from sim import Simulator

from harunner.paxos import InstanceKey, Prepare


@dataclass(frozen=True)
class Weather:
    drop: float
    duplicate: float
    delay: tuple[float, float]
    crash_rate: float  # crashes per node per simulated second


STORM = Weather(drop=0.3, duplicate=0.1, delay=(0.0, 0.05), crash_rate=2.0)
CALM = Weather(drop=0.0, duplicate=0.0, delay=(0.001, 0.005), crash_rate=0.0)
ROUND_TRIP = 2 * CALM.delay[1]


@dataclass
class Result:
    """How a run went; times are simulated seconds."""

    seed: int
    done_at: float | None = None
    heal_at: float = 0.0
    rounds_after_heal: int = 0
    messages: int = 0
    hops: int = 0
    ballots: set[tuple[int, object]] = field(default_factory=set)

    @property
    def round_trips_after_heal(self) -> float:
        return math.inf if self.done_at is None else (self.done_at - self.heal_at) / ROUND_TRIP


class TimedCluster:
    """A Simulator driven by a clock: deliveries, ticks, crashes and restarts as events."""

    def __init__(self, seed: int, keys: list[InstanceKey], voters: tuple[int, ...] = (0, 1, 2),
                 tick: float = 0.01, checks: frozenset[str] | None = None) -> None:
        self.sim = (Simulator(seed, voters) if checks is None
                    else Simulator(seed, voters, checks=checks))
        self.rng = random.Random(f"timed/{seed}")
        self.keys = keys
        self.tick_every = tick
        self.weather = STORM
        self.stamped = 0
        self.result = Result(seed)
        self.next_tick = {slot: self.rng.uniform(0, tick) for slot in voters}
        self.restart_at: dict[int, float] = {}
        self.next_crash = self._draw_crash()

    def start(self, proposers: tuple[int, ...]) -> None:
        """The given slots all propose every instance at once (the worst case)."""
        for slot in proposers:
            self.sim.propose(slot, self.keys)
        self._stamp()

    def run(self, heal_at: float, give_up_at: float) -> Result:
        """Storm until `heal_at`, then calm until done or `give_up_at`."""
        self._until(heal_at)
        self.weather, self.result.heal_at = CALM, self.sim.now
        for slot in list(self.restart_at):
            self._restart(slot)
        prepares_before = len(self.result.ballots)
        self._until(give_up_at, stop_when_done=True)
        self.result.rounds_after_heal = len(self.result.ballots) - prepares_before
        return self.result

    def done(self) -> bool:
        return self.sim.idle() and all(self.sim.decided(key) is not None for key in self.keys)

    def _until(self, end: float, stop_when_done: bool = False) -> None:
        while self.sim.now < end:
            if stop_when_done and self.done():
                self.result.done_at = self.sim.now
                return
            self._step(end)
            self.sim.checker.check()

    def _step(self, end: float) -> None:
        envelope = min(self.sim.net, key=lambda e: (e.due, e.ident), default=None)
        slot, tick_at = min(self.next_tick.items(), key=lambda item: item[1])
        restart = min(self.restart_at.items(), key=lambda item: item[1], default=None)
        when = min(envelope.due if envelope else end, tick_at, self.next_crash,
                   restart[1] if restart else end, end)
        self.sim.now = max(self.sim.now, when)
        if envelope is not None and envelope.due == when:
            self.result.messages += 1
            self.result.hops = max(self.result.hops, envelope.depth)
            self.sim.deliver(envelope)
        elif restart is not None and restart[1] == when:
            self._restart(restart[0])
        elif when == self.next_crash:
            self._crash()
        elif when == tick_at:
            self.next_tick[slot] += self.tick_every
            self.sim.tick(slot)
        self._stamp()

    def _crash(self) -> None:
        slot = self.rng.choice(self.sim.voters)
        if self.sim.shells[slot].up:
            self.sim.crash(slot)
            self.restart_at[slot] = self.sim.now + self.rng.uniform(0.02, 0.3)
        self.next_crash = self._draw_crash()

    def _restart(self, slot: int) -> None:
        del self.restart_at[slot]
        self.sim.restart(slot)
        self.sim.propose(slot, self.keys)

    def _draw_crash(self) -> float:
        rate = self.weather.crash_rate * len(self.sim.voters)
        return self.sim.now + self.rng.expovariate(rate) if rate else math.inf

    def _stamp(self) -> None:
        """Give each newly sent message its fate under the current weather."""
        fresh = [e for e in self.sim.net if e.ident > self.stamped]
        self.stamped = self.sim.sent
        for envelope in fresh:
            if isinstance(envelope.message, Prepare):
                self.result.ballots.add((envelope.source, envelope.message.ballot))
            if self.rng.random() < self.weather.drop:
                self.sim.net.remove(envelope)
                continue
            envelope.due = self.sim.now + self.rng.uniform(*self.weather.delay)
            if self.rng.random() < self.weather.duplicate:
                self.sim.duplicate(envelope)
                self.sim.net[-1].due = self.sim.now + self.rng.uniform(*self.weather.delay)
                self.stamped = self.sim.sent

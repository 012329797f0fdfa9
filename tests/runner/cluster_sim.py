"""A seeded simulated cluster of runners: ownership cores, real Paxos nodes, a fake store.

One seed drives everything. Each `SimRunner` is a small shell like
`harunner.runner.runner.Runner`: it feeds its `OwnershipCore` (or a mutant
of it) beats, notices, records, decisions and `now`, and carries out the
actions, with a real `harunner.paxos.Node` (persist, then send) and a
`FakeStore` that fences like the real one (a takeover must raise the
generation). Time is a fake clock; events sit in one heap.

The link carries Paxos messages, bus hints (beats, exit notices, owner
changes) and change-feed entries (records as the store wrote them, so that
records reach a core by several paths in any order: the periodic scan, a
read after a hint, the feed); each copy may be lost, duplicated and delayed
(so reordered).
Faults: crash (the supervisor's exit notice goes out on the lossy bus) and
restart with a new incarnation; a stop (SIGSTOP: a short pause or a hang past
the hang timeout) that may fall anywhere in a runner's loop, between its
reads included; after a stop, what was queued for the runner arrives late;
a one-way beat blackout (false suspicion).

A runner's turn is a generator: every `yield` is a point where a stop may
fall, and the rest of the turn then runs when the runner wakes.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from cluster_checker import Checker
from cluster_store import Busy, Changed, FakeStore, Refused

from harunner.net.bus import Beat, ExitNotice, OwnerChange
from harunner.paxos import AcceptorState, Effects, Message, Node, ProposerState
from harunner.runner import actions as act
from harunner.runner.ownership import OwnershipCore, Timing
from harunner.store.model import SCHEDULER_JOB, JobState, Owner

Turn = Generator[float | None, None, None]


@dataclass(frozen=True)
class Params:
    """The cluster's timing (seconds) and the link's faults."""

    slots: int = 3
    jobs: int = 4
    heartbeat: float = 0.04
    suspect: float = 0.12
    hang: float = 0.3
    paxos: float = 0.1
    wait: float = 0.04
    reconcile: float = 0.1
    loss: float = 0.1
    duplicate: float = 0.05
    delay: float = 0.02
    feed_delay: float = 0.3  # a slow change-feed reader: records arrive late and out of order
    wake_lag: float = 0.04
    busy: float = 0.1
    faults_for: float = 2.0
    heal_for: float = 1.5
    faults: int = 3

    def timing(self) -> Timing:
        return Timing(self.suspect, self.hang, self.paxos)


@dataclass
class Disk:
    acceptor: AcceptorState = field(default_factory=AcceptorState)
    proposer: ProposerState = field(default_factory=ProposerState)


class SimRunner:
    """One runner slot: the shell around a core and a Paxos node."""

    core_class: type[OwnershipCore] = OwnershipCore

    def __init__(self, sim: Simulator, slot: int) -> None:
        self.sim = sim
        self.slot = slot
        self.disk = Disk()
        self.incarnation = 0
        self.up = False
        self.stopped_until = 0.0
        self.stop_started = -1.0
        self.stops: list[tuple[float, float]] = []  # every (start, end) of a stop
        self.mid_stop = 0.0  # a stop to fall at the next yield of a turn
        self.woke = False
        self.inbox: list[tuple[float, int, Any]] = []
        self.workers: dict[str, int] = {}
        self.primary = 0

    @property
    def me(self) -> Owner:
        return Owner(self.slot, self.incarnation)

    @property
    def pid(self) -> int:
        return 1000 * self.slot + self.incarnation

    def start(self) -> None:
        """A new incarnation from the disk: fresh core, fresh workers."""
        sim = self.sim
        self.incarnation += 1
        self.started = sim.now
        self.up = True
        self.rng = random.Random(f"{sim.seed}/{self.slot}/{self.incarnation}")
        self.core = self.core_class(self.me, sim.params.timing(), sim.now)
        self.node = Node(self.slot, sim.slots, self.disk.acceptor, self.disk.proposer,
                         timeout=sim.params.paxos)
        self.inbox, self.workers, self.primary = [], {}, 0
        self.next_beat = self.next_reconcile = sim.now
        sim.schedule(sim.now, self, self.turn())

    def crash(self) -> None:
        self.up = False
        self.workers = {}
        self.inbox = []
        self.stopped_until = 0.0

    def stop(self, seconds: float) -> None:
        """SIGSTOP for `seconds` from now."""
        now = self.sim.now
        self.stop_started = now
        self.stopped_until = max(self.stopped_until, now + seconds)
        self.stops.append((now, self.stopped_until))
        self.woke = True

    def stopped(self) -> bool:
        return self.stopped_until > self.sim.now

    # -- the loop --------------------------------------------------------------------------

    def turn(self) -> Turn:
        """The runner's loop, as the real shell runs it: one turn after another."""
        while True:
            yield from self.one_turn()

    def one_turn(self) -> Turn:
        """One turn of the runner's loop, as the real shell runs it."""
        params, sim = self.sim.params, self.sim
        self.feed(self.core.tick(sim.now))
        if sim.now >= self.next_beat:
            self.next_beat = sim.now + params.heartbeat
            beat = Beat(self.slot, self.incarnation, self.pid, "primary" if self.primary
                        else "standby", 0, len(self.workers))
            sim.broadcast(self.slot, beat)
        yield params.wait  # the wait: a stop in it is the bug of issue 12
        for message in self.due():
            self.handle(message)
            yield
        self.feed(self.core.listened(sim.now))
        self.fenced_exits()
        self.feed(self.core.tick(sim.now))
        self.paxos(self.node.tick(sim.now, self.rng))
        if self.rescan or sim.now >= self.next_reconcile:
            self.next_reconcile = sim.now + params.reconcile
            self.rescan = False
            records = [r for r in sim.store.running()]
            records += [sim.store.records[j] for j in self.workers
                        if sim.store.records[j].state is not JobState.RUNNING]
            workers = dict(self.workers)
            yield  # a stop between the read and its use: a stale snapshot
            self.feed(self.core.reconcile(records, sim.now, workers))

    rescan = False

    def due(self) -> list[Any]:
        """The messages that have arrived by now, in arrival order."""
        now = self.sim.now
        ready = sorted(m for m in self.inbox if m[0] <= now)
        self.inbox = [m for m in self.inbox if m[0] > now]
        return [m[2] for m in ready]

    def on_wake(self) -> None:
        """What was queued during the stop is delivered late (the I/O thread lags)."""
        now, lag = self.sim.now, self.sim.params.wake_lag
        self.inbox = [(max(due, now + self.rng.uniform(0, lag)), n, m)
                      for due, n, m in self.inbox]

    def handle(self, message: Any) -> None:
        now = self.sim.now
        if isinstance(message, Beat):
            self.feed(self.core.heard(message, now))
        elif isinstance(message, ExitNotice):
            self.feed(self.core.exit_notice(message.slot, message.pid, now))
        elif isinstance(message, OwnerChange):
            self.feed(self.core.owner_changed(message, now))
        elif isinstance(message, Changed):
            self.feed(self.core.observe([message.record], now))
        else:
            self.paxos(self.node.receive(message, now, self.rng))

    def fenced_exits(self) -> None:
        """A worker below the store's generation is fenced on its next write and exits."""
        for job_id, generation in list(self.workers.items()):
            if (self.sim.store.records[job_id].generation > generation
                    and self.rng.random() < 0.2):
                del self.workers[job_id]
                self.core.worker_ended(job_id, generation)

    # -- Paxos: persist, then send ---------------------------------------------------------

    def paxos(self, effects: Effects) -> None:
        queue, decided = [effects], {}
        while queue:
            step = queue.pop(0)
            if step.acceptor_state is not None:
                self.disk.acceptor = step.acceptor_state
            if step.proposer_state is not None:
                self.disk.proposer = step.proposer_state
            self.sim.checker.on_decided(step.decided)
            decided.update(step.decided)
            for target, message in step.send:
                if target == self.slot:
                    queue.append(self.node.receive(message, self.sim.now, self.rng))
                else:
                    self.sim.send(self.slot, target, message)
        if decided:
            self.feed(self.core.decided(decided, self.sim.now))

    # -- actions ---------------------------------------------------------------------------

    def feed(self, actions: list[act.Action]) -> None:
        for action in actions:
            self.carry(action)

    def carry(self, action: act.Action) -> None:
        sim, now = self.sim, self.sim.now
        match action:
            case act.Propose(values):
                sim.checker.on_propose(self, values)
                self.paxos(self.node.propose(values, now, self.rng))
            case act.TakeOver(job_id, generation):
                try:
                    record = sim.store.take_over(job_id, generation, self.me)
                except Busy:
                    self.core.take_over_failed(job_id, generation, busy=True)
                    return
                except Refused:
                    self.core.take_over_failed(job_id, generation, busy=False)
                    return
                self.feed(self.core.took_over(record, now))
            case act.Start(record):
                sim.checker.on_start(self, record)
                self.workers[record.job_id] = record.generation
            case act.Kill(job_id, _):
                self.workers.pop(job_id, None)
            case act.Announce(record):
                assert record.owner is not None
                sim.broadcast(self.slot, OwnerChange(record.job_id, record.generation,
                                                     record.owner.slot, record.owner.incarnation))
            case act.Read(job_id):
                self.feed(self.core.observe([sim.store.records[job_id]], now))
            case act.BecomePrimary(generation):
                self.primary = generation
            case act.LosePrimary():
                self.primary = 0
            case act.Detected() | act.Paused():
                self.rescan = True
            case act.ClaimScheduler():
                pass  # the scheduler record exists from the start


class Simulator:
    """Runners, a store, a link and a clock, all driven by one seed."""

    def __init__(self, seed: int, params: Params | None = None,
                 runner_class: type[SimRunner] = SimRunner) -> None:
        self.seed = seed
        self.params = params = params or Params()
        self.rng = random.Random(seed)
        self.now = 0.0
        self.slots = tuple(range(params.slots))
        self.heap: list[tuple[float, int, SimRunner | None, int, Any]] = []
        self.count = 0
        self.blackouts: dict[tuple[int, int], list[tuple[float, float]]] = {}
        self.checker = Checker(self)
        self.store = FakeStore(self)
        self.runners = [runner_class(self, slot) for slot in self.slots]
        jobs = [SCHEDULER_JOB] + [f"job-{n}" for n in range(params.jobs)]
        for n, job_id in enumerate(jobs):
            self.store.create(job_id, Owner(n % params.slots, 1))
        for runner in self.runners:
            runner.start()

    # -- events ----------------------------------------------------------------------------

    def schedule(self, when: float, runner: SimRunner | None, work: Any) -> None:
        """Run `work` at `when`: a callable, or a turn of `runner`'s current incarnation."""
        self.count += 1
        life = runner.incarnation if runner is not None else 0
        heapq.heappush(self.heap, (when, self.count, runner, life, work))

    def run_until(self, end: float) -> None:
        while self.heap and self.heap[0][0] <= end:
            when, _, runner, life, work = heapq.heappop(self.heap)
            self.now = max(self.now, when)
            if runner is None:
                work()
            elif runner.up and runner.incarnation == life:
                self.step(runner, work)
            self.checker.after_step(runner)
        self.now = end

    def step(self, runner: SimRunner, turn: Turn) -> None:
        """Run a runner's turn up to its wait, its end, or a stop falling inside it."""
        if runner.stopped():
            self.schedule(runner.stopped_until, runner, turn)
            return
        if runner.woke:
            runner.woke = False
            runner.on_wake()
        while True:
            try:
                wait = next(turn)
            except StopIteration:
                return
            if not runner.up:
                return
            if wait:
                self.schedule(self.now + wait, runner, turn)
                return
            if runner.mid_stop:
                runner.stop(runner.mid_stop)
                runner.mid_stop = 0.0
                self.schedule(runner.stopped_until, runner, turn)
                return

    # -- the link --------------------------------------------------------------------------

    def send(self, source: int, target: int, message: Message | Beat | ExitNotice
             | OwnerChange | Changed) -> None:
        """One copy may be lost, duplicated, delayed; a beat may be blacked out."""
        params, rng = self.params, self.rng
        receiver = self.runners[target]
        if not receiver.up or rng.random() < params.loss:
            return
        if isinstance(message, Beat) and self.blacked_out(source, target, self.now):
            return
        copies = 2 if rng.random() < params.duplicate else 1
        spread = params.feed_delay if isinstance(message, Changed) else params.delay
        for _ in range(copies):
            self.count += 1
            receiver.inbox.append((self.now + rng.uniform(0, spread), self.count, message))

    def broadcast(self, source: int, message: Beat | ExitNotice | OwnerChange) -> None:
        for target in self.slots:
            if target != source:
                self.send(source, target, message)

    def blacked_out(self, source: int, target: int, when: float) -> bool:
        return any(a <= when < b for a, b in self.blackouts.get((source, target), ()))

    def blackout(self, source: int, target: int, seconds: float) -> None:
        self.blackouts.setdefault((source, target), []).append((self.now, self.now + seconds))

    # -- faults ----------------------------------------------------------------------------

    def crash(self, slot: int, restart_after: float) -> None:
        runner = self.runners[slot]
        if not runner.up:
            return
        pid = runner.pid
        runner.crash()
        self.broadcast(slot, ExitNotice(slot, pid, -9))
        self.schedule(self.now + restart_after, None, lambda: self.restart(slot))

    def restart(self, slot: int) -> None:
        if not self.runners[slot].up:
            self.runners[slot].start()

    def at(self, when: float, work: Callable[[], None]) -> None:
        self.schedule(when, None, work)

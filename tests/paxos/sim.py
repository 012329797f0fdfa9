"""A deterministic simulated cluster for the Paxos core.

One seed drives everything. The network is a pool of in-flight envelopes;
the driver (the safety explorer or the timed liveness loop) chooses which
envelope to deliver, drop or duplicate and when, so messages can be lost,
duplicated, reordered and delayed at will. A `Shell` around each `Node` plays
the runner: it persists the node's durable state on its simulated disk and
only then sends; `crash` loses everything volatile, `restart` reloads the
disk, `wipe` loses the disk and `repair` rebuilds it as `storage.repair` does.

Mutants that live in the shell (reply before persisting, a round not
reloaded) are subclasses of `Shell` in sim_mutants.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sim_checker import INVARIANTS, Checker

from harunner.paxos import AcceptorState, Effects, InstanceKey, Message, Node, ProposerState
from harunner.paxos.acceptor import highest_round, repaired, unusable
from harunner.paxos.ballot import Value, majority


@dataclass
class Envelope:
    """A message in flight; `depth` counts hops since the proposal that caused it."""

    source: int
    target: int
    message: Message
    due: float = 0.0
    depth: int = 1
    ident: int = 0


@dataclass
class Disk:
    """What survives a crash."""

    acceptor: AcceptorState = field(default_factory=AcceptorState)
    proposer: ProposerState = field(default_factory=ProposerState)


class Shell:
    """The runner around one Node: persist, then send."""

    node_class: type[Node] = Node

    def __init__(self, sim: Simulator, slot: int) -> None:
        self.sim = sim
        self.slot = slot
        self.disk = Disk()
        self.life = 0
        self.node: Node | None = None
        self.rng = random.Random(f"{sim.seed}/{slot}")
        self.start()

    @property
    def up(self) -> bool:
        return self.node is not None

    def start(self) -> None:
        """Start a new incarnation from the disk."""
        self.life += 1
        self.node = self.node_class(self.slot, self.sim.voters, self.disk.acceptor,
                                    self.disk.proposer, self.sim.timeout)
        self.sim.checker.on_start(self)

    def crash(self) -> None:
        self.node = None

    def value(self) -> Value:
        """What this incarnation proposes: itself."""
        return Value(self.slot, self.life)

    def apply(self, effects: Effects, depth: int) -> None:
        """Persist the new durable state, then send: the order the contract demands."""
        self.persist(effects)
        self.send(effects, depth)

    def persist(self, effects: Effects) -> None:
        if effects.acceptor_state is not None:
            self.disk.acceptor = effects.acceptor_state
        if effects.proposer_state is not None:
            self.disk.proposer = effects.proposer_state

    def send(self, effects: Effects, depth: int) -> None:
        self.sim.checker.on_effects(self, effects)
        for target, message in effects.send:
            self.sim.post(self.slot, target, message, depth + 1)

    def flush(self) -> None:
        """Finish any write still pending (nothing is ever pending here)."""


class Simulator:
    """Nodes, a network and a clock, all driven by one seed."""

    def __init__(self, seed: int, voters: Iterable[int] = (0, 1, 2), timeout: float = 0.2,
                 shell_class: type[Shell] = Shell,
                 checks: frozenset[str] = frozenset(INVARIANTS)) -> None:
        self.seed = seed
        self.voters = tuple(voters)
        self.timeout = timeout
        self.now = 0.0
        self.net: list[Envelope] = []
        self.sent = 0
        self.checker = Checker(self, checks)
        self.shells = {slot: shell_class(self, slot) for slot in self.voters}

    def post(self, source: int, target: int, message: Message, depth: int,
             due: float | None = None) -> None:
        """Put a message in flight."""
        self.sent += 1
        self.net.append(Envelope(source, target, message, self.now if due is None else due,
                                 depth, self.sent))

    def call(self, slot: int, action: Callable[[Node, random.Random], Effects],
             depth: int = 0) -> None:
        """Run `action` on a live node and carry out its effects."""
        shell = self.shells[slot]
        shell.flush()
        if shell.node is None:
            return
        shell.apply(action(shell.node, shell.rng), depth)

    def propose(self, slot: int, keys: Iterable[InstanceKey]) -> None:
        shell = self.shells[slot]
        values = {key: shell.value() for key in keys}
        self.call(slot, lambda node, rng: node.propose(values, self.now, rng))

    def tick(self, slot: int) -> None:
        self.call(slot, lambda node, rng: node.tick(self.now, rng))

    def forget(self, slot: int, job_id: str, below: int) -> None:
        self.call(slot, lambda node, rng: node.forget(job_id, below))

    def deliver(self, envelope: Envelope) -> None:
        """Deliver `envelope` (removed from the network); lost if its target is down."""
        self.net.remove(envelope)
        message = envelope.message
        self.call(envelope.target, lambda node, rng: node.receive(message, self.now, rng),
                  envelope.depth)

    def forge(self, target: int, message: Message) -> None:
        """Hand `target` a message no slot sent (a forger's frame that the codec accepted)."""
        self.call(target, lambda node, rng: node.receive(message, self.now, rng))

    def duplicate(self, envelope: Envelope) -> None:
        self.post(envelope.source, envelope.target, envelope.message, envelope.depth,
                  envelope.due)

    def drop(self, envelope: Envelope) -> None:
        self.net.remove(envelope)

    def crash(self, slot: int) -> None:
        self.shells[slot].crash()

    def restart(self, slot: int) -> None:
        if not self.shells[slot].up:
            self.shells[slot].start()

    def wipe(self, slot: int, files: str = "both") -> None:
        """Lose a stopped slot's acceptor file, proposer file or both."""
        shell = self.shells[slot]
        shell.crash()
        if files in ("acceptor", "both"):
            shell.disk.acceptor = unusable("wiped")
        if files in ("proposer", "both"):
            shell.disk.proposer = ProposerState(usable=False, reason="wiped")

    def repair(self, slot: int) -> bool:
        """Rebuild a stopped slot's lost files from the others' disks, as storage.repair does."""
        shell = self.shells[slot]
        peers = [s.disk.acceptor for s in self.shells.values()
                 if s.slot != slot and s.disk.acceptor.usable]
        if shell.up or len(peers) < majority(len(self.voters)):
            return False
        if not shell.disk.proposer.usable:
            top = highest_round([*peers, shell.disk.acceptor])
            shell.disk.proposer = ProposerState(round=top)
        rounds = [s.disk.proposer for s in self.shells.values()]
        if not shell.disk.acceptor.usable and all(r.usable for r in rounds):
            shell.disk.acceptor = repaired(peers, [r.round for r in rounds])
        self.checker.on_repair(shell)
        return True

    def decided(self, key: InstanceKey) -> Value | None:
        """The value any live learner knows for `key`."""
        for shell in self.shells.values():
            if shell.node is not None and (value := shell.node.decided(key)) is not None:
                return value
        return None

    def idle(self) -> bool:
        """True when no live proposer is still driving an instance."""
        return all(shell.node is None or not shell.node.pending()
                   for shell in self.shells.values())

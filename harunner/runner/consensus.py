"""The Paxos shell of a runner: durable state, frames in and out, decisions.

It wraps the pure `harunner.paxos.Node` and does its I/O. The one rule it
exists to keep is in `apply`: new acceptor and proposer state is persisted
(fsync) before any message of the same step leaves the process, so a
restarted slot never forgets a promise or a vote it gave.

It also counts, for `harunner.metrics`, the instances it proposed that were
decided (each once: every slot learns every decision, only the proposer
counts it) and its ballots refused for a higher promise (each ballot once).
The set of instances it proposed is bounded by those in flight.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable, Mapping

from harunner import metrics
from harunner.errors import FrameError
from harunner.paxos import Effects, InstanceKey, Node, Value, codec
from harunner.paxos.ballot import Ballot
from harunner.paxos.messages import Nack, NackReason
from harunner.store import paxos_files
from harunner.store.layout import Layout

log = logging.getLogger("harunner.consensus")

Send = Callable[[int, bytes], bool]


class Consensus:
    """One slot's Paxos node with its files and its peer link."""

    def __init__(self, slot: int, slots: tuple[int, ...], layout: Layout, cluster: str,
                 send: Send, timeout: float) -> None:
        self.slot = slot
        self.cluster = cluster
        self.send = send
        paxos_files.initialize(layout, slot)
        self.acceptor_path = layout.acceptor_file(slot)
        self.proposer_path = layout.proposer_file(slot)
        acceptor = paxos_files.load_acceptor(self.acceptor_path)
        if not acceptor.usable:
            log.error("slot %d does not vote: %s", slot, acceptor.reason)
        proposer = paxos_files.load_proposer(self.proposer_path)
        self.node = Node(slot, slots, acceptor, proposer, timeout=timeout)
        self.rejected = 0
        self.proposed: set[InstanceKey] = set()  # in flight here, for counting decisions
        self.lost: Ballot | None = None  # the last ballot of ours counted as lost

    def propose(self, values: Mapping[InstanceKey, Value], now: float,
                rng: random.Random) -> dict[InstanceKey, Value]:
        self.proposed.update(values)
        return self.apply(self.node.propose(values, now, rng), now, rng)

    def receive(self, frame: bytes, now: float, rng: random.Random) -> dict[InstanceKey, Value]:
        """Feed one frame from a peer; malformed or foreign frames are counted and dropped.

        The node checks the decoded message against its protocol state before
        it changes any (harunner.paxos.node): a frame from a slot that is not
        configured, or one that answers no ballot in flight, changes nothing.
        """
        try:
            message = codec.decode(frame, self.cluster)
        except FrameError as error:
            self.rejected += 1
            log.debug("dropped a peer frame: %s", error)
            return {}
        if (isinstance(message, Nack) and message.reason is NackReason.PROMISED
                and message.ballot.slot == self.slot and message.ballot != self.lost):
            self.lost = message.ballot
            metrics.ballot_lost()
        return self.apply(self.node.receive(message, now, rng), now, rng)

    def tick(self, now: float, rng: random.Random) -> dict[InstanceKey, Value]:
        return self.apply(self.node.tick(now, rng), now, rng)

    def compact(self, below: Mapping[str, int], now: float, rng: random.Random) -> None:
        """Close each job's instances below its generation in `below` for good (persisted
        once, whatever the number of jobs)."""
        if below:
            self.apply(self.node.forget_many(below), now, rng)

    def instances(self) -> set[str]:
        """The job ids this slot's acceptor still keeps votes for."""
        return {job_id for job_id, _ in self.node.acceptor_state.votes}

    def apply(self, effects: Effects, now: float, rng: random.Random) -> dict[InstanceKey, Value]:
        """Carry out `effects` (and those of messages to self); return the new decisions."""
        decided: dict[InstanceKey, Value] = {}
        queue = deque([effects])
        while queue:
            step = queue.popleft()
            # Persist, then send. A Promise or Accepted that left before its state was
            # durable could be forgotten by a crash, and two values could be chosen.
            if step.acceptor_state is not None:
                paxos_files.save_acceptor(self.acceptor_path, step.acceptor_state)
            if step.proposer_state is not None:
                paxos_files.save_proposer(self.proposer_path, step.proposer_state)
            for destination, message in step.send:
                if destination == self.slot:
                    queue.append(self.node.receive(message, now, rng))
                else:
                    self.send(destination, codec.encode(message, self.cluster))
            decided.update(step.decided)
            self.proposed.difference_update(step.abandoned)
        mine = self.proposed.intersection(decided)
        if mine:
            self.proposed.difference_update(mine)
            metrics.paxos_decided(len(mine))
        self.proposed.intersection_update(self.node.pending())
        return decided

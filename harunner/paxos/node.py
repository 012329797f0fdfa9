"""One runner slot's Paxos: proposer, acceptor and learner behind one facade.

`Node` is sans-IO: every call takes the message (or the proposal) with `now`
and a seeded `random.Random`, and returns `Effects`: the durable state to
persist and the messages to send. The shell (runner or simulator) does the
I/O, in this order and no other:

    1. persist `effects.acceptor_state` and `effects.proposer_state` (fsync);
    2. only then send `effects.send` (messages to this slot included: the
       shell delivers them back through `receive`).

Every message is checked against the protocol state before it changes any:
it must come from a voting slot; a Prepare or Accept must carry a ballot of
its own sender; a Promise or Nack must answer a ballot of this node's proposer
still in flight (proposer.py); an Accepted counts only toward a majority for
one ballot and one value (learner.py). The acceptor sends its Accepted to
every voting slot, so every slot learns a decision from the same evidence as
its proposer: there is no "decided" message to believe or forge. A node whose
acceptor state is unusable still proposes and learns, but answers every
Prepare/Accept with Nack(UNUSABLE).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harunner.paxos.acceptor import Acceptor, AcceptorState
from harunner.paxos.ballot import InstanceKey, Value
from harunner.paxos.learner import Learner
from harunner.paxos.messages import (
    Accept,
    Accepted,
    Message,
    Nack,
    Prepare,
    Promise,
)
from harunner.paxos.proposer import Proposer, ProposerState


@dataclass(frozen=True)
class Effects:
    """What a Node call asks the shell to do.

    CONTRACT: persist `acceptor_state` and `proposer_state` (those not None)
    durably BEFORE sending any message of `send`. `decided` holds the
    decisions this call learned (for `propose`, also those already known for
    the requested keys); `abandoned` the instances given up because a
    majority of acceptors reported them closed (compacted).
    """

    acceptor_state: AcceptorState | None = None
    proposer_state: ProposerState | None = None
    send: tuple[tuple[int, Message], ...] = ()
    decided: Mapping[InstanceKey, Value] = field(default_factory=dict)
    abandoned: tuple[InstanceKey, ...] = ()


NOTHING = Effects()


class Node:
    """A slot's proposer + acceptor + learner. `slots` are all voting slots."""

    acceptor_class: type[Acceptor] = Acceptor
    proposer_class: type[Proposer] = Proposer

    def __init__(self, slot: int, slots: tuple[int, ...], acceptor: AcceptorState,
                 proposer: ProposerState, timeout: float = 0.2) -> None:
        if len(set(slots)) != len(slots) or not slots:
            raise ValueError(f"slots must be distinct and non-empty, got {slots!r}")
        self.slot = slot
        self.slots = tuple(slots)
        self.acceptor = self.acceptor_class(slot, acceptor)
        self.proposer = self.proposer_class(slot, self.slots, proposer, timeout)
        self.learner = Learner(self.slots)
        self._handlers: dict[type, Callable[[Any, float, random.Random], Effects]] = {
            Prepare: self._on_prepare, Accept: self._on_accept, Promise: self._on_promise,
            Accepted: self._on_accepted, Nack: self._on_nack,
        }

    @property
    def acceptor_state(self) -> AcceptorState:
        return self.acceptor.state

    @property
    def proposer_state(self) -> ProposerState:
        return self.proposer.state

    @property
    def can_propose(self) -> bool:
        """False when the proposer's durable round was lost (repair the slot)."""
        return self.proposer.state.usable

    def propose(self, values: Mapping[InstanceKey, Value], now: float,
                rng: random.Random) -> Effects:
        """Start (batched) proposals; already decided keys are reported in `decided`."""
        known = {key: v for key in values if (v := self.learner.decided(key)) is not None}
        wanted = {key: value for key, value in values.items() if key not in known}
        state, sends = self.proposer.propose(wanted, now, rng)
        return Effects(proposer_state=state, send=tuple(sends), decided=known)

    def receive(self, message: Message, now: float, rng: random.Random) -> Effects:
        """Handle one message from another slot (or from this one); foreign ones change nothing."""
        handler = self._handlers.get(type(message))
        if handler is None or message.sender not in self.slots:
            return NOTHING
        return handler(message, now, rng)

    def tick(self, now: float, rng: random.Random) -> Effects:
        """Retry, at higher ballots, the proposals whose time ran out."""
        state, sends = self.proposer.tick(now, rng)
        return Effects(proposer_state=state, send=tuple(sends))

    def decided(self, key: InstanceKey) -> Value | None:
        """The decided value of `key` if this node knows it."""
        return self.learner.decided(key)

    def pending(self) -> tuple[InstanceKey, ...]:
        """The instances this node's proposer is still driving."""
        return tuple(self.proposer.attempts)

    def forget(self, job_id: str, below_generation: int) -> Effects:
        """Compact `job_id` below `below_generation`: closed for good (persist the state)."""
        return self.forget_many({job_id: below_generation})

    def forget_many(self, below: Mapping[str, int]) -> Effects:
        """`forget` of every (job, generation) of `below`, with one state to persist."""
        for job_id, generation in below.items():
            self.learner.forget(job_id, generation)
        self.proposer.drop([key for key in self.proposer.attempts
                            if key[1] < below.get(key[0], 0)])
        return Effects(acceptor_state=self.acceptor.forget_many(below))

    def _on_prepare(self, message: Prepare, now: float, rng: random.Random) -> Effects:
        if message.ballot.slot != message.sender:
            return NOTHING
        state, replies = self.acceptor.on_prepare(message)
        return Effects(acceptor_state=state, send=tuple((message.sender, r) for r in replies))

    def _on_accept(self, message: Accept, now: float, rng: random.Random) -> Effects:
        if message.ballot.slot != message.sender:
            return NOTHING
        state, replies = self.acceptor.on_accept(message)
        sends: list[tuple[int, Message]] = [
            (slot, reply) for reply in replies if isinstance(reply, Accepted)
            for slot in self.slots]
        sends += [(message.sender, reply) for reply in replies if not isinstance(reply, Accepted)]
        return Effects(acceptor_state=state, send=tuple(sends))

    def _on_promise(self, message: Promise, now: float, rng: random.Random) -> Effects:
        return Effects(send=tuple(self.proposer.on_promise(message)))

    def _on_accepted(self, message: Accepted, now: float, rng: random.Random) -> Effects:
        decided = self.learner.on_accepted(message)
        self.proposer.drop(decided)
        return Effects(decided=decided)

    def _on_nack(self, message: Nack, now: float, rng: random.Random) -> Effects:
        return Effects(abandoned=tuple(self.proposer.on_nack(message, now, rng)))

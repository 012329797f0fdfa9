"""A forger for the simulated cluster: frames no slot sent, as the codec would accept them.

What it may do is what a program that can reach the peer sockets can do
without impersonating a correct participant (which no protocol can tell from
the participant itself without authentication; docs/paxos.md, "Forged
frames"): it answers ballots that are in flight with Nacks that claim huge
promises, sends Prepares and Accepts at rounds far above any in use, speaks
for slots that are not configured, sends replies to ballots that nobody
asked about, and lone Accepts (with no Prepare) at ballots no slot used.
Every message the forger makes is within the codec's bounds.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from harunner.paxos import Accept, Accepted, Ballot, Message, Nack, NackReason, Prepare, Promise
from harunner.paxos.ballot import InstanceKey, Value
from harunner.paxos.messages import Report
from harunner.paxos.schema import MAX_ROUND, ROUND_STEP

if TYPE_CHECKING:
    from sim import Simulator

STRANGERS = (7, 1023)


def forgery(rng: random.Random, sim: Simulator, target: int,
            keys: tuple[InstanceKey, ...]) -> Message:
    """One forged message for `target`."""
    kind = rng.randrange(7)
    key = rng.choice(keys)
    if kind == 0:
        return _nack_in_flight(rng, sim, target, key)
    if kind == 6:
        return _lone_accept(sim, key)
    if kind in (1, 2):
        sender = rng.choice(sim.voters)
        ballot = Ballot(_huge(rng, sim), sender)
        if kind == 1:
            return Prepare(sender, ballot, (key,))
        return Accept(sender, ballot, ((key, _value(rng)),))
    stranger = rng.choice(STRANGERS)
    ballot = Ballot(rng.randint(1, 5), rng.choice((target, stranger)))
    if kind == 3:
        return Promise(stranger, ballot, (Report(key, Ballot(0, 0), None),))
    if kind == 4:
        return Accepted(stranger, ballot, ((key, _value(rng)),))
    return rng.choice([Prepare(stranger, Ballot(ballot.round, stranger), (key,)),
                       Accept(stranger, Ballot(ballot.round, stranger), ((key, _value(rng)),)),
                       Prepare(rng.choice(sim.voters), Ballot(ballot.round, stranger), (key,))])


def _nack_in_flight(rng: random.Random, sim: Simulator, target: int,
                    key: InstanceKey) -> Message:
    """A Nack for a ballot `target` has in flight (if any), claiming a huge promise."""
    node = sim.shells[target].node
    attempts = {} if node is None else node.proposer.attempts
    if attempts:
        key = rng.choice(sorted(attempts))
        ballot = attempts[key].ballot
    else:
        ballot = Ballot(rng.randint(1, 5), target)
    promised = Ballot(_huge(rng, sim), rng.choice(sim.voters))
    sender = rng.choice((*sim.voters, STRANGERS[0]))
    return Nack(sender, ballot, (key,), promised, NackReason.PROMISED)


def _lone_accept(sim: Simulator, key: InstanceKey) -> Message:
    """An Accept at a ballot no slot used, with a made-up value: the same one for every
    target until the rounds move on, so that a majority of acceptors may get it."""
    sender = sim.voters[-1]
    return Accept(sender, Ballot(sim.checker.top + 7, sender), ((key, Value(9, 1)),))


def _huge(rng: random.Random, sim: Simulator) -> int:
    """A round far above any in use, up to the codec's limit."""
    return rng.choice([MAX_ROUND, MAX_ROUND - 1, 2**53, sim.checker.top + 2 * ROUND_STEP,
                       rng.randint(ROUND_STEP * 2, MAX_ROUND)])


def _value(rng: random.Random) -> Value:
    return Value(rng.choice((0, 1, 2, 9)), rng.randint(1, 5))

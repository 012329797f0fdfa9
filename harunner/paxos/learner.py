"""The learner role: decides, from evidence only, which instances are decided.

Evidence is the one thing Paxos itself counts: `Accepted` for one instance,
at one ballot, with one value, from a majority of the voting slots (every
acceptor sends its Accepted to every voting slot). A bare claim that an
instance is decided is never learned: the protocol has no such message.

Invariants kept here:

- a tally counts each voting slot once, and only Accepted whose sender and
  ballot proposer are voting slots;
- two Accepted at one ballot that name different values never add up (one
  ballot carries one value; a contradiction is counted, not learned);
- the tallies are bounded (`MAX_TALLIES`, oldest dropped first), so frames
  for made-up instances cannot grow memory: a dropped tally only delays
  learning until the next proposal.

Decisions are volatile here: the runner also writes them into the job's
record in the store, and an instance that is forgotten by the learner is
re-learned by proposing again (Paxos then returns the value already chosen).
"""

from __future__ import annotations

from collections.abc import Mapping

from harunner.paxos.ballot import Ballot, InstanceKey, Value, majority
from harunner.paxos.messages import Accepted

MAX_TALLIES = 65_536
"""Most instances with Accepted counted but not yet decided."""
MAX_BALLOTS = 8
"""Most ballots counted per such instance."""

Tally = tuple[Value, set[int]]


class Learner:
    """Decided instances, learned from a majority of Accepted at one ballot."""

    def __init__(self, slots: tuple[int, ...]) -> None:
        self.slots = frozenset(slots)
        self.quorum = majority(len(slots))
        self.decisions: dict[InstanceKey, Value] = {}
        self.tallies: dict[InstanceKey, dict[Ballot, Tally]] = {}
        self.conflicts = 0

    def on_accepted(self, message: Accepted) -> dict[InstanceKey, Value]:
        """Count `message`; return the instances it completed a majority for (newly decided)."""
        if message.sender not in self.slots or message.ballot.slot not in self.slots:
            return {}
        complete: dict[InstanceKey, Value] = {}
        for key, value in message.proposals:
            if key not in self.decisions and self._count(key, message.ballot, value,
                                                         message.sender):
                complete[key] = value
        return self.learn(complete)

    def learn(self, decisions: Mapping[InstanceKey, Value]) -> dict[InstanceKey, Value]:
        """Record decisions already proven; return the ones that were new."""
        new: dict[InstanceKey, Value] = {}
        for key, value in decisions.items():
            known = self.decisions.get(key)
            if known is None:
                self.decisions[key] = new[key] = value
                self.tallies.pop(key, None)
            elif known != value:
                self.conflicts += 1
        return new

    def decided(self, key: InstanceKey) -> Value | None:
        """The decided value of `key`, or None if not (yet) known here."""
        return self.decisions.get(key)

    def forget(self, job_id: str, below_generation: int) -> None:
        """Drop the decisions and tallies of `job_id` below `below_generation`."""
        for table in (self.decisions, self.tallies):
            for key in [k for k in table if k[0] == job_id and k[1] < below_generation]:
                del table[key]

    def _count(self, key: InstanceKey, ballot: Ballot, value: Value, sender: int) -> bool:
        """Add one vote to the tally of (key, ballot); True once it is a majority."""
        ballots = self.tallies.get(key)
        if ballots is None:
            if len(self.tallies) >= MAX_TALLIES:
                del self.tallies[next(iter(self.tallies))]
            ballots = self.tallies[key] = {}
        tally = ballots.get(ballot)
        if tally is None:
            if len(ballots) >= MAX_BALLOTS:
                del ballots[min(ballots)]
            tally = ballots[ballot] = (value, set())
        if tally[0] != value:
            self.conflicts += 1
            return False
        tally[1].add(sender)
        return len(tally[1]) >= self.quorum

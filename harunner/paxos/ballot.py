"""Ballots, values and instance keys: the ordered identities Paxos compares.

A `Ballot` is `(round, slot)`: rounds are compared first and the proposer's
slot breaks ties, so two proposers never share a ballot. Real ballots have
`round >= 1`; `NO_BALLOT` (round 0) means "nothing promised or accepted yet"
and sorts below every real ballot.
"""

from __future__ import annotations

from dataclasses import dataclass

InstanceKey = tuple[str, int]
"""One Paxos instance: `(job_id, generation)`."""


@dataclass(frozen=True, order=True)
class Ballot:
    """A proposal number: `round` first, then the proposer's `slot`."""

    round: int
    slot: int


@dataclass(frozen=True, order=True)
class Value:
    """The value decided by an instance: the new owner `(slot, incarnation)`."""

    slot: int
    incarnation: int


NO_BALLOT = Ballot(0, 0)


def majority(voters: int) -> int:
    """The smallest number of voters that is more than half of `voters`."""
    return voters // 2 + 1

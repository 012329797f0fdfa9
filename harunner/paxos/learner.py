"""The learner role: remembers which instances are decided, and to what.

Decisions come from this slot's own proposer (a majority accepted) or from a
Decided message of another proposer. Decisions are volatile here: the runner
also writes them into the job's record in the store, and an instance that is
forgotten by the learner is re-learned by proposing again (Paxos then returns
the value already chosen).
"""

from __future__ import annotations

from collections.abc import Mapping

from harunner.paxos.ballot import InstanceKey, Value


class Learner:
    """A map of decided instances, with a count of contradicting reports."""

    def __init__(self) -> None:
        self.decisions: dict[InstanceKey, Value] = {}
        self.conflicts = 0

    def learn(self, decisions: Mapping[InstanceKey, Value]) -> dict[InstanceKey, Value]:
        """Record `decisions`; return the ones that were new."""
        new: dict[InstanceKey, Value] = {}
        for key, value in decisions.items():
            known = self.decisions.get(key)
            if known is None:
                self.decisions[key] = new[key] = value
            elif known != value:
                self.conflicts += 1
        return new

    def decided(self, key: InstanceKey) -> Value | None:
        """The decided value of `key`, or None if not (yet) known here."""
        return self.decisions.get(key)

    def forget(self, job_id: str, below_generation: int) -> None:
        """Drop the decisions of `job_id` below `below_generation`."""
        for key in [k for k in self.decisions if k[0] == job_id and k[1] < below_generation]:
            del self.decisions[key]

"""The acceptor role and its durable state.

`AcceptorState` is an immutable snapshot: one `Vote` (promise and accepted
proposal) per open instance, a per-job `floors` low-water mark below which
instances are closed (compacted: never voted on again), `min_round`, a
round below which nothing is voted on (set by `repaired`), and `top_round`,
the highest round it ever promised or accepted, kept through compaction
(the base of the `ROUND_STEP` window, so that compacting votes away and
restarting never narrows it below the rounds honest proposers use).

Invariants kept here:

- a promise never goes down, and an accept raises the promise to its ballot;
- a proposal is accepted only at the very ballot this acceptor last promised
  in that instance (`_unpromised`): a lone or replayed Accept, whose Prepare
  this acceptor never promised, is ignored. That is stricter than Paxos
  needs (an acceptor may always refuse), and costs no decision: phase 2
  starts only after a majority promised that ballot, and those accept it;
- a closed instance (`generation < floors[job]`) gets no vote, ever;
- an unusable state (file missing or corrupt) votes on nothing and says why;
- no ballot more than `ROUND_STEP` above the highest round in the state is
  promised or accepted (refused as `promised`), and no floor above
  `MAX_FLOOR` is kept: a forged frame can raise this state's rounds by
  `ROUND_STEP` at most, and never past the bounds its loader checks.

CONTRACT (as in python-composable-paxos): the new state returned with a
Promise or Accepted MUST be made durable (fsync) by the shell BEFORE that
message leaves the process. Otherwise a crash lets this acceptor forget a
promise it already gave, and two values can be chosen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from harunner.paxos.ballot import NO_BALLOT, Ballot, InstanceKey, Value
from harunner.paxos.messages import (
    Accept,
    Accepted,
    Message,
    Nack,
    NackReason,
    Prepare,
    Promise,
    Report,
)
from harunner.paxos.schema import MAX_FLOOR, ROUND_STEP


@dataclass(frozen=True)
class Vote:
    """An acceptor's durable state in one instance."""

    promised: Ballot = NO_BALLOT
    accepted: Ballot = NO_BALLOT
    value: Value | None = None


EMPTY_VOTE = Vote()


@dataclass(frozen=True, eq=True)
class AcceptorState:
    """A snapshot of an acceptor's durable state; never mutated."""

    votes: Mapping[InstanceKey, Vote] = field(default_factory=dict)
    floors: Mapping[str, int] = field(default_factory=dict)
    min_round: int = 0
    top_round: int = 0
    usable: bool = True
    reason: str = ""

    def is_closed(self, key: InstanceKey) -> bool:
        """True if `key` was compacted away and must never be voted on again."""
        return key[1] < self.floors.get(key[0], 0)

    def vote(self, key: InstanceKey) -> Vote:
        """The vote in `key` (an empty one if none yet)."""
        return self.votes.get(key, EMPTY_VOTE)

    def promised(self, key: InstanceKey) -> Ballot:
        """The lowest ballot this acceptor may still vote for in `key`."""
        return max(self.vote(key).promised, Ballot(self.min_round, 0))


def unusable(reason: str) -> AcceptorState:
    """The state of an acceptor that must not vote until repaired."""
    return AcceptorState(usable=False, reason=reason)


class Acceptor:
    """Answers Prepare and Accept; every answer comes with the state to persist first.

    Persist the returned state durably BEFORE sending the returned messages.
    """

    def __init__(self, slot: int, state: AcceptorState) -> None:
        self.slot = slot
        self.state = state
        self.top = max(highest_round([state]), state.top_round if state.usable else 0)

    def on_prepare(self, message: Prepare) -> tuple[AcceptorState | None, list[Message]]:
        """Promise `message.ballot` in every instance where that does not break a promise."""
        if not self.state.usable:
            return None, [self._unusable(message.ballot, message.keys)]
        votes = dict(self.state.votes)
        reports: list[Report] = []
        refusals = _Refusals(self.slot, message.ballot)
        for key in message.keys:
            if self._refused(key, message.ballot, refusals):
                continue
            vote = votes.get(key, EMPTY_VOTE)
            reports.append(Report(key, vote.accepted, vote.value))
            votes[key] = self._promise(vote, message.ballot)
        replies: list[Message] = []
        if reports:
            replies.append(Promise(self.slot, message.ballot, tuple(reports)))
        return self._commit(votes, message.ballot), replies + refusals.messages()

    def on_accept(self, message: Accept) -> tuple[AcceptorState | None, list[Message]]:
        """Accept every proposal whose instance promised exactly this ballot."""
        if not self.state.usable:
            return None, [self._unusable(message.ballot, tuple(k for k, _ in message.proposals))]
        votes = dict(self.state.votes)
        refusals = _Refusals(self.slot, message.ballot)
        accepted: list[tuple[InstanceKey, Value]] = []
        for key, value in message.proposals:
            if self._refused(key, message.ballot, refusals) or self._unpromised(key, message):
                continue
            votes[key] = self._accept(votes.get(key, EMPTY_VOTE), message.ballot, value)
            accepted.append((key, value))
        replies: list[Message] = []
        if accepted:
            replies.append(Accepted(self.slot, message.ballot, tuple(accepted)))
        return self._commit(votes, message.ballot), replies + refusals.messages()

    def forget(self, job_id: str, below_generation: int) -> AcceptorState | None:
        """Close (compact) every instance of `job_id` below `below_generation`."""
        return self.forget_many({job_id: below_generation})

    def forget_many(self, below: Mapping[str, int]) -> AcceptorState | None:
        """`forget` of every (job, generation) of `below` as one new state, to persist
        once (None if no floor rises)."""
        if not self.state.usable:
            return None
        raised = {job_id: min(generation, MAX_FLOOR) for job_id, generation in below.items()
                  if min(generation, MAX_FLOOR) > self.state.floors.get(job_id, 0)}
        if not raised:
            return None
        votes = {key: vote for key, vote in self.state.votes.items()
                 if not (key[0] in raised and key[1] < raised[key[0]])}
        self.state = replace(self.state, votes=votes, floors={**self.state.floors, **raised})
        return self.state

    def _promise(self, vote: Vote, ballot: Ballot) -> Vote:
        """The vote after promising `ballot` (already checked to be high enough)."""
        return replace(vote, promised=ballot)

    def _accept(self, vote: Vote, ballot: Ballot, value: Value) -> Vote:
        """The vote after accepting `value` at `ballot`: the promise rises with it."""
        return Vote(promised=max(vote.promised, ballot), accepted=ballot, value=value)

    def _unpromised(self, key: InstanceKey, message: Accept) -> bool:
        """True if this acceptor did not promise `message.ballot` itself in `key`.

        Ignored without a reply: a Nack would only make the proposer retry
        early, while the majority that did promise accepts.
        """
        return self.state.vote(key).promised != message.ballot

    def _refused(self, key: InstanceKey, ballot: Ballot, refusals: _Refusals) -> bool:
        """Record and return whether `key` must not be voted on at `ballot`."""
        if self.state.is_closed(key):
            refusals.closed.append(key)
            return True
        promised = self.state.promised(key)
        if ballot < promised or ballot.round > self.top + ROUND_STEP:
            refusals.add_promised(key, promised)
            return True
        return False

    def _commit(self, votes: dict[InstanceKey, Vote], ballot: Ballot) -> AcceptorState | None:
        """Adopt `votes` (voted at `ballot`); the new state if anything changed, else None."""
        if votes == self.state.votes:
            return None
        self.top = max(self.top, ballot.round)
        self.state = replace(self.state, votes=votes, top_round=self.top)
        return self.state

    def _unusable(self, ballot: Ballot, keys: tuple[InstanceKey, ...]) -> Nack:
        return Nack(self.slot, ballot, keys, NO_BALLOT, NackReason.UNUSABLE)


class _Refusals:
    """The keys an acceptor refused while answering one message, by reason."""

    def __init__(self, slot: int, ballot: Ballot) -> None:
        self.slot = slot
        self.ballot = ballot
        self.closed: list[InstanceKey] = []
        self.promised: list[InstanceKey] = []
        self.highest = NO_BALLOT

    def add_promised(self, key: InstanceKey, promised: Ballot) -> None:
        self.promised.append(key)
        self.highest = max(self.highest, promised)

    def messages(self) -> list[Message]:
        """At most one Nack per reason."""
        nacks: list[Message] = []
        if self.promised:
            nacks.append(Nack(self.slot, self.ballot, tuple(self.promised), self.highest,
                              NackReason.PROMISED))
        if self.closed:
            nacks.append(Nack(self.slot, self.ballot, tuple(self.closed), NO_BALLOT,
                              NackReason.CLOSED))
        return nacks


def highest_round(states: Iterable[AcceptorState]) -> int:
    """The highest round any of `states` promised or accepted (or was floored at)."""
    rounds = [0]
    for state in filter(lambda state: state.usable, states):
        rounds += [state.min_round, state.top_round]
        rounds.extend(max(vote.promised, vote.accepted).round for vote in state.votes.values())
    return max(rounds)


def repaired(peers: Sequence[AcceptorState], proposer_rounds: Iterable[int]) -> AcceptorState:
    """A fresh state for an acceptor that lost its own, built from its peers' states.

    `peers` must be the usable states of a majority of the OTHER voting slots,
    read after the loss, and `proposer_rounds` the durable rounds of every
    proposer (this slot's included). The new acceptor then never votes in an instance any peer
    knows of (any instance it may have accepted in is one), nor below a round
    any proposer may already have used (so a lost promise cannot be broken).
    """
    if not all(peer.usable for peer in peers):
        raise ValueError("repair needs usable peer states")
    floors: dict[str, int] = {}
    for peer in peers:
        for job_id, floor in peer.floors.items():
            floors[job_id] = max(floors.get(job_id, 0), floor)
        for job_id, generation in peer.votes:
            floors[job_id] = max(floors.get(job_id, 0), generation + 1)
    top = max([highest_round(peers), *proposer_rounds])
    return AcceptorState(floors=floors, min_round=top + 1)

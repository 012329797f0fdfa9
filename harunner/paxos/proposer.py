"""The proposer role: drives batches of instances through phases 1 and 2.

Durable state is one number, `ProposerState.round`: the highest round this
slot ever used. A new ballot takes a round above it (and above any promise a
Nack reported), and the shell persists the new round BEFORE the Prepare leaves,
so that after a restart no ballot is ever used twice.

A reply changes nothing unless it answers a ballot of ours still in flight,
for that instance and phase, from a voting slot. A Nack(promised) must report
a promise above the ballot it refuses, and raises the next round by at most
`ROUND_STEP` above that ballot; no round above `MAX_ROUND` is ever used (the
proposer stops instead), so no reply can push the durable round out of the
loader's bounds.

Everything else (which instances are in flight, the promises and acceptances
gathered) is volatile: after a crash the runner proposes again.

Rules kept here:

- a value is proposed in phase 2 only after promises from a majority of the
  voting slots, and it is the value of the highest accepted ballot among
  those promises, or the proposer's own value if none accepted;
- the decision itself is the learner's (a majority of Accepted at one ballot);
- a refused or timed-out instance is retried at a higher ballot after a
  randomized, growing back-off, so that duelling proposers drift apart.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from harunner.paxos.ballot import Ballot, InstanceKey, Value, majority
from harunner.paxos.messages import (
    BATCH_LIMIT,
    Accept,
    Message,
    Nack,
    NackReason,
    Prepare,
    Promise,
    Report,
)
from harunner.paxos.schema import MAX_ROUND, ROUND_STEP

MAX_BACKOFF_DOUBLINGS = 3


@dataclass(frozen=True)
class ProposerState:
    """A proposer's durable state: the highest round it ever used."""

    round: int = 0
    usable: bool = True
    reason: str = ""


class Phase(str, Enum):
    PREPARING = "preparing"
    ACCEPTING = "accepting"


@dataclass
class Attempt:
    """The volatile progress of one instance this proposer is driving."""

    wanted: Value
    ballot: Ballot
    retry_at: float
    tries: int = 0
    phase: Phase = Phase.PREPARING
    promises: dict[int, Report] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)


Sends = list[tuple[int, Message]]


class Proposer:
    """Proposes values for instances; returns the messages to send (persist the state first)."""

    def __init__(self, slot: int, slots: tuple[int, ...], state: ProposerState,
                 timeout: float) -> None:
        self.slot = slot
        self.slots = slots
        self.state = state
        self.timeout = timeout
        self.quorum = majority(len(slots))
        self.attempts: dict[InstanceKey, Attempt] = {}
        self.seen_round = 0

    def propose(self, values: Mapping[InstanceKey, Value], now: float,
                rng: random.Random) -> tuple[ProposerState | None, Sends]:
        """Start phase 1 for every instance in `values` that is not already in flight."""
        fresh = [key for key in values if key not in self.attempts]
        if not fresh or not self.state.usable:
            return None, []
        ballot = self._new_ballot()
        if ballot is None:
            return None, []
        for key in fresh:
            self.attempts[key] = Attempt(values[key], ballot, now + self.timeout)
        return self.state, self._prepares(ballot, fresh)

    def tick(self, now: float, rng: random.Random) -> tuple[ProposerState | None, Sends]:
        """Retry, at one new ballot, every instance whose deadline passed or nearly did."""
        if not any(attempt.retry_at <= now for attempt in self.attempts.values()):
            return None, []
        soon = now + self.timeout / 2
        due = [key for key, attempt in self.attempts.items() if attempt.retry_at <= soon]
        ballot = self._new_ballot()
        if ballot is None:
            return None, []
        delay = rng.uniform(0.5, 1.5)
        for key in due:
            attempt = self.attempts[key]
            attempt.tries += 1
            attempt.ballot, attempt.phase = ballot, Phase.PREPARING
            attempt.promises = {}
            attempt.retry_at = now + self._backoff(attempt.tries, delay)
        return self.state, self._prepares(ballot, due)

    def on_promise(self, message: Promise) -> Sends:
        """Count promises; send Accept for every instance that reached a majority."""
        ready: list[tuple[InstanceKey, Value]] = []
        for report in message.reports:
            attempt = self._current(report.key, message.ballot, Phase.PREPARING, message.sender)
            if attempt is None:
                continue
            attempt.promises[message.sender] = report
            if len(attempt.promises) >= self.quorum:
                attempt.phase = Phase.ACCEPTING
                ready.append((report.key, self._choose(attempt)))
        return self._accepts(message.ballot, ready)

    def on_nack(self, message: Nack, now: float, rng: random.Random) -> list[InstanceKey]:
        """Back off the refused instances; the instances abandoned because they are closed."""
        answered = [key for key in message.keys if self._answers(key, message)]
        if not answered:
            return []
        if message.reason is NackReason.PROMISED and message.promised > message.ballot:
            self.seen_round = max(self.seen_round,
                                  min(message.promised.round, message.ballot.round + ROUND_STEP))
        abandoned: list[InstanceKey] = []
        delay = rng.uniform(0.5, 1.5)
        for key in answered:
            attempt = self.attempts[key]
            if message.reason is NackReason.PROMISED:
                attempt.retry_at = min(attempt.retry_at, now + self._backoff(attempt.tries, delay))
            elif message.reason is NackReason.CLOSED:
                attempt.closed.add(message.sender)
                if len(attempt.closed) >= self.quorum:
                    abandoned.append(key)
        for key in abandoned:
            del self.attempts[key]
        return abandoned

    def drop(self, keys: Iterable[InstanceKey]) -> None:
        """Stop driving `keys` (they were decided or forgotten elsewhere)."""
        for key in keys:
            self.attempts.pop(key, None)

    def _answers(self, key: InstanceKey, message: Nack) -> bool:
        """True if `message` refuses a ballot of ours still in flight for `key`."""
        attempt = self.attempts.get(key)
        return (attempt is not None and attempt.ballot == message.ballot
                and message.sender in self.slots)

    def _current(self, key: InstanceKey, ballot: Ballot, phase: Phase,
                 sender: int) -> Attempt | None:
        """The attempt a reply is about, or None if the reply is stale or foreign."""
        attempt = self.attempts.get(key)
        if attempt is None or attempt.ballot != ballot or attempt.phase is not phase:
            return None
        return attempt if sender in self.slots else None

    def _choose(self, attempt: Attempt) -> Value:
        """The value of the highest accepted ballot among the promises, else our own."""
        best = max(attempt.promises.values(), key=lambda report: report.accepted)
        return best.value if best.value is not None else attempt.wanted

    def _new_ballot(self) -> Ballot | None:
        """A ballot above every round used or seen (None if the rounds are used up).

        The caller persists `self.state`.
        """
        round_ = max(self.state.round, self.seen_round) + 1
        if round_ > MAX_ROUND:
            return None
        self.state = ProposerState(round=round_)
        return self._ballot(round_)

    def _ballot(self, round_: int) -> Ballot:
        return Ballot(round_, self.slot)

    def _backoff(self, tries: int, jitter: float) -> float:
        """A delay that doubles with each try, up to a bound, times a random `jitter`.

        One jitter is drawn per message or tick, so that a batch stays one batch.
        """
        return self.timeout * jitter * 2 ** min(tries, MAX_BACKOFF_DOUBLINGS)

    def _prepares(self, ballot: Ballot, keys: list[InstanceKey]) -> Sends:
        sends: Sends = []
        for start in range(0, len(keys), BATCH_LIMIT):
            message = Prepare(self.slot, ballot, tuple(keys[start:start + BATCH_LIMIT]))
            sends.extend((slot, message) for slot in self.slots)
        return sends

    def _accepts(self, ballot: Ballot, ready: list[tuple[InstanceKey, Value]]) -> Sends:
        sends: Sends = []
        for start in range(0, len(ready), BATCH_LIMIT):
            message = Accept(self.slot, ballot, tuple(ready[start:start + BATCH_LIMIT]))
            sends.extend((slot, message) for slot in self.slots)
        return sends

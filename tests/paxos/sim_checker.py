"""Safety invariants of the simulated cluster, checked after every step.

- chosen: at most one value is chosen per instance, where a value is chosen
  once a majority of acceptors accepted it at the same ballot (computed from
  every acceptor state the nodes ever produced, not from what they say);
- learned: every value a learner reports was chosen;
- proposed: every chosen value was sent in an Accept, at that ballot, by the
  slot whose ballot it is (not made up by a forger);
- promises: an acceptor's promise in an instance never falls below a promise
  it already sent, across crashes and restarts (closed instances excepted);
- ballots: no two proposals share a ballot: a (instance, ballot) is prepared
  by one incarnation of one slot only, and carries one value in phase 2;
- votes: no acceptor holds an accepted ballot above its promise (the
  acceptor conjunct of Paxos's inductive invariant: accepting raises the
  promise). A breach of it is a breach of "chosen" waiting for the right
  schedule, which random schedules find only after some 600,000 steps;
- bounded: every durable state stays inside the bounds its loader checks
  (harunner.paxos.schema), and no step raises the highest round of the
  cluster by more than ROUND_STEP + 1, whatever frames a forger injected.

A breach raises `Violation`, whose `invariant` names the rule.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from harunner.paxos import (
    Accept,
    AcceptorState,
    Ballot,
    Effects,
    InstanceKey,
    Prepare,
    Promise,
    Value,
)
from harunner.paxos.ballot import majority
from harunner.paxos.proposer import ProposerState
from harunner.paxos.schema import MAX_FLOOR, MAX_MIN_ROUND, MAX_ROUND, ROUND_STEP

if TYPE_CHECKING:
    from sim import Shell, Simulator

INVARIANTS = ("chosen", "learned", "proposed", "promises", "ballots", "votes", "bounded")


class Violation(AssertionError):
    """A safety invariant failed."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant


class Checker:
    """Records what the nodes did and checks the invariants where something changed."""

    def __init__(self, sim: Simulator, checks: frozenset[str] = frozenset(INVARIANTS)) -> None:
        self.sim = sim
        self.checks = checks
        self.enabled = bool(checks)
        self.accepted: dict[InstanceKey, dict[tuple[Ballot, Value], set[int]]] = (
            defaultdict(lambda: defaultdict(set)))
        self.learned: dict[InstanceKey, set[Value]] = defaultdict(set)
        self.sent_promise: dict[int, dict[tuple[InstanceKey, int], Ballot]] = defaultdict(dict)
        self.preparer: dict[tuple[InstanceKey, Ballot], tuple[int, int]] = {}
        self.proposal: dict[tuple[InstanceKey, Ballot], Value] = {}
        self.repaired: set[int] = set()
        self.dirty_keys: set[InstanceKey] = set()
        self.dirty_slots: set[int] = set()
        self.top = 0

    def on_effects(self, shell: Shell, effects: Effects) -> None:
        """Record what one node call produced; check the ballot rule on its sends."""
        if not self.enabled:
            return
        self._check_bounds(shell, effects.acceptor_state, effects.proposer_state)
        if effects.acceptor_state is not None:
            self.dirty_slots.add(shell.slot)
            for key, vote in effects.acceptor_state.votes.items():
                if vote.value is None:
                    continue
                voters = self.accepted[key][(vote.accepted, vote.value)]
                if shell.slot not in voters:
                    voters.add(shell.slot)
                    self.dirty_keys.add(key)
        for key, value in effects.decided.items():
            self.learned[key].add(value)
            self.dirty_keys.add(key)
        for _, message in effects.send:
            self._record_send(shell, message)

    def _check_bounds(self, shell: Shell, acceptor: AcceptorState | None,
                      proposer: ProposerState | None) -> None:
        """Durable state the loader would load, and no round far above all before it."""
        rounds = [] if proposer is None else [proposer.round]
        if acceptor is not None and acceptor.usable:
            rounds += [max(v.promised, v.accepted).round for v in acceptor.votes.values()]
            rounds.append(acceptor.top_round)
            floors_ok = all(floor <= MAX_FLOOR for floor in acceptor.floors.values())
            if (acceptor.min_round > MAX_MIN_ROUND or not floors_ok) and "bounded" in self.checks:
                raise Violation("bounded", f"slot {shell.slot} would save {acceptor}")
        top = max(rounds, default=0)
        if (top > MAX_ROUND or top > self.top + ROUND_STEP + 1) and "bounded" in self.checks:
            raise Violation("bounded", f"slot {shell.slot} would save round {top}, "
                            f"highest round before was {self.top}")
        self.top = max(self.top, top)

    def on_start(self, shell: Shell) -> None:
        """A slot (re)started from its disk: check its promises again."""
        self.dirty_slots.add(shell.slot)

    def on_repair(self, shell: Shell) -> None:
        """Waive what a repaired slot's lost files alone could guarantee.

        A slot that lost its proposer round may prepare again a ballot its
        lost life only prepared (never accepted: that would have reached a
        majority, whose rounds the repair stays above), and its repaired
        acceptor owes nothing to that lost life's own ballots.
        """
        self.repaired.add(shell.slot)
        self._check_bounds(shell, shell.disk.acceptor, shell.disk.proposer)
        promised = self.sent_promise[shell.slot]
        for index in [index for index in promised if index[1] == shell.slot]:
            del promised[index]

    def _record_send(self, shell: Shell, message: object) -> None:
        if isinstance(message, Promise):
            promised = self.sent_promise[shell.slot]
            for report in message.reports:
                index = (report.key, message.ballot.slot)
                promised[index] = max(promised.get(index, message.ballot), message.ballot)
        elif isinstance(message, Prepare):
            for key in message.keys:
                self._check_preparer(shell, key, message.ballot)
        elif isinstance(message, Accept):
            for key, value in message.proposals:
                known = self.proposal.setdefault((key, message.ballot), value)
                if known != value and "ballots" in self.checks:
                    raise Violation("ballots", f"{key} ballot {message.ballot} carries "
                                    f"{known} and {value}")

    def _check_preparer(self, shell: Shell, key: InstanceKey, ballot: Ballot) -> None:
        who = self.preparer.setdefault((key, ballot), (shell.slot, shell.life))
        if who == (shell.slot, shell.life) or "ballots" not in self.checks:
            return
        if who[0] == shell.slot and shell.slot in self.repaired:
            return
        raise Violation("ballots", f"{key} ballot {ballot} prepared by slot/life {who} "
                        f"and {(shell.slot, shell.life)}")

    def check(self) -> None:
        """Check the invariants where anything changed; raise `Violation` on a breach."""
        keys, slots = self.dirty_keys, self.dirty_slots
        self.dirty_keys, self.dirty_slots = set(), set()
        for key in keys:
            chosen = self.chosen(key)
            if len(chosen) > 1 and "chosen" in self.checks:
                raise Violation("chosen", f"{key}: {sorted(chosen)} all chosen")
            if not self.learned[key] <= chosen and "learned" in self.checks:
                raise Violation("learned", f"{key}: learned {sorted(self.learned[key])}, "
                                f"chosen {sorted(chosen)}")
            if "proposed" in self.checks:
                self._check_proposed(key)
        for slot in slots:
            node = self.sim.shells[slot].node
            if node is None or not node.acceptor_state.usable:
                continue
            if "promises" in self.checks:
                self._check_promises(slot, node.acceptor_state)
            if "votes" in self.checks:
                self._check_votes(slot, node.acceptor_state)

    def chosen(self, key: InstanceKey) -> set[Value]:
        """The values a majority accepted at one ballot, at any time."""
        quorum = majority(len(self.sim.voters))
        return {value for (_, value), slots in self.accepted.get(key, {}).items()
                if len(slots) >= quorum}

    def _check_proposed(self, key: InstanceKey) -> None:
        quorum = majority(len(self.sim.voters))
        for (ballot, value), slots in self.accepted.get(key, {}).items():
            if len(slots) >= quorum and self.proposal.get((key, ballot)) != value:
                raise Violation("proposed", f"{key}: {value} chosen at {ballot}, which "
                                f"proposed {self.proposal.get((key, ballot))}")

    def _check_votes(self, slot: int, state: AcceptorState) -> None:
        for key, vote in state.votes.items():
            if vote.accepted > vote.promised:
                raise Violation("votes", f"slot {slot} accepted {vote.accepted} in "
                                f"{key} above its promise {vote.promised}")

    def _check_promises(self, slot: int, state: AcceptorState) -> None:
        for (key, _), sent in self.sent_promise[slot].items():
            if not state.is_closed(key) and state.promised(key) < sent:
                raise Violation("promises", f"slot {slot} promised {sent} in {key}, "
                                f"now promises {state.promised(key)}")

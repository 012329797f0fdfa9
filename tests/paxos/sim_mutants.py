"""Deliberately broken variants of the protocol, which the explorer must catch.

Each is a subclass defined here, in the tests: the production code has no
mutant flags. Core mutants replace a role class on a `Node` subclass; shell
mutants (the persist-then-send order and the reload of the round live in the
runner, not the core) subclass the simulator's `Shell`.
"""

from __future__ import annotations

from sim import Shell
from sim_explorer import Setup

from harunner.paxos import Ballot, Node, ProposerState, Value
from harunner.paxos.acceptor import Acceptor, Vote
from harunner.paxos.proposer import Attempt, Proposer


class PersistLateShell(Shell):
    """Replies first and writes the state later: a crash in between forgets a promise."""

    def apply(self, effects, depth):  # type: ignore[no-untyped-def]
        self.send(effects, depth)
        self.pending = getattr(self, "pending", []) + [effects]

    def flush(self) -> None:
        for effects in getattr(self, "pending", []):
            self.persist(effects)
        self.pending = []

    def crash(self) -> None:
        self.pending = []
        super().crash()


class RoundForgottenShell(Shell):
    """Restarts its proposer at round 0 instead of reloading the durable round."""

    def start(self) -> None:
        self.disk.proposer = ProposerState()
        super().start()


class NoSlotProposer(Proposer):
    """Ballots without the slot id: two proposers can use the same ballot."""

    def _ballot(self, round_: int) -> Ballot:
        return Ballot(round_, 0)


class OwnValueProposer(Proposer):
    """Ignores the values reported in promises and always proposes its own."""

    def _choose(self, attempt: Attempt) -> Value:
        return attempt.wanted


class QuorumOfOneProposer(Proposer):
    """Believes one promise or one acceptance is enough."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.quorum = 1


class NackTrustingProposer(Proposer):
    """Raises its round from any Nack, before checking that it answers a ballot of its own."""

    def on_nack(self, message, now, rng):  # type: ignore[no-untyped-def]
        self.seen_round = max(self.seen_round, message.promised.round)
        return super().on_nack(message, now, rng)


class UnpromisedAcceptor(Acceptor):
    """Accepts a proposal at any ballot not below its promise, even one it never promised."""

    def _unpromised(self, key, message):  # type: ignore[no-untyped-def]
        return False


class LowPromiseAcceptor(UnpromisedAcceptor):
    """Accepts (as Paxos allows, without a promise of that ballot) but keeps its promise low."""

    def _accept(self, vote: Vote, ballot: Ballot, value: Value) -> Vote:
        return Vote(promised=vote.promised, accepted=ballot, value=value)


def _shell_with(name: str, **roles: type) -> type[Shell]:
    node_class = type(f"{name}Node", (Node,), roles)
    return type(f"{name}Shell", (Shell,), {"node_class": node_class})


MUTANTS: dict[str, Setup] = {
    "reply-before-persist": Setup(shell_class=PersistLateShell),
    "ballot-without-slot": Setup(shell_class=_shell_with("NoSlot", proposer_class=NoSlotProposer)),
    "ignores-accepted-value": Setup(
        shell_class=_shell_with("OwnValue", proposer_class=OwnValueProposer)),
    "quorum-of-one": Setup(shell_class=_shell_with("QuorumOne",
                                                   proposer_class=QuorumOfOneProposer)),
    "accept-keeps-low-promise": Setup(
        shell_class=_shell_with("LowPromise", acceptor_class=LowPromiseAcceptor)),
    "round-not-reloaded": Setup(shell_class=RoundForgottenShell),
    "accepts-unpromised": Setup(
        shell_class=_shell_with("Unpromised", acceptor_class=UnpromisedAcceptor), forgery=True),
    "nack-raises-unsolicited": Setup(
        shell_class=_shell_with("NackTrusting", proposer_class=NackTrustingProposer),
        forgery=True),
}

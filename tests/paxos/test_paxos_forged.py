"""Forged frames: every message is checked against the protocol state before it changes any.

Each test hands a node the kind of frame a hostile program could send to a
peer socket (within the codec's bounds) and checks that nothing changed that
the protocol does not allow, and that whatever state results is one the
loader of the Paxos files loads.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harunner.paxos import (
    NO_BALLOT,
    Accept,
    Accepted,
    AcceptorState,
    Ballot,
    CodecError,
    Nack,
    NackReason,
    Node,
    Prepare,
    Promise,
    ProposerState,
    Report,
    Value,
    decode,
    encode,
)
from harunner.paxos.schema import MAX_ROUND, ROUND_STEP
from harunner.store import paxos_files

SLOTS = (0, 1, 2)
KEY = ("job", 4)
RNG = random.Random(0)


def node(slot: int = 0, round_: int = 0) -> Node:
    return Node(slot, SLOTS, AcceptorState(), ProposerState(round=round_))


def next_round(n: Node) -> int:
    effects = n.tick(1_000.0, RNG)
    assert effects.proposer_state is not None
    return effects.proposer_state.round


def test_an_unsolicited_nack_with_round_2_53_does_not_raise_the_round() -> None:
    """The issue's frame: a Nack for a ballot this node never used."""
    n = node()
    n.propose({KEY: Value(0, 1)}, 0.0, RNG)
    forged = Nack(1, Ballot(7, 0), (KEY,), Ballot(2**53, 1), NackReason.PROMISED)
    assert n.receive(forged, 0.01, RNG) == n.receive(forged, 0.01, RNG)
    assert next_round(n) == 2


def test_a_nack_for_another_instance_or_from_a_stranger_changes_nothing() -> None:
    n = node()
    n.propose({KEY: Value(0, 1)}, 0.0, RNG)
    for forged in (Nack(1, Ballot(1, 0), (("other", 1),), Ballot(2**53, 1), NackReason.PROMISED),
                   Nack(9, Ballot(1, 0), (KEY,), Ballot(2**53, 1), NackReason.PROMISED),
                   Nack(1, Ballot(1, 0), (KEY,), Ballot(0, 0), NackReason.PROMISED)):
        n.receive(forged, 0.01, RNG)
    assert next_round(n) == 2


def test_a_nack_that_answers_our_ballot_raises_the_round_by_a_bounded_step() -> None:
    n = node()
    n.propose({KEY: Value(0, 1)}, 0.0, RNG)
    n.receive(Nack(1, Ballot(1, 0), (KEY,), Ballot(MAX_ROUND, 1), NackReason.PROMISED), 0.0, RNG)
    assert next_round(n) == 1 + ROUND_STEP + 1


def test_a_proposer_at_the_last_round_stops_instead_of_leaving_the_bounds() -> None:
    n = node(round_=MAX_ROUND)
    assert n.propose({KEY: Value(0, 1)}, 0.0, RNG).send == ()
    assert n.proposer_state.round == MAX_ROUND


def test_a_prepare_far_above_every_round_is_refused_and_changes_nothing() -> None:
    n = node(1)
    effects = n.receive(Prepare(2, Ballot(2**53, 2), (KEY,)), 0.0, RNG)
    assert effects.acceptor_state is None
    assert [m.reason for _, m in effects.send] == [NackReason.PROMISED]
    effects = n.receive(Accept(2, Ballot(ROUND_STEP + 1, 2), ((KEY, Value(2, 1)),)), 0.0, RNG)
    assert effects.acceptor_state is None
    ok = n.receive(Prepare(2, Ballot(ROUND_STEP, 2), (KEY,)), 0.0, RNG)
    assert ok.acceptor_state is not None


def test_compaction_and_a_restart_do_not_narrow_the_round_window(tmp_path: Path) -> None:
    """The window's base is durable: after the votes are compacted away, a restarted
    acceptor still takes a ballot just above the rounds honest proposers had reached."""
    n = node(1)
    high = 3 * ROUND_STEP
    for round_ in range(ROUND_STEP, high + 1, ROUND_STEP):
        effects = n.receive(Prepare(2, Ballot(round_, 2), (KEY,)), 0.0, RNG)
        assert effects.acceptor_state is not None
    state = n.forget(KEY[0], KEY[1] + 1).acceptor_state
    assert state is not None and not state.votes and state.top_round == high
    paxos_files.save_acceptor(tmp_path / "a", state)
    restarted = Node(1, SLOTS, paxos_files.load_acceptor(tmp_path / "a"), ProposerState())
    effects = restarted.receive(Prepare(2, Ballot(high + 5, 2), (("next", 1),)), 0.0, RNG)
    assert effects.acceptor_state is not None


def test_prepare_or_accept_for_a_ballot_of_another_slot_changes_nothing() -> None:
    n = node(1)
    assert n.receive(Prepare(2, Ballot(3, 0), (KEY,)), 0.0, RNG).acceptor_state is None
    assert n.receive(Accept(2, Ballot(3, 0), ((KEY, Value(2, 1)),)), 0.0, RNG) == \
        n.receive(Accept(0, Ballot(3, 7), ((KEY, Value(2, 1)),)), 0.0, RNG)
    assert n.acceptor_state == AcceptorState()


def test_messages_from_slots_that_are_not_configured_change_nothing() -> None:
    n = node()
    n.propose({KEY: Value(0, 1)}, 0.0, RNG)
    report = Report(KEY, NO_BALLOT, None)
    for forged in (Prepare(7, Ballot(1, 7), (KEY,)), Accept(7, Ballot(1, 7), ((KEY, Value(7, 1)),)),
                   Promise(7, Ballot(1, 0), (report,)), Promise(8, Ballot(1, 0), (report,)),
                   Accepted(7, Ballot(1, 0), ((KEY, Value(0, 1)),)),
                   Accepted(8, Ballot(1, 0), ((KEY, Value(0, 1)),))):
        effects = n.receive(forged, 0.0, RNG)
        assert effects.send == () and effects.acceptor_state is None and not effects.decided
    assert n.decided(KEY) is None


def test_a_bare_claim_of_a_decision_is_not_learned() -> None:
    """There is no 'decided' frame; one Accepted alone, or two that disagree, teaches nothing."""
    frame = encode(Accepted(1, Ballot(3, 1), ((KEY, Value(1, 1)),)), "c").replace(
        b'"accepted"', b'"decided"')
    with pytest.raises(CodecError, match="unknown-type"):
        decode(frame, "c")
    n = node()
    assert not n.receive(Accepted(1, Ballot(3, 1), ((KEY, Value(1, 1)),)), 0.0, RNG).decided
    assert not n.receive(Accepted(2, Ballot(3, 1), ((KEY, Value(2, 1)),)), 0.0, RNG).decided
    assert not n.receive(Accepted(1, Ballot(3, 1), ((KEY, Value(1, 1)),)), 0.0, RNG).decided
    assert n.decided(KEY) is None


def test_a_forged_high_prepare_does_not_stop_the_next_decision() -> None:
    """A forger's Prepare at a huge round, then an honest proposal: still decided."""
    nodes = {slot: node(slot) for slot in SLOTS}
    for slot in SLOTS:
        nodes[slot].receive(Prepare(2, Ballot(2**53, 2), (KEY,)), 0.0, RNG)
    queue = [(0, d, m) for d, m in nodes[0].propose({KEY: Value(0, 1)}, 0.0, RNG).send]
    while queue:
        _, target, message = queue.pop(0)
        queue += [(target, d, m) for d, m in nodes[target].receive(message, 0.0, RNG).send]
    assert all(n.decided(KEY) == Value(0, 1) for n in nodes.values())


rounds = st.sampled_from([0, 1, ROUND_STEP, ROUND_STEP + 1, 2**53, MAX_ROUND - 1, MAX_ROUND])
senders = st.sampled_from([0, 1, 2, 7, 1023])
ballots = st.builds(Ballot, rounds, senders)
keys = st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([0, 1, 2**53]))
values = st.builds(Value, senders, st.sampled_from([0, 1, 2**53]))
forged = st.one_of(
    st.builds(Prepare, senders, ballots, st.tuples(keys)),
    st.builds(Accept, senders, ballots, st.tuples(st.tuples(keys, values))),
    st.builds(Nack, senders, ballots, st.tuples(keys), ballots, st.sampled_from(NackReason)),
    st.builds(Promise, senders, ballots, st.tuples(st.builds(Report, keys, ballots,
                                                             st.none() | values))),
    st.builds(Accepted, senders, ballots, st.tuples(st.tuples(keys, values))))


@settings(max_examples=200, deadline=None)
@given(st.lists(forged, max_size=25))
def test_whatever_is_forged_the_saved_state_loads_back(tmp_path_factory, messages) -> None:
    """Every state a node asks to persist after forged frames is one the loader accepts."""
    folder: Path = tmp_path_factory.mktemp("forged")
    n = node()
    n.propose({("a", 1): Value(0, 1), ("b", 2**53): Value(0, 1)}, 0.0, RNG)
    for i, message in enumerate(messages):
        for effects in (n.receive(message, i * 0.1, RNG), n.tick(i * 0.1, RNG),
                        n.forget("a", 2**53 + 5)):
            if effects.acceptor_state is not None:
                paxos_files.save_acceptor(folder / "a", effects.acceptor_state)
                assert paxos_files.load_acceptor(folder / "a") == effects.acceptor_state
            if effects.proposer_state is not None:
                paxos_files.save_proposer(folder / "p", effects.proposer_state)
                assert paxos_files.load_proposer(folder / "p") == effects.proposer_state

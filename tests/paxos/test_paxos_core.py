"""Unit tests of the pure Paxos roles and the Node facade."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from harunner.paxos import (
    NO_BALLOT,
    Accept,
    Accepted,
    AcceptorState,
    Ballot,
    Nack,
    NackReason,
    Node,
    Prepare,
    Promise,
    ProposerState,
    Report,
    Value,
    Vote,
)
from harunner.paxos.acceptor import Acceptor, repaired, unusable

SLOTS = (0, 1, 2)
KEY = ("job", 1)
RNG = random.Random(0)


def node(slot: int = 0, acceptor: AcceptorState | None = None) -> Node:
    return Node(slot, SLOTS, acceptor or AcceptorState(), ProposerState())


def test_prepare_is_promised_and_persisted_state_is_returned() -> None:
    acceptor = Acceptor(1, AcceptorState())
    state, replies = acceptor.on_prepare(Prepare(0, Ballot(1, 0), (KEY,)))
    assert state is not None and state.vote(KEY).promised == Ballot(1, 0)
    assert replies == [Promise(1, Ballot(1, 0), (replies[0].reports[0],))]


def test_repeated_prepare_changes_nothing_and_lower_prepare_is_refused() -> None:
    acceptor = Acceptor(1, AcceptorState())
    acceptor.on_prepare(Prepare(0, Ballot(2, 0), (KEY,)))
    state, replies = acceptor.on_prepare(Prepare(0, Ballot(2, 0), (KEY,)))
    assert state is None and isinstance(replies[0], Promise)
    state, replies = acceptor.on_prepare(Prepare(2, Ballot(1, 2), (KEY,)))
    assert state is None
    assert replies == [Nack(1, Ballot(1, 2), (KEY,), Ballot(2, 0), NackReason.PROMISED)]


def test_accept_is_taken_only_at_the_promised_ballot() -> None:
    acceptor = Acceptor(1, AcceptorState())
    state, replies = acceptor.on_accept(Accept(0, Ballot(3, 0), ((KEY, Value(0, 1)),)))
    assert state is None and replies == []  # a lone Accept: never promised, ignored
    acceptor.on_prepare(Prepare(0, Ballot(3, 0), (KEY,)))
    state, replies = acceptor.on_accept(Accept(0, Ballot(3, 0), ((KEY, Value(0, 1)),)))
    assert state is not None and state.vote(KEY) == Vote(Ballot(3, 0), Ballot(3, 0), Value(0, 1))
    assert replies == [Accepted(1, Ballot(3, 0), ((KEY, Value(0, 1)),))]
    _, replies = acceptor.on_accept(Accept(2, Ballot(2, 2), ((KEY, Value(2, 1)),)))
    assert isinstance(replies[0], Nack) and replies[0].reason is NackReason.PROMISED


def test_promise_reports_the_accepted_value() -> None:
    acceptor = Acceptor(1, AcceptorState())
    acceptor.on_prepare(Prepare(0, Ballot(1, 0), (KEY,)))
    acceptor.on_accept(Accept(0, Ballot(1, 0), ((KEY, Value(0, 7)),)))
    _, replies = acceptor.on_prepare(Prepare(2, Ballot(2, 2), (KEY,)))
    report = replies[0].reports[0]
    assert (report.accepted, report.value) == (Ballot(1, 0), Value(0, 7))


def test_mixed_batch_gets_one_promise_and_one_nack_per_reason() -> None:
    state = AcceptorState(votes={("b", 1): Vote(promised=Ballot(9, 2))}, floors={"c": 5})
    _, replies = Acceptor(1, state).on_prepare(Prepare(0, Ballot(3, 0), (KEY, ("b", 1), ("c", 4))))
    kinds = [(type(r).__name__, getattr(r, "reason", None)) for r in replies]
    assert kinds == [("Promise", None), ("Nack", NackReason.PROMISED), ("Nack", NackReason.CLOSED)]


def test_unusable_acceptor_votes_on_nothing_and_says_why() -> None:
    acceptor = Acceptor(1, unusable("file missing"))  # (says so even to a lone Accept)
    state, replies = acceptor.on_prepare(Prepare(0, Ballot(1, 0), (KEY,)))
    assert state is None and replies[0].reason is NackReason.UNUSABLE
    state, replies = acceptor.on_accept(Accept(0, Ballot(1, 0), ((KEY, Value(0, 1)),)))
    assert state is None and replies[0].reason is NackReason.UNUSABLE


def test_forget_many_is_the_forgets_one_after_another_in_one_state() -> None:
    votes = {(job, g): Vote(promised=Ballot(1, 0)) for job in ("a", "b", "c") for g in (1, 2, 3)}
    one_by_one = Acceptor(1, AcceptorState(votes=dict(votes), floors={"c": 5}))
    for job, below in (("a", 3), ("b", 2), ("c", 4)):
        one_by_one.forget(job, below)
    together = Acceptor(1, AcceptorState(votes=dict(votes), floors={"c": 5}))
    state = together.forget_many({"a": 3, "b": 2, "c": 4})
    assert state == one_by_one.state
    assert sorted(state.votes) == [("a", 3), ("b", 2), ("b", 3), ("c", 1), ("c", 2), ("c", 3)]
    assert state.floors == {"a": 3, "b": 2, "c": 5}  # a floor never goes down
    assert together.forget_many({"a": 3, "c": 4}) is None  # nothing rises: nothing to persist


def test_forget_closes_old_generations_for_good() -> None:
    acceptor = Acceptor(1, AcceptorState(votes={KEY: Vote(promised=Ballot(1, 0))}))
    state = acceptor.forget("job", 3)
    assert state is not None and not state.votes and state.floors == {"job": 3}
    assert acceptor.forget("job", 2) is None
    _, replies = acceptor.on_prepare(Prepare(0, Ballot(99, 0), (("job", 2),)))
    assert replies[0].reason is NackReason.CLOSED
    _, replies = acceptor.on_prepare(Prepare(0, Ballot(99, 0), (("job", 3),)))
    assert isinstance(replies[0], Promise)


def test_repaired_acceptor_closes_known_jobs_and_votes_only_above_every_round() -> None:
    peer = AcceptorState(votes={KEY: Vote(Ballot(4, 1), Ballot(4, 1), Value(1, 1))},
                         floors={"old": 7})
    state = repaired([peer, AcceptorState()], [6, 2])
    assert state.floors == {"job": 2, "old": 7} and state.min_round == 7
    _, replies = Acceptor(2, state).on_prepare(Prepare(0, Ballot(6, 0), (("new", 1),)))
    assert replies[0].reason is NackReason.PROMISED and replies[0].promised == Ballot(7, 0)


def run(nodes: dict[int, Node], first: list[tuple[int, int, object]]) -> int:
    """Deliver every message until quiet; the number delivered."""
    queue, delivered = list(first), 0
    while queue:
        _, target, message = queue.pop(0)
        delivered += 1
        effects = nodes[target].receive(message, 0.0, RNG)  # type: ignore[arg-type]
        queue.extend((target, dest, m) for dest, m in effects.send)
    return delivered


def test_one_batch_of_a_thousand_instances_is_decided_in_eighteen_messages() -> None:
    """3 Prepare, 3 Promise, 3 Accept, and each acceptor's Accepted to all 3 slots."""
    nodes = {slot: node(slot) for slot in SLOTS}
    keys = {(f"job-{i}", 1): Value(0, 1) for i in range(1000)}
    effects = nodes[0].propose(keys, 0.0, RNG)
    assert effects.proposer_state == ProposerState(round=1)
    assert len(effects.send) == 3
    assert run(nodes, [(0, dest, m) for dest, m in effects.send]) == 18
    assert all(n.decided(("job-999", 1)) == Value(0, 1) for n in nodes.values())


def test_second_proposer_adopts_the_decided_value() -> None:
    nodes = {slot: node(slot) for slot in SLOTS}
    run(nodes, [(0, d, m) for d, m in nodes[0].propose({KEY: Value(0, 1)}, 0.0, RNG).send])
    fresh = {slot: node(slot, nodes[slot].acceptor_state) for slot in SLOTS}
    effects = fresh[2].propose({KEY: Value(2, 1)}, 0.0, RNG)
    run(fresh, [(2, d, m) for d, m in effects.send])
    assert fresh[2].decided(KEY) == Value(0, 1)


def test_a_majority_of_accepted_teaches_every_slot_and_propose_reports_it() -> None:
    n = node()
    accepted = ((KEY, Value(1, 1)),)
    assert n.receive(Accepted(1, Ballot(4, 1), accepted), 0.0, RNG).decided == {}
    assert n.receive(Accepted(2, Ballot(4, 1), accepted), 0.0, RNG).decided == {
        KEY: Value(1, 1)}
    effects = n.propose({KEY: Value(0, 1)}, 0.0, RNG)
    assert effects.decided == {KEY: Value(1, 1)} and not effects.send


def test_every_slot_learns_when_the_proposer_does() -> None:
    nodes = {slot: node(slot) for slot in SLOTS}
    run(nodes, [(0, d, m) for d, m in nodes[0].propose({KEY: Value(0, 1)}, 0.0, RNG).send])
    assert all(n.decided(KEY) == Value(0, 1) for n in nodes.values())


def test_tick_retries_with_a_higher_durable_round_after_the_timeout() -> None:
    n = node()
    n.propose({KEY: Value(0, 1)}, 0.0, RNG)
    assert not n.tick(0.1, RNG).send
    effects = n.tick(0.25, RNG)
    assert effects.proposer_state == ProposerState(round=2)
    assert all(m.ballot == Ballot(2, 0) for _, m in effects.send)


def test_nack_raises_the_next_round_above_the_promise_it_reports() -> None:
    n = node()
    n.propose({KEY: Value(0, 1)}, 0.0, RNG)
    n.receive(Nack(1, Ballot(1, 0), (KEY,), Ballot(40, 2), NackReason.PROMISED), 0.01, RNG)
    effects = n.tick(10.0, RNG)
    assert effects.proposer_state == ProposerState(round=41)


def test_majority_of_closed_nacks_abandons_the_instance() -> None:
    n = node()
    n.propose({KEY: Value(0, 1)}, 0.0, RNG)
    nack = Nack(1, Ballot(1, 0), (KEY,), Ballot(0, 0), NackReason.CLOSED)
    assert n.receive(nack, 0.0, RNG).abandoned == ()
    nack = Nack(2, Ballot(1, 0), (KEY,), Ballot(0, 0), NackReason.CLOSED)
    assert n.receive(nack, 0.0, RNG).abandoned == (KEY,)
    assert n.pending() == ()


def test_replies_from_non_voting_slots_do_not_count() -> None:
    n = node()
    n.propose({KEY: Value(0, 1)}, 0.0, RNG)
    report = Report(KEY, NO_BALLOT, None)
    assert not n.receive(Promise(7, Ballot(1, 0), (report,)), 0.0, RNG).send
    assert not n.receive(Promise(1, Ballot(1, 0), (report,)), 0.0, RNG).send
    assert n.receive(Promise(2, Ballot(1, 0), (report,)), 0.0, RNG).send


def test_node_with_unusable_proposer_proposes_nothing() -> None:
    n = Node(0, SLOTS, AcceptorState(), ProposerState(usable=False, reason="lost"))
    assert not n.can_propose
    assert n.propose({KEY: Value(0, 1)}, 0.0, RNG).send == ()


slots_ = st.integers(0, 5)
ballots_ = st.builds(Ballot, st.integers(0, 5), slots_)
values_ = st.builds(Value, slots_, st.integers(0, 3))
keys_ = st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 3))
key_tuples = st.lists(keys_, max_size=4, unique=True).map(tuple)
pairs_ = st.lists(st.tuples(keys_, values_), max_size=4).map(tuple)
messages_ = st.one_of(
    st.builds(Prepare, slots_, ballots_, key_tuples),
    st.builds(Promise, slots_, ballots_, st.lists(
        st.builds(Report, keys_, ballots_, st.none() | values_), max_size=4).map(tuple)),
    st.builds(Nack, slots_, ballots_, key_tuples, ballots_, st.sampled_from(NackReason)),
    st.builds(Accept, slots_, ballots_, pairs_),
    st.builds(Accepted, slots_, ballots_, pairs_),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages_, max_size=30), st.booleans())
def test_any_sequence_of_well_formed_messages_is_handled(messages: list, usable: bool) -> None:
    """Whatever arrives, in whatever order, the node answers without raising."""
    n = Node(0, SLOTS, AcceptorState() if usable else unusable("test"), ProposerState())
    n.propose({("a", 1): Value(0, 1), ("b", 2): Value(0, 1)}, 0.0, RNG)
    for i, message in enumerate(messages):
        effects = n.receive(message, i * 0.1, RNG)
        assert all(isinstance(target, int) for target, _ in effects.send)
        n.tick(i * 0.1, RNG)
    for key, vote in n.acceptor_state.votes.items():
        assert vote.accepted <= vote.promised, key

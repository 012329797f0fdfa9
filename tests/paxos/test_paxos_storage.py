"""Durable Paxos state: first start, round trips, refusal to vote after a loss, repair."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harunner.errors import StoreError
from harunner.paxos import (
    AcceptorState,
    Ballot,
    NackReason,
    Node,
    Prepare,
    Promise,
    ProposerState,
    Value,
    Vote,
)
from harunner.store import paxos_files as storage
from harunner.store.durable import KIND_ACCEPTOR
from harunner.store.layout import Layout
from harunner.store.pairfile import HEADER_SIZE, write_pair

SLOTS = (0, 1, 2)
STATE = AcceptorState(votes={("job", 1): Vote(Ballot(3, 1), Ballot(2, 0), Value(0, 4)),
                             ("job", 2): Vote(Ballot(5, 2))},
                      floors={"done": 9}, min_round=2)


def test_first_start_creates_fresh_files_once(tmp_path: Path) -> None:
    assert storage.initialize(Layout(tmp_path), 0) is True
    assert storage.load_acceptor(Layout(tmp_path).acceptor_file(0)) == AcceptorState()
    assert storage.load_proposer(Layout(tmp_path).proposer_file(0)) == ProposerState()
    storage.save_proposer(Layout(tmp_path).proposer_file(0), ProposerState(round=7))
    assert storage.initialize(Layout(tmp_path), 0) is False
    assert storage.load_proposer(Layout(tmp_path).proposer_file(0)).round == 7


def test_initialize_never_overwrites_a_file_that_exists(tmp_path: Path) -> None:
    Layout(tmp_path).paxos.mkdir()
    storage.save_acceptor(Layout(tmp_path).acceptor_file(1), STATE)
    assert storage.initialize(Layout(tmp_path), 1) is True
    assert storage.load_acceptor(Layout(tmp_path).acceptor_file(1)) == STATE


def test_an_acceptor_file_of_an_earlier_version_without_top_round_loads(tmp_path: Path) -> None:
    write_pair(tmp_path / "a", KIND_ACCEPTOR, json.dumps(
        {"format": 1, "min_round": 3, "floors": [], "votes": []}).encode())
    assert storage.load_acceptor(tmp_path / "a") == AcceptorState(min_round=3)


def test_states_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a"
    storage.save_acceptor(path, STATE)
    assert storage.load_acceptor(path) == STATE
    storage.save_proposer(tmp_path / "p", ProposerState(round=2**40))
    assert storage.load_proposer(tmp_path / "p") == ProposerState(round=2**40)


def test_a_lost_acceptor_file_is_not_recreated_and_the_slot_refuses_to_vote(
        tmp_path: Path) -> None:
    storage.initialize(Layout(tmp_path), 0)
    Layout(tmp_path).acceptor_file(0).unlink()
    assert storage.initialize(Layout(tmp_path), 0) is False
    state = storage.load_acceptor(Layout(tmp_path).acceptor_file(0))
    assert not state.usable and "missing" in state.reason and "repair" in state.reason
    node = Node(0, SLOTS, state, ProposerState())
    effects = node.receive(Prepare(1, Ballot(1, 1), (("job", 1),)), 0.0, random.Random(0))
    assert effects.acceptor_state is None
    assert [m.reason for _, m in effects.send] == [NackReason.UNUSABLE]


def _flip_a_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[HEADER_SIZE + 30] ^= 0x01  # inside the one copy a fresh file holds
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, words", [
    (_flip_a_payload_byte, "checksum"),
    (lambda p: p.write_bytes(b""), "truncated"),
    (lambda p: write_pair(p, KIND_ACCEPTOR, b"{not json"), "not-json"),
    (lambda p: write_pair(p, KIND_ACCEPTOR, json.dumps(
        {"format": 2, "min_round": 0, "floors": [], "votes": []}).encode()), "format"),
    (lambda p: write_pair(p, KIND_ACCEPTOR, json.dumps(
        {"format": 1, "min_round": 0, "floors": [], "votes": [["j", 1, [1, 0], [0, 0], 5]]}
    ).encode()), "value"),
    (lambda p: p.write_bytes(Layout(p.parent.parent).proposer_file(0).read_bytes()), "kind"),
])
def test_a_corrupt_acceptor_file_makes_the_slot_unusable_and_says_why(
        tmp_path: Path, damage: object, words: str) -> None:
    storage.initialize(Layout(tmp_path), 0)
    path = Layout(tmp_path).acceptor_file(0)
    damage(path)  # type: ignore[operator]
    state = storage.load_acceptor(path)
    assert not state.usable and words in state.reason


def test_a_lost_proposer_file_makes_the_slot_stop_proposing(tmp_path: Path) -> None:
    storage.initialize(Layout(tmp_path), 0)
    Layout(tmp_path).proposer_file(0).unlink()
    state = storage.load_proposer(Layout(tmp_path).proposer_file(0))
    assert not state.usable and "missing" in state.reason
    assert not Node(0, SLOTS, AcceptorState(), state).can_propose


def test_unusable_states_are_never_saved(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        storage.save_acceptor(tmp_path / "a", AcceptorState(usable=False, reason="x"))
    with pytest.raises(StoreError):
        storage.save_proposer(tmp_path / "p", ProposerState(usable=False, reason="x"))


def test_repair_rebuilds_from_a_majority_of_peers_above_every_round(tmp_path: Path) -> None:
    for slot in SLOTS:
        storage.initialize(Layout(tmp_path), slot)
    storage.save_acceptor(Layout(tmp_path).acceptor_file(0), STATE)
    storage.save_proposer(Layout(tmp_path).proposer_file(2), ProposerState(round=11))
    Layout(tmp_path).acceptor_file(1).unlink()
    Layout(tmp_path).proposer_file(1).unlink()
    done = storage.repair(Layout(tmp_path), 1, SLOTS)
    assert len(done) == 2
    acceptor = storage.load_acceptor(Layout(tmp_path).acceptor_file(1))
    assert acceptor.floors == {"done": 9, "job": 3} and acceptor.min_round == 12
    assert storage.load_proposer(Layout(tmp_path).proposer_file(1)).round == 5
    node = Node(1, SLOTS, acceptor, ProposerState())
    rng = random.Random(0)
    old = node.receive(Prepare(2, Ballot(11, 2), (("new", 1),)), 0.0, rng).send
    assert old[0][1].reason is NackReason.PROMISED
    fresh = node.receive(Prepare(2, Ballot(12, 2), (("new", 1), ("job", 2))), 0.0, rng).send
    assert isinstance(fresh[0][1], Promise) and fresh[1][1].reason is NackReason.CLOSED


def test_repair_refuses_without_a_majority_of_readable_peers(tmp_path: Path) -> None:
    for slot in SLOTS:
        storage.initialize(Layout(tmp_path), slot)
    Layout(tmp_path).acceptor_file(1).unlink()
    Layout(tmp_path).acceptor_file(2).unlink()
    with pytest.raises(StoreError, match="majority"):
        storage.repair(Layout(tmp_path), 1, SLOTS)
    assert not Layout(tmp_path).acceptor_file(1).exists()


def test_a_damaged_copy_is_not_skipped_even_if_the_other_copy_is_good(tmp_path: Path) -> None:
    storage.initialize(Layout(tmp_path), 0)
    path = Layout(tmp_path).acceptor_file(0)
    storage.save_acceptor(path, AcceptorState(min_round=3))  # copy 1 now newest, copy 0 older
    data = bytearray(path.read_bytes())
    slot = (len(data) - HEADER_SIZE) // 2
    data[HEADER_SIZE + slot + 20] ^= 0x01  # the newest copy, damaged after it was acknowledged
    path.write_bytes(bytes(data))
    state = storage.load_acceptor(path)
    assert not state.usable and "damaged" in state.reason

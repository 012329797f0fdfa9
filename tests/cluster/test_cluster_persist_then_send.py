"""The runner's Paxos shell persists acceptor state before any Promise or Accepted leaves.

Three `Consensus` shells (real files, an in-memory network) decide an
instance. Whenever a Promise or an Accepted is handed to the network, the
sender's acceptor file on disk must already hold a promise at least as high
as the message's ballot. `FlippedConsensus`, which sends first and persists
after, is the deliberately broken variant this test must catch.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest

from harunner.paxos import Accepted, Effects, Promise, Value, codec
from harunner.runner.consensus import Consensus
from harunner.store import paxos_files as storage
from harunner.store.layout import Layout

CLUSTER = "test-cluster"


class FlippedConsensus(Consensus):
    """Broken on purpose: sends a step's messages before persisting its state."""

    def apply(self, effects: Effects, now: float, rng: random.Random) -> dict:
        decided: dict = {}
        queue = deque([effects])
        while queue:
            step = queue.popleft()
            for destination, message in step.send:
                if destination == self.slot:
                    queue.append(self.node.receive(message, now, rng))
                else:
                    self.send(destination, codec.encode(message, self.cluster))
            if step.acceptor_state is not None:
                storage.save_acceptor(self.acceptor_path, step.acceptor_state)
            if step.proposer_state is not None:
                storage.save_proposer(self.proposer_path, step.proposer_state)
            decided.update(step.decided)
        return decided


def run_one_decision(tmp_path: Path, kind: type[Consensus]) -> list[str]:
    """Decide one instance; return every ordering violation seen on the wire."""
    network: deque[tuple[int, bytes]] = deque()
    violations: list[str] = []
    nodes: dict[int, Consensus] = {}

    def sender(slot: int) -> Callable[[int, bytes], bool]:
        def send(destination: int, frame: bytes) -> bool:
            message = codec.decode(frame, CLUSTER)
            if isinstance(message, Promise | Accepted):
                on_disk = storage.load_acceptor(nodes[slot].acceptor_path)
                keys = ([r.key for r in message.reports] if isinstance(message, Promise)
                        else list(message.keys))
                for key in keys:
                    vote = on_disk.votes.get(key)
                    if vote is None or vote.promised < message.ballot:
                        violations.append(f"slot {slot} sent {type(message).__name__} for "
                                          f"{key} before persisting it")
            network.append((destination, frame))
            return True
        return send

    slots = (0, 1, 2)
    for slot in slots:
        nodes[slot] = kind(slot, slots, Layout(tmp_path), CLUSTER, sender(slot), 0.2)
    rng = random.Random(7)
    decided = nodes[0].propose({("job-1", 2): Value(1, 1)}, 0.0, rng)
    while network:
        destination, frame = network.popleft()
        decided.update(nodes[destination].receive(frame, 0.0, rng))
    assert decided == {("job-1", 2): Value(1, 1)}
    return violations


def test_acceptor_state_is_durable_before_promise_or_accepted_is_sent(tmp_path):
    assert run_one_decision(tmp_path, Consensus) == []


def test_the_check_catches_a_shell_that_sends_before_it_persists(tmp_path):
    assert run_one_decision(tmp_path, FlippedConsensus) != []


@pytest.mark.parametrize("frame", [b"", b"garbage", b'{"v":1}', bytes(range(256))])
def test_a_malformed_peer_frame_is_counted_and_dropped(tmp_path, frame):
    node = Consensus(0, (0, 1, 2), Layout(tmp_path), CLUSTER, lambda d, f: True, 0.2)
    assert node.receive(frame, 0.0, random.Random(1)) == {}
    assert node.rejected == 1

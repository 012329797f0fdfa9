"""What one ownership decision costs in messages, round trips and bytes.

Runs the Paxos core in-process on a lossless network (FIFO, every message
encoded and decoded by the real codec) and reports, for 1 instance and for
1,000 instances proposed as one batch or one by one: messages delivered,
round trips until the proposer knows the decision (a round trip is a
request and its reply, so Prepare->Promise->Accept->Accepted is 2), and
bytes on the wire. Then the same with all three slots proposing at once
(duelling proposers) through the timed simulator, over 100 seeds.

    python bench/paxos_cost.py
"""

from __future__ import annotations

import random
import statistics
import sys
from collections import deque
from pathlib import Path

from harunner.paxos import AcceptorState, Node, ProposerState, Value, decode, encode

SLOTS = (0, 1, 2)
CLUSTER = "bench"


def decide(batches: list[list[tuple[str, int]]]) -> tuple[int, int, int]:
    """(messages, round trips to the proposer's decision, bytes) for proposals by slot 0."""
    rng = random.Random(0)
    nodes = {slot: Node(slot, SLOTS, AcceptorState(), ProposerState()) for slot in SLOTS}
    queue: deque[tuple[int, bytes, int]] = deque()
    messages = wire = hops_to_decide = 0
    for keys in batches:
        effects = nodes[0].propose({key: Value(0, 1) for key in keys}, 0.0, rng)
        queue.extend((target, encode(m, CLUSTER), 1) for target, m in effects.send)
    while queue:
        target, frame, hops = queue.popleft()
        messages, wire = messages + 1, wire + len(frame)
        effects = nodes[target].receive(decode(frame, CLUSTER), 0.0, rng)
        if effects.decided and target == 0:
            hops_to_decide = max(hops_to_decide, hops)
        queue.extend((dest, encode(m, CLUSTER), hops + 1) for dest, m in effects.send)
    assert all(nodes[s].decided(k) for s in SLOTS for b in batches for k in b)
    return messages, hops_to_decide // 2, wire


def duelling(instances: int, seeds: int = 100) -> tuple[float, float, float]:
    """Median messages, round trips and ballots when all three slots propose at once."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "paxos"))
    from sim_timed import CALM, ROUND_TRIP, TimedCluster

    messages, trips, ballots = [], [], []
    for seed in range(seeds):
        cluster = TimedCluster(seed, [(f"job-{i}", 1) for i in range(instances)],
                               checks=frozenset())
        cluster.weather = CALM
        cluster.next_crash = float("inf")
        cluster.start(SLOTS)
        result = cluster.run(heal_at=0.0, give_up_at=30.0)
        assert result.done_at is not None
        messages.append(result.messages)
        trips.append(result.done_at / ROUND_TRIP)
        ballots.append(len(result.ballots))
    return statistics.median(messages), statistics.median(trips), statistics.median(ballots)


def main() -> None:
    one = [[("job-0", 1)]]
    batch = [[(f"job-{i}", 1) for i in range(1000)]]
    singles = [[(f"job-{i}", 1)] for i in range(1000)]
    print("one proposer, lossless network, 3 voting slots (real codec):")
    for name, batches in [("1 instance", one), ("1,000 instances, one batch", batch),
                          ("1,000 instances, one by one", singles)]:
        messages, trips, wire = decide(batches)
        print(f"  {name:30s} {messages:6d} messages  {trips} round trips  {wire:9,d} bytes")
    print("three duelling proposers, calm network (1..5 ms), median of 100 seeds:")
    for instances in (1, 1000):
        messages, trips, ballots = duelling(instances)
        print(f"  {instances:5d} instance(s)  {messages:6.0f} messages  "
              f"{trips:5.1f} round trips of 10 ms  {ballots:.0f} ballots")


if __name__ == "__main__":
    main()

"""What the runner's shells report to harunner.metrics: failovers, decisions, lost ballots."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest

from harunner.paxos import Value
from harunner.runner import consensus as consensus_module
from harunner.runner import watch as watch_module
from harunner.runner.consensus import Consensus
from harunner.runner.watch import FailoverWatch
from harunner.store import JobRecord, JobState, Owner
from harunner.store.layout import Layout

CLUSTER = "test-cluster"


@pytest.fixture
def calls(monkeypatch) -> list[tuple]:
    """Every metrics call of the watch and the consensus shell, in order."""
    seen: list[tuple] = []
    for module in (watch_module, consensus_module):
        for name in ("failover", "failover_stage", "paxos_decided", "ballot_lost"):
            monkeypatch.setattr(module.metrics, name,
                                lambda *args, _n=name: seen.append((_n, *args)))
    return seen


def record(slot: int, incarnation: int, generation: int) -> JobRecord:
    return JobRecord("job-1", "jobs.a", {}, JobState.RUNNING, generation,
                     Owner(slot, incarnation))


def test_a_crash_counts_one_failover_timed_from_its_detection(calls):
    watch = FailoverWatch()
    watch.detected(0, 1, "exited", now=100.0)
    watch.took_over(record(0, 1, 1), record(1, 1, 2), now=100.04)
    assert calls == [("failover", "crash", pytest.approx(0.04))]


def test_a_hang_is_timed_from_the_owners_last_beat(calls):
    watch = FailoverWatch()
    watch.detected(2, 3, "hung (520 ms without a beat)", now=50.0)
    watch.took_over(record(2, 3, 4), record(0, 1, 5), now=50.1)
    assert calls == [("failover_stage", "detect", 0.52),
                     ("failover", "hang", pytest.approx(0.62))]


def test_an_owner_never_seen_dead_is_a_restart_without_latency(calls):
    watch = FailoverWatch()
    watch.detected(0, 1, "exited", now=1.0)
    watch.took_over(record(0, 2, 3), record(0, 3, 4), now=2.0)  # another incarnation
    watch.took_over(None, record(1, 1, 2), now=2.0)
    assert calls == [("failover", "restart", None), ("failover", "restart", None)]


def test_the_watch_keeps_a_bounded_number_of_deaths():
    watch = FailoverWatch()
    for incarnation in range(watch_module.KEEP + 50):
        watch.detected(0, incarnation, "exited", now=float(incarnation))
    assert len(watch.deaths) == watch_module.KEEP


def cluster(tmp_path: Path) -> tuple[dict[int, Consensus], deque[tuple[int, bytes]]]:
    network: deque[tuple[int, bytes]] = deque()

    def sender(slot: int) -> Callable[[int, bytes], bool]:
        return lambda destination, frame: network.append((destination, frame)) is None

    slots = (0, 1, 2)
    nodes = {s: Consensus(s, slots, Layout(tmp_path), CLUSTER, sender(s), 0.2) for s in slots}
    return nodes, network


def deliver(nodes: dict[int, Consensus], network: deque[tuple[int, bytes]]) -> None:
    rng = random.Random(3)
    while network:
        destination, frame = network.popleft()
        nodes[destination].receive(frame, 0.0, rng)


def test_a_decision_is_counted_once_by_its_proposer_not_by_every_learner(tmp_path, calls):
    nodes, network = cluster(tmp_path)
    nodes[0].propose({("job-1", 2): Value(1, 1), ("job-2", 2): Value(2, 1)}, 0.0,
                     random.Random(1))
    deliver(nodes, network)
    assert all(n.node.decided(("job-1", 2)) == Value(1, 1) for n in nodes.values())
    assert calls == [("paxos_decided", 2)]
    assert nodes[0].proposed == set()


def test_a_ballot_refused_by_several_acceptors_is_lost_once(tmp_path, calls):
    nodes, network = cluster(tmp_path)
    rng = random.Random(1)
    nodes[1].propose({("job-1", 2): Value(1, 1)}, 0.0, rng)  # ballot (1, slot 1)
    first = list(network)
    network.clear()
    nodes[0].propose({("job-1", 2): Value(0, 1)}, 0.0, rng)  # ballot (1, slot 0): lower
    second = list(network)
    network.clear()
    network.extend(first + second)  # every acceptor promises slot 1 before slot 0 asks
    deliver(nodes, network)
    assert calls.count(("ballot_lost",)) == 1
    assert ("paxos_decided", 1) in calls  # slot 1's proposal

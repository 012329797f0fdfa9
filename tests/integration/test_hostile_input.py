"""Hostile input against a running cluster: a flood of bad and forged frames harms nothing.

A hostile program of the same user (inside the trust boundary: it can reach
`run/`) connects to every endpoint it can: each runner's peer ROUTER (where
Paxos frames arrive), and each bus PUB with PUB, DEALER and XSUB sockets (it
can bind nothing). It sends more than 10,000 frames: random bytes,
truncations, another cluster's frames, frames above the size limit,
100-part messages, well-formed messages with absurd values (rounds 2^53 and
2^62, a Nack promising round 2^53 for every plausible ballot, generations
2^53 and -1, slots outside the cluster, the old bare "decided" claim, a lone
Accept naming another owner for the running job's next generation) and
replays of old instances. Then: no runner died or was killed as hung, the
job that ran through the flood finished correctly and never moved, memory
stayed bounded, and the cluster still fails over at generation + 1.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import zmq

from harunner.net import sockets
from harunner.paxos import Accept, Accepted, Ballot, Nack, NackReason, Prepare, Promise, Value
from harunner.paxos import encode as paxos_encode
from harunner.paxos.messages import Report
from harunner.paxos.schema import MAX_ROUND, ROUND_STEP
from harunner.store import JobState, meta
from harunner.store.layout import SUPERVISOR

from .conftest import Cluster, alive, poll

pytestmark = pytest.mark.integration
SEND_TIMEOUT_MS = 10_000


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


class Hostile:
    """The hostile program's sockets; counts every frame it hands to libzmq."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.sockets: list[zmq.Socket] = []
        self.sent = 0

    def connect(self, path: Path, kind: int = zmq.DEALER) -> zmq.Socket:
        socket = self.context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        socket.connect(sockets.url(path))
        self.sockets.append(socket)
        return socket

    def send(self, socket: zmq.Socket, frames: list[bytes]) -> None:
        for frame in frames:
            socket.send(frame)
            self.sent += 1

    def try_send(self, socket: zmq.Socket, frames: list[bytes]) -> None:
        """Send without waiting: for sockets whose handshake the endpoint refuses."""
        for frame in frames:
            try:
                socket.send(frame, flags=zmq.NOBLOCK)
                self.sent += 1
            except zmq.Again:
                return

    def close(self) -> None:
        for socket in self.sockets:
            socket.close(linger=0)
        self.context.term()


def garbage(rng: random.Random, valid: list[bytes], cluster: str) -> list[bytes]:
    """Random bytes, truncations, flipped bytes and frames of another cluster."""
    frames = [rng.randbytes(rng.randrange(600)) for _ in range(1_000)]
    for _ in range(500):
        frame = rng.choice(valid)
        frames.append(frame[:rng.randrange(len(frame))])
    for _ in range(300):
        frame = bytearray(rng.choice(valid))
        frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
        frames.append(bytes(frame))
    frames += [frame.replace(cluster.encode(), b"another-cluster") for frame in valid] * 2
    frames += [b"[" * 50_000, b"{}" * 100_000, json.dumps([0] * 60_000).encode()]
    return frames


def forged(target: int, job: str, generation: int, cluster: str) -> list[bytes]:
    """Well-formed frames with absurd values, bare claims and replays (about 1,900)."""
    other = (target + 1) % 3
    next_key, old_keys = (job, generation + 1), [(job, 1), (job, generation)]
    messages: list[object] = []
    for round_ in range(1, 301):  # a Nack promising 2^53 for every plausible ballot of ours
        messages += [Nack(other, Ballot(round_, target), (next_key,), Ballot(2**53, other),
                          NackReason.PROMISED),
                     Nack(other, Ballot(round_, target), (next_key,), Ballot(MAX_ROUND, other),
                          NackReason.PROMISED)]
    for round_ in range(1, 101):
        messages += [
            Accept(other, Ballot(round_, other), ((next_key, Value(other, 1)),)),  # lone Accept
            Accepted(other, Ballot(round_, other), ((next_key, Value(other, 1)),)),  # one claim
            Accepted(7, Ballot(round_, 7), ((next_key, Value(7, 1)),)),  # from no slot
            Promise(other, Ballot(round_, target), (Report(next_key, Ballot(0, 0), None),)),
            Prepare(1023, Ballot(round_, 1023), (next_key,)),
            *(Accept(other, Ballot(round_, other), ((key, Value(other, 9)),)) for key in old_keys),
            *(Prepare(other, Ballot(round_, other), (key,)) for key in old_keys)]
    messages += [Prepare(other, Ballot(2**53, other), (next_key,)),
                 Prepare(other, Ballot(MAX_ROUND, other), (next_key,)),
                 Prepare(other, Ballot(ROUND_STEP, other), (next_key,)),  # the window's edge
                 Prepare(other, Ballot(5, other), ((job, 2**53),)),
                 Accept(other, Ballot(MAX_ROUND, other), ((next_key, Value(other, 2**53)),))]
    frames = [paxos_encode(m, cluster) for m in messages]  # type: ignore[arg-type]
    claim = paxos_encode(Accepted(other, Ballot(1, other), ((next_key, Value(other, 1)),)),
                         cluster)
    frames += [claim.replace(b'"accepted"', b'"decided"').replace(b'"proposals"',
                                                                  b'"decisions"')] * 50
    frames += [claim.replace(b'"sender":%d' % other, b'"sender":-1')] * 20
    frames += [claim.replace(b",%d," % (generation + 1), b",-1,")] * 20
    return frames


def flood(cluster: Cluster, job: str, generation: int) -> int:
    """Send the whole flood; the number of frames handed to libzmq."""
    rng = random.Random(int(os.environ.get("HARUNNER_SEED", "1111")))
    cluster_id = meta.cluster_id(cluster.layout)
    hostile = Hostile()
    try:
        for slot in range(cluster.config.slots):
            path = cluster.layout.peer(slot)
            frames = forged(slot, job, generation, cluster_id)
            frames += garbage(rng, frames[:200], cluster_id)
            rng.shuffle(frames)
            hostile.send(hostile.connect(path), frames)
            many = hostile.connect(path)
            for _ in range(100):
                many.send_multipart([b"part"] * 100)
                hostile.sent += 1
            hostile.send(hostile.connect(path), [rng.randbytes(300_000) for _ in range(10)])
            hostile.try_send(hostile.connect(path), [b"x" * 2_000_000] * 5)
        buses = [cluster.layout.bus(s) for s in range(cluster.config.slots)]
        for path in [*buses, cluster.layout.bus(SUPERVISOR)]:
            for kind in (zmq.PUB, zmq.DEALER):
                hostile.try_send(hostile.connect(path, kind), [rng.randbytes(200)] * 200)
            hostile.try_send(hostile.connect(path, zmq.XSUB),
                             [b"\x01" + rng.randbytes(100_000) for _ in range(20)])
        time.sleep(0.5)  # let libzmq hand the last frames over before the sockets close
        return hostile.sent
    finally:
        hostile.close()


def events(cluster: Cluster) -> list[dict]:
    path = cluster.layout.events
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_flood_of_hostile_frames_harms_nothing_and_failover_still_works(make_cluster):
    cluster = make_cluster()
    cluster.start()
    runners = cluster.runner_pids()
    processes = [*runners.values(), cluster.supervisor.pid]  # type: ignore[union-attr]
    job = cluster.submit("itjobs.ticker", to=250, delay=0.02)
    poll(lambda: cluster.checkpoint_i(job) >= 5, 30, "the job to start")
    generation = cluster.record(job).generation
    time.sleep(0.5)  # a settled baseline: caches, the first compaction
    before = {pid: rss_mb(pid) for pid in processes}
    started = time.monotonic()
    sent = flood(cluster, job, generation)
    seconds = time.monotonic() - started
    after = {pid: rss_mb(pid) for pid in processes}
    print(f"\nhostile flood: {sent} frames in {seconds:.1f} s; RSS MB before/after: "
          + ", ".join(f"{pid}: {before[pid]:.0f}/{after[pid]:.0f}" for pid in processes))
    assert sent >= 10_000

    final = cluster.finished(job, timeout=60)
    assert final.state is JobState.SUCCEEDED and final.result["count"] == 250, final
    assert final.generation == generation, "a forged frame moved the job"
    assert all(alive(pid) for pid in processes)
    assert cluster.runner_pids() == runners
    assert not [e for e in events(cluster) if e.get("event") in ("killed_hung", "runner_exit")]
    for pid in processes:
        assert rss_mb(pid) < 2 * before[pid] + 30, (pid, before[pid], rss_mb(pid))
    cluster.wait_up()

    second = cluster.submit("itjobs.ticker", to=60, delay=0.01)
    poll(lambda: cluster.checkpoint_i(second) >= 5, 30, "the second job to start")
    generation = cluster.record(second).generation
    _, owner = cluster.owner_pid(second)
    os.kill(owner, signal.SIGKILL)
    final = cluster.finished(second, timeout=60)
    assert final.state is JobState.SUCCEEDED and final.result["count"] == 60
    assert final.generation == generation + 1

"""Real ZeroMQ sockets under a flood: bounded queues, bounded frames, bounded reads per call."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from harunner.net import bus, sockets
from harunner.net.sockets import BindGuard, PeerLink, Publisher, Subscriber
from harunner.paxos import codec
from harunner.polling import wait_until


@pytest.fixture
def run_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="hnet-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def link(context: zmq.Context, run_dir: Path) -> Iterator[PeerLink]:
    guard = BindGuard()
    peer = PeerLink(context, guard, 0, {0: run_dir / "peer-0.sock", 1: run_dir / "peer-1.sock"})
    yield peer
    peer.close()
    guard.release()


def hostile(context: zmq.Context, path: Path, kind: int = zmq.DEALER) -> zmq.Socket:
    """A socket of a hostile program, connected to `path`."""
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 100_000)
    socket.connect(sockets.url(path))
    return socket


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def read_all(link: PeerLink, limit: int | None = None) -> list[bytes]:
    """Drain until empty, one call at a time; each call must respect its limit."""
    frames: list[bytes] = []
    while True:
        batch = list(link.drain() if limit is None else link.drain(limit))
        assert len(batch) <= (sockets.PEER_DRAIN_LIMIT if limit is None else limit)
        if not batch:
            return frames
        frames += batch


def test_every_socket_has_bounded_queues_and_frames(context, run_dir, link) -> None:
    guard = BindGuard()
    publisher = Publisher(context, guard, run_dir / "bus-0.sock")
    subscriber = Subscriber(context, [run_dir / "bus-0.sock"])
    try:
        for socket, frame, hwm in ((publisher.socket, sockets.SUBSCRIPTION_MAX, sockets.BUS_HWM),
                                   (subscriber.socket, bus.MAX_BUS_FRAME, sockets.BUS_HWM),
                                   (link.inbound, codec.MAX_FRAME, sockets.PEER_HWM),
                                   (link.outbound, codec.MAX_FRAME, sockets.PEER_HWM)):
            assert socket.getsockopt(zmq.MAXMSGSIZE) == frame
            assert socket.getsockopt(zmq.RCVHWM) == hwm == socket.getsockopt(zmq.SNDHWM)
            assert socket.getsockopt(zmq.LINGER) >= 0
        assert bus.MAX_BUS_FRAME <= 4096 and codec.MAX_FRAME < 1024 * 1024
    finally:
        publisher.close()
        subscriber.close()
        guard.release()


def test_a_flood_is_read_a_bounded_number_of_frames_per_call(context, run_dir, link) -> None:
    sender = hostile(context, run_dir / "peer-0.sock")
    for i in range(2_000):
        sender.send(b"flood %d" % i)
    wait_until(lambda: link.inbound.poll(0), 5, "the first frame")
    first = list(link.drain())
    assert len(first) == sockets.PEER_DRAIN_LIMIT
    rest = []
    wait_until(lambda: (rest.extend(read_all(link)), len(first) + len(rest) >= 1_000)[1], 10,
               "the flood to be read")
    assert first[0] == b"flood 0"
    sender.close()


def test_a_frame_above_the_limit_never_reaches_the_process(context, run_dir, link) -> None:
    big = hostile(context, run_dir / "peer-0.sock")
    big.send(b"x" * (codec.MAX_FRAME + 1))
    small = hostile(context, run_dir / "peer-0.sock")
    small.send(b"after")
    wait_until(lambda: link.inbound.poll(0), 5, "the small frame")
    assert read_all(link) == [b"after"]
    big.close()
    small.close()


def test_a_hundred_part_message_is_dropped_and_counted(context, run_dir, link) -> None:
    sender = hostile(context, run_dir / "peer-0.sock")
    sender.send_multipart([b"part"] * 100)
    sender.send(b"whole")
    wait_until(lambda: link.inbound.poll(0), 5, "a frame")
    got: list[bytes] = []
    wait_until(lambda: (got.extend(read_all(link)), got)[1], 5, "the whole frame")
    assert got == [b"whole"] and link.malformed == 1
    sender.close()


def test_the_bus_subscriber_reads_a_bounded_number_per_call(context, run_dir) -> None:
    guard = BindGuard()
    publisher = Publisher(context, guard, run_dir / "bus-1.sock")
    subscriber = Subscriber(context, [run_dir / "bus-1.sock"])
    try:
        frame = bus.encode(bus.Poke("x"), "c")
        wait_until(lambda: (publisher.publish(frame), subscriber.socket.poll(10))[1], 5,
                   "the subscription to take")
        list(subscriber.drain(10_000))
        for _ in range(900):
            publisher.publish(frame)
        wait_until(lambda: subscriber.socket.poll(0), 5, "a frame")
        assert len(list(subscriber.drain())) <= sockets.BUS_DRAIN_LIMIT
    finally:
        publisher.close()
        subscriber.close()
        guard.release()


def test_a_hostile_socket_that_connects_to_a_bus_publisher_cannot_send(context, run_dir) -> None:
    """A PUB or DEALER connected to a bus PUB is refused by the handshake; the bus carries on."""
    guard = BindGuard()
    publisher = Publisher(context, guard, run_dir / "bus-2.sock")
    subscriber = Subscriber(context, [run_dir / "bus-2.sock"])
    hostiles = [hostile(context, run_dir / "bus-2.sock", kind) for kind in (zmq.PUB, zmq.DEALER)]
    try:
        for socket in hostiles:
            for _ in range(100):
                try:
                    socket.send(b"x" * 1000, flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
        frame = bus.encode(bus.Poke("x"), "c")
        wait_until(lambda: (publisher.publish(frame), subscriber.socket.poll(10))[1], 5,
                   "the bus to deliver")
        assert set(subscriber.drain()) == {frame}
    finally:
        for socket in hostiles:
            socket.close()
        publisher.close()
        subscriber.close()
        guard.release()


GREEDY = """
import os, random, sys, time, zmq
socket = zmq.Context().socket(zmq.XSUB)
socket.connect(sys.argv[1])
rng = random.Random(0)
for i in range(1000):
    socket.send(b"\\x01" + rng.randbytes(4000))
print("sent", flush=True)
time.sleep(float(sys.argv[2]))
os._exit(0)  # libzmq frees a long subscription recursively: it would overflow the stack
"""


def test_a_huge_subscription_drops_the_subscriber_not_the_publisher(context, run_dir) -> None:
    """libzmq keeps a subscription byte by byte in a trie (~50 bytes a byte, freed by a
    recursion as deep as it is long): before the limit, 4 MB of subscriptions cost the
    publisher 200 MB, and dropping that subscriber could overflow its stack."""
    guard = BindGuard()
    publisher = Publisher(context, guard, run_dir / "bus-3.sock")
    subscriber = Subscriber(context, [run_dir / "bus-3.sock"])
    frame = bus.encode(bus.Poke("x"), "c")
    greedy = None
    try:
        wait_until(lambda: (publisher.publish(frame), subscriber.socket.poll(10))[1], 5,
                   "the bus to deliver")
        before = rss_mb()
        greedy = subprocess.Popen([sys.executable, "-c", GREEDY, sockets.url(
            run_dir / "bus-3.sock"), "3"], stdout=subprocess.PIPE)
        assert greedy.stdout is not None and greedy.stdout.readline() == b"sent\n"
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # the publisher reads subscriptions when it sends
            publisher.publish(frame)
            subscriber.socket.poll(10)
        assert rss_mb() - before < 20
    finally:
        if greedy is not None:
            greedy.kill()
            greedy.wait()
        publisher.close()
        subscriber.close()
        guard.release()


def test_a_subscriber_with_topics_gets_only_those_types(context, run_dir) -> None:
    """A runner subscribes to every bus type but the supervisor's beat (read only by
    `harunner status`): the publisher never sends it those frames."""
    guard = BindGuard()
    publisher = Publisher(context, guard, run_dir / "bus-9.sock")
    wanted = Subscriber(context, [run_dir / "bus-9.sock"],
                        bus.topics(bus.Beat, bus.ExitNotice, bus.OwnerChange, bus.Poke))
    everything = Subscriber(context, [run_dir / "bus-9.sock"])
    messages = [bus.SupervisorBeat(7, 1), bus.Beat(0, 1, 7, "primary", 1),
                bus.ExitNotice(1, 8, -9), bus.OwnerChange("j", 2, 0, 1), bus.Poke("x")]
    try:
        def heard(subscriber: Subscriber) -> list[object]:
            return [bus.decode(frame, "c") for frame in subscriber.drain()]

        got: list[object] = []
        wait_until(lambda: (publisher.publish(bus.encode(bus.Poke("join"), "c")),
                            got.extend(heard(wanted)), got)[2], 5, "the subscription")
        all_got: list[object] = []
        wait_until(lambda: (publisher.publish(bus.encode(bus.Poke("join"), "c")),
                            all_got.extend(heard(everything)), all_got)[2], 5, "the other")
        for message in messages:
            publisher.publish(bus.encode(message, "c"))
        seen: list[object] = []
        wait_until(lambda: (seen.extend(heard(wanted)), bus.Poke("x") in seen)[1], 5, "the poke")
        full: list[object] = []
        wait_until(lambda: (full.extend(heard(everything)), bus.Poke("x") in full)[1], 5,
                   "every frame")
        assert bus.SupervisorBeat(7, 1) not in seen and bus.SupervisorBeat(7, 1) in full
        assert all(m in seen for m in messages[1:])
    finally:
        publisher.close()
        wanted.close()
        everything.close()
        guard.release()

"""Wake-up datagrams: delivered when a runner listens, harmless when none does."""

from __future__ import annotations

import select
from pathlib import Path

import pytest

from harunner.store.wakeup import MAX_DRAIN, RING_QUIET, WakeSocket, ring_first, sender, wake


def test_a_wake_reaches_a_listening_socket_and_makes_it_readable(tmp_path: Path) -> None:
    listener = WakeSocket(tmp_path / "wake-0.sock")
    try:
        assert select.select([listener], [], [], 0)[0] == []
        assert wake([tmp_path / "wake-0.sock"]) == 1
        assert select.select([listener], [], [], 1.0)[0] == [listener]
        assert listener.drain(0.0) == 1
        assert listener.drain(0.0) == 0
    finally:
        listener.close()
    assert not (tmp_path / "wake-0.sock").exists()


def test_waking_nobody_never_raises(tmp_path: Path) -> None:
    stale = tmp_path / "wake-1.sock"
    stale.write_text("not a socket")
    assert wake([tmp_path / "wake-0.sock", stale]) == 0


def test_a_flood_is_read_in_bounded_turns(tmp_path: Path) -> None:
    listener = WakeSocket(tmp_path / "wake-0.sock")
    try:
        sent = sum(wake([listener.path]) for _ in range(MAX_DRAIN * 3))
        assert sent > 0  # the kernel bounds the queue (net.unix.max_dgram_qlen); the rest fail
        assert listener.drain(0.0, limit=2) == min(sent, 2)
        assert listener.drain(0.0) == min(sent - 2, MAX_DRAIN)
    finally:
        listener.close()


def test_binding_replaces_a_stale_socket_file(tmp_path: Path) -> None:
    path = tmp_path / "wake-0.sock"
    first = WakeSocket(path)
    first.socket.close()  # died without cleaning up: the file stays
    second = WakeSocket(path)
    try:
        assert wake([path]) == 1 and second.drain(0.0) == 1
    finally:
        second.close()


def test_after_a_ring_the_socket_is_quiet_for_a_window_and_keeps_what_came(
        tmp_path: Path) -> None:
    """A stream of rings is taken in windows: during one the socket is not waited on
    (its deadline says when to look again), and the datagrams that came meanwhile are
    read when it ends, so a ring is delayed at most RING_QUIET, never lost."""
    listener = WakeSocket(tmp_path / "wake-0.sock")
    try:
        assert listener.fds(10.0) == [listener.fileno()] and listener.deadline(10.0) is None
        assert listener.drain(10.0) == 0
        assert listener.fds(10.0) == [listener.fileno()]  # nothing read: no window
        wake([listener.path])
        assert listener.drain(10.0) == 1
        assert listener.fds(10.0) == [] and listener.deadline(10.0) == 10.0 + RING_QUIET
        wake([listener.path])
        wake([listener.path])
        end = 10.0 + RING_QUIET
        assert listener.fds(end - 0.001) == []
        assert listener.fds(end) == [listener.fileno()] and listener.deadline(end) is None
        assert select.select([listener], [], [], 1.0)[0] == [listener]
        assert listener.drain(end) == 2
    finally:
        listener.close()


def test_a_client_rings_the_first_runner_that_takes_it_and_the_ring_carries_its_hops(
        tmp_path: Path) -> None:
    paths = [tmp_path / f"wake-{slot}.sock" for slot in range(3)]
    first, second = WakeSocket(paths[1]), WakeSocket(paths[2])  # slot 0 is down
    try:
        assert ring_first(paths) == 1
        assert second.drain(0.0) == 0  # only one runner is rung
        assert first.drain(0.0) == 1 and first.hops == 0
        ring_first(paths[1:], hops=2)
        ring_first(paths[1:], hops=1)
        assert first.drain(1.0) == 2 and first.hops == 1  # the fewest hops of the drain
        first.socket.close()
        assert ring_first(paths) == 2  # a socket nobody reads any more: the next one
    finally:
        first.close()
        second.close()
    assert ring_first(paths) is None  # nobody listens: never raises


def test_a_runner_that_does_not_read_its_rings_fills_its_queue_and_the_next_is_rung(
        tmp_path: Path) -> None:
    """A stopped runner's socket takes rings until the kernel's queue is full
    (net.unix.max_dgram_qlen); after that the client rings the next slot."""
    queue = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
    if queue >= MAX_DRAIN * 4:
        pytest.skip(f"net.unix.max_dgram_qlen is {queue}: the queue would not fill")
    paths = [tmp_path / f"wake-{slot}.sock" for slot in range(2)]
    stopped, live = WakeSocket(paths[0]), WakeSocket(paths[1])
    out = sender()
    try:
        rung = [ring_first(paths, 0, out) for _ in range(MAX_DRAIN * 4)]
        assert rung[0] == 0 and 1 in rung
        assert rung.index(1) == rung.count(0)  # the first slot until its queue was full
        assert live.drain(0.0) > 0
    finally:
        out.close()
        stopped.close()
        live.close()


def test_a_forged_datagram_means_only_look_again(tmp_path: Path) -> None:
    listener = WakeSocket(tmp_path / "wake-0.sock")
    out = sender()
    try:
        for data in (b"", b"x", b"w\xff\xff\xff", b"\x00" * 16):
            out.sendto(data, str(listener.path))
        assert listener.drain(0.0) == 4 and listener.hops == 0  # b"", b"x": no hop byte
    finally:
        out.close()
        listener.close()

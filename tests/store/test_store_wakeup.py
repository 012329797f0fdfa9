"""Wake-up datagrams: delivered when a runner listens, harmless when none does."""

from __future__ import annotations

import select
from pathlib import Path

from harunner.store.wakeup import MAX_DRAIN, WakeSocket, wake


def test_a_wake_reaches_a_listening_socket_and_makes_it_readable(tmp_path: Path) -> None:
    listener = WakeSocket(tmp_path / "wake-0.sock")
    try:
        assert select.select([listener], [], [], 0)[0] == []
        assert wake([tmp_path / "wake-0.sock"]) == 1
        assert select.select([listener], [], [], 1.0)[0] == [listener]
        assert listener.drain() == 1
        assert listener.drain() == 0
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
        assert listener.drain(limit=2) == min(sent, 2)
        assert listener.drain() == min(sent - 2, MAX_DRAIN)
    finally:
        listener.close()


def test_binding_replaces_a_stale_socket_file(tmp_path: Path) -> None:
    path = tmp_path / "wake-0.sock"
    first = WakeSocket(path)
    first.socket.close()  # died without cleaning up: the file stays
    second = WakeSocket(path)
    try:
        assert wake([path]) == 1 and second.drain() == 1
    finally:
        second.close()

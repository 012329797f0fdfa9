"""The change feed's doorbell: wake-up datagrams that tell the runners to look at the store now.

A client that has just stored a job durably sends one datagram to each
runner's `run/wake-<slot>.sock` (a Unix datagram socket in the 0700 run/
folder); the runner that receives it looks at the store's change feed now
instead of at its next periodic look. A datagram carries nothing the runner
trusts: any bytes mean only "look again", so a forged or flooding sender can
at worst make a runner look more often, and each turn reads a bounded number
of datagrams and counts them as one wake-up.

Invariants: sending never blocks and never fails the caller (a runner that is
down, a full queue or a missing socket are ignored: the periodic look is the
safety net); it belongs to the store because it says only "the store changed";
the runner binds its socket only while it holds its slot lock,
so removing a stale socket file can never steal a live runner's socket.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable
from pathlib import Path

MAX_DRAIN = 64  # datagrams read per turn; the rest wait (each is only "look again")
# After a drain the socket is not waited on for this long: the rings of a stream of
# submissions are taken together, one look and one claim per window, not one per job.
RING_QUIET = 0.005
# A standby waits longer: a trickle of submissions goes to the primary, whose claims and
# finishes then batch; a standby joins in once the primary leaves jobs waiting.
RING_QUIET_STANDBY = 0.02
DATAGRAM = b"w"


class QuietWindow:
    """A source that rang is not waited on until the window it opened ends: what comes
    meanwhile waits there and is taken at the window's end (`deadline`), all at once."""

    def __init__(self) -> None:
        self.until = 0.0

    def open(self, now: float, length: float) -> None:
        self.until = now + length

    def quiet(self, now: float) -> bool:
        return now < self.until

    def deadline(self, now: float) -> float | None:
        """When the open window ends (the loop looks at the source then), if one is open."""
        return self.until if self.quiet(now) else None


class WakeSocket:
    """The receiving end, bound by one runner for its whole life."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self.socket.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self.window = QuietWindow()

    def fds(self, now: float) -> list[int]:
        """The socket to wait on: none while quiet (its datagrams wait for the window's end)."""
        return [] if self.window.quiet(now) else [self.socket.fileno()]

    def deadline(self, now: float) -> float | None:
        """When a quiet window ends, if one is open: the loop looks at the socket then."""
        return self.window.deadline(now)

    def fileno(self) -> int:
        return self.socket.fileno()

    def drain(self, now: float, limit: int = MAX_DRAIN, quiet: float = RING_QUIET) -> int:
        """Read up to `limit` waiting datagrams without blocking; how many there were. If
        any, the socket is quiet for `quiet` seconds from `now` (see `fds`)."""
        count = 0
        for _ in range(limit):
            try:
                self.socket.recv(16)
            except (BlockingIOError, InterruptedError):
                break
            count += 1
        if count:
            self.window.open(now, quiet)
        return count

    def close(self) -> None:
        self.socket.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def wake(paths: Iterable[Path]) -> int:
    """Send one wake-up datagram to each path; how many were delivered (errors ignored)."""
    delivered = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for path in paths:
            try:
                sender.sendto(DATAGRAM, str(path))
            except OSError:  # no runner there, a full queue, a stale socket file
                continue
            delivered += 1
    return delivered

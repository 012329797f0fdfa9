"""The change feed's doorbell: wake-up datagrams that tell the runners to look at the store now.

A client that has just stored jobs durably rings one runner: it sends one
datagram to the first `run/wake-<slot>.sock` (a Unix datagram socket in the
0700 run/ folder) that takes it, slot 0 first (`ring_first`). The runner that
receives it looks at the store's change feed and claims now instead of at
its next periodic look; when its claim fills the room it asked for, or every
worker it has is busy with nothing queued, it passes the ring on to the next
slot (`pass_on`; the rule is `Scheduler.rung`, `to_pass` and `won`), so work
spreads to the other runners only when one runner leaves jobs waiting, and a
trickle of submissions costs one runner's turn, not every runner's. Each
datagram carries its hop count (one byte after the `w`); a ring goes at most
`slots - 1` hops, so rings never circle.

A datagram carries nothing the runner trusts: any bytes mean only "look
again", the hop count only bounds the passing on, so a forged or flooding
sender can at worst make runners look (and pass on) more often, and each turn
reads a bounded number of datagrams and counts them as one wake-up. A runner
that does not read its socket (stopped, hung) fills the kernel's queue
(net.unix.max_dgram_qlen datagrams), after which `ring_first` rings the next
slot; the jobs rung meanwhile are found by the other runners' periodic look.

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
from collections.abc import Iterable, Sequence
from pathlib import Path

from harunner.store.layout import Layout

MAX_DRAIN = 64  # datagrams read per turn; the rest wait (each is only "look again")
# After a drain the socket is not waited on for this long: the rings of a stream of
# submissions are taken together, one look and one claim per window, not one per job.
RING_QUIET = 0.005
DATAGRAM = b"w"  # then one byte: how many runners passed this ring on (0 from a client)
MAX_HOPS = 255


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
        self.hops = 0  # the fewest hops among the datagrams of the last drain that read any

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
        count, hops = 0, MAX_HOPS
        for _ in range(limit):
            try:
                data = self.socket.recv(16)
            except (BlockingIOError, InterruptedError):
                break
            count += 1
            hops = min(hops, data[1] if len(data) > 1 else 0)
        if count:
            self.window.open(now, quiet)
            self.hops = hops
        return count

    def close(self) -> None:
        self.socket.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def sender() -> socket.socket:
    """An unbound, non-blocking socket to send rings from (a client keeps one)."""
    made = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    made.setblocking(False)
    return made


def wake(paths: Iterable[Path]) -> int:
    """Send one wake-up datagram to each path; how many were delivered (errors ignored)."""
    with sender() as out:
        return sum(_send(out, path, 0) for path in paths)


def ring_first(paths: Sequence[Path], hops: int = 0, out: socket.socket | None = None
               ) -> int | None:
    """Ring the first of `paths` that takes the datagram; its index (None: nobody took it).
    `out`: a socket from `sender()` to send from (else one is made for this call)."""
    if out is None:
        with sender() as made:
            return ring_first(paths, hops, made)
    for index, path in enumerate(paths):
        if _send(out, path, hops):
            return index
    return None


def pass_on(layout: Layout, slot: int, slots: int, hops: int | None) -> None:
    """Slot `slot` passes a ring on (`hops`: how far it has come, counting this pass; None:
    nothing to pass): to the next slot after it that takes it, while hops < `slots`."""
    if hops is not None and hops < slots:
        ring_first([layout.wake((slot + k) % slots) for k in range(1, slots)], hops)


def _send(out: socket.socket, path: Path, hops: int) -> int:
    try:
        out.sendto(DATAGRAM + bytes((min(max(hops, 0), MAX_HOPS),)), str(path))
    except OSError:  # no runner there, a full queue, a stale socket file
        return 0
    return 1

"""Pidfds on the peer runners: a peer's exit wakes this runner's loop with no middleman.

One pidfd per slot, for the newest pid seen beating from it; the fds are
polled with the bus sockets and checked without blocking after each wait.
"""

from __future__ import annotations

import os
import select


class PeerWatch:
    """Holds a pidfd on each peer runner process seen beating."""

    def __init__(self) -> None:
        self.pidfds: dict[tuple[int, int], int] = {}  # (slot, pid) -> pidfd

    def watch(self, slot: int, pid: int) -> None:
        """Watch `pid` of `slot` (and stop watching the slot's older process)."""
        if (slot, pid) in self.pidfds:
            return
        for old in [k for k in self.pidfds if k[0] == slot]:
            os.close(self.pidfds.pop(old))
        try:
            self.pidfds[(slot, pid)] = os.pidfd_open(pid)
        except OSError:  # already gone (its exit notice tells), or not ours to watch
            pass

    def fds(self) -> list[int]:
        return list(self.pidfds.values())

    def exited(self) -> list[tuple[int, int]]:
        """The (slot, pid) of every watched peer that exited since the last call."""
        if not self.pidfds:
            return []
        readable = set(select.select(self.fds(), [], [], 0)[0])
        gone = [key for key, fd in self.pidfds.items() if fd in readable]
        for key in gone:
            os.close(self.pidfds.pop(key))
        return gone

    def close(self) -> None:
        for fd in self.pidfds.values():
            os.close(fd)
        self.pidfds.clear()

"""Pidfds on the peer runners: a peer's exit wakes this runner's loop with no middleman.

One pidfd per slot, for the newest pid seen beating from it (`harunner.pidfds`);
the fds are polled with the sockets and checked without blocking after each wait.
A peer already gone when it is first watched is reported exited, never lost.
"""

from __future__ import annotations

from harunner.pidfds import PidWatch


class PeerWatch:
    """Holds a pidfd on each peer runner process seen beating, by slot."""

    def __init__(self) -> None:
        self._watch: PidWatch[int] = PidWatch()

    def watch(self, slot: int, pid: int) -> None:
        """Watch `pid` of `slot` (and stop watching the slot's older process)."""
        if self._watch.pid(slot) != pid:
            self._watch.watch(slot, pid)

    def fds(self) -> list[int]:
        return self._watch.fds()

    def due(self, ready: set[object]) -> bool:
        """Whether `exited` has news: a pidfd in `ready`, or a peer gone before it was watched."""
        fds = self._watch.fds()
        return bool(ready.intersection(fds)) or len(fds) != len(self._watch.keys())

    def exited(self) -> list[tuple[int, int]]:
        """The (slot, pid) of every watched peer that exited since the last call."""
        pids = {slot: self._watch.pid(slot) for slot in self._watch.keys()}
        return [(slot, pid) for slot in self._watch.exited()
                if (pid := pids[slot]) is not None]

    def close(self) -> None:
        self._watch.close()

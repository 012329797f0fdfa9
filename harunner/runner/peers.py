"""What a runner watches of its peers: pidfds on them, and their deaths for the metrics.

One pidfd per slot, for the newest pid seen beating from it (`harunner.pidfds`);
the fds are polled with the sockets and checked without blocking after each wait.
A peer already gone when it is first watched is reported exited, never lost.
Deaths the core declared and the take-overs that followed go to a
`harunner.runner.watch.FailoverWatch` (failover causes and latencies).
"""

from __future__ import annotations

from harunner.pidfds import PidWatch
from harunner.runner.watch import FailoverWatch
from harunner.store import JobRecord


class PeerWatch:
    """Holds a pidfd on each peer runner process seen beating, by slot."""

    def __init__(self) -> None:
        self._watch: PidWatch[int] = PidWatch()
        self.failovers = FailoverWatch()

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

    def detected(self, slot: int, incarnation: int, reason: str, now: float) -> None:
        """The core declared (slot, incarnation) dead for `reason` (for the metrics)."""
        self.failovers.detected(slot, incarnation, reason, now)

    def took_over(self, before: JobRecord | None, after: JobRecord, now: float) -> None:
        """This runner raised `after` from `before`, as it knew it (for the metrics)."""
        self.failovers.took_over(before, after, now)

    def close(self) -> None:
        self._watch.close()

"""The runner of etcd mode: today's runner shell with `hosts.HostDuty` in its loop.

It differs from `runner.Runner` in four places only, so the local mode stays as
it is: its incarnation comes from etcd; Paxos proposals of the ownership core
are dropped (ownership changes are etcd txns, `HostDuty` returns them as
`TakeOver`s); a local peer the detector declares dead has its lease revoked at
once; and every turn waits on the runner watch and the store's job watch as
well (a job submitted or changed on any host is looked at at once; rings
closer than FEED_COALESCE are taken together, so a busy cluster's changes do
not make every runner look at each one), then lets
the duty keep the lease and hand over orphans. Everything else (beats, the local
detector, claims, workers, the change feed) is the local runner's.

Invariant: every etcd call of the duty is made from this loop, never a thread,
so a loop stuck for a TTL loses its lease.
"""

from __future__ import annotations

import os
import time

import filelock

from harunner.config import Config
from harunner.failpoints import failpoint
from harunner.runner import actions as act
from harunner.runner.hosts import HostDuty, cluster_root
from harunner.runner.runner import Runner
from harunner.runner.slot import take_slot
from harunner.store.layout import Layout
from harunner.store.wakeup import QuietWindow

FEED_COALESCE = 0.02  # after the job watch rang, it is not waited on for this long


class HostRunner(Runner):
    """A runner whose jobs live in etcd, shared with the runners of other hosts."""

    def __init__(self, config: Config, slot: int) -> None:
        self.hosts = HostDuty(config, slot, cluster_root(config))
        self._host_ready: set[object] = set()
        self._feed_quiet = QuietWindow()  # the job watch, after it rang
        try:
            super().__init__(config, slot)
            self.hosts.join(self.store, self.me, os.getpid(), time.monotonic())
        except BaseException:
            self.hosts.close()
            raise

    def _take_slot(self, layout: Layout, slot: int, wait: float
                   ) -> tuple[filelock.FileLock, int]:
        """The slot lock as today, but the incarnation etcd handed out (cluster-wide)."""
        lock, _local = take_slot(layout, slot, wait)
        return lock, self.hosts.incarnation

    def step(self) -> None:
        super().step()
        failpoint("hosts.turn")  # tests: `sleep:S@N` makes the N-th turn a loop stuck for S s
        now = time.monotonic()
        self._feed(list(self.hosts.step(now, self._host_ready)))
        self._host_ready = set()

    def _timeout(self, now: float) -> float:
        timeout = super()._timeout(now)
        due = [d for d in (self.hosts.deadline(), self._feed_quiet.deadline(now)) if d is not None]
        return timeout if not due else max(0.0, min(timeout, min(due) - now))

    def _wait(self, timeout: float, workers: set[int]) -> set[object]:
        fds = set(self.hosts.fds())
        feed = getattr(self.store, "feed_fileno", lambda: None)()  # the jobs' watch
        if self._feed_quiet.quiet(time.monotonic()):
            feed = None  # it rang a moment ago: what came since waits for the window's end
        watched = fds | ({feed} if feed is not None else set())
        ready = super()._wait(timeout, workers | watched)
        self._host_ready = ready & fds
        if feed is not None and feed in ready:  # a job changed, on any host: look now
            self.store.feed_ready()  # type: ignore[attr-defined]
            self.feed.ring()
            self.scheduler.poke()
            self._feed_quiet.open(time.monotonic(), FEED_COALESCE)
        return ready - watched

    def _carry(self, action: act.Action) -> None:
        if isinstance(action, act.Propose):
            return  # etcd decides owners here: no Paxos
        if isinstance(action, act.Detected):
            self.hosts.detected(action.slot, action.incarnation)
        super()._carry(action)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.hosts.close()

"""The etcd-mode duty of a runner: its lease, the watch on the other runners, take-overs.

In etcd mode (config `backend = "etcd://..."`) job records live in etcd and the
runners of several hosts share them; the local Paxos decides nothing. Instead:

- the runner's incarnation is handed out by etcd (`Membership.allocate_incarnation`),
  so `Owner(slot, incarnation)` is unique across hosts;
- it registers `runners/<incarnation>` under a lease of `lease_ttl` seconds and
  refreshes it from its own loop every TTL/3 (`step`): a loop that stops turning,
  or a host that is lost or stopped, loses the lease and so its key;
- a key that goes (lease expired: host loss; revoked: a local crash, see
  `detected`) makes its runner's jobs orphans: `succession.Succession` says who
  takes them when; this shell reads them (`store.owned_by`) and returns
  `TakeOver` actions at generation + 1, which the runner applies as after a
  Paxos decision (etcd compares the generation: of two runners, one wins);
- a local peer the runner's detector saw die (pidfd, exit notice, missed beats)
  has its lease revoked at once, so a crash costs milliseconds, not the TTL;
- a keep-alive that finds the lease gone raises `LeaseLost`: the runner stops
  its workers and exits with `EXIT_FENCED`; the supervisor respawns the slot
  as a new incarnation, a standby.

Invariants: no thread (every etcd call is made from the runner's loop); the
records of RUNNING jobs are read before the first listing (see `succession`);
the watch resumes from the last listing's revision + 1 after any break, after a
fresh listing that turns every runner gone meanwhile into a departure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from harunner.config import Config, etcd_endpoints
from harunner.runner.actions import TakeOver
from harunner.runner.succession import Succession
from harunner.store.etcd.gateway import (
    EtcdError,
    EtcdGateway,
    EtcdUnavailable,
    GatewayWatch,
    WatchCompacted,
)
from harunner.store.etcd.members import Joined, LeaseLost, Member, Membership
from harunner.store.model import JobRecord, Owner

log = logging.getLogger("harunner.hosts")
EXIT_FENCED = 4  # the runner's lease was gone: respawn it as a new incarnation
PAGE = 256  # orphans read per dead owner and turn
REWATCH = 0.2  # a broken watch is reopened this long after (a new listing first)
WATCH_READ = 0.005  # the most a ready watch is read for (the rest of a message)
ETCD_TIMEOUT = 2.0  # one etcd call from the loop waits no longer than this

__all__ = ["EXIT_FENCED", "HostDuty", "LeaseLost", "cluster_root"]


class OrphanStore(Protocol):
    """What the duty needs of the job store (the `JobStore` contract has both)."""

    def running(self) -> list[JobRecord]: ...

    def owned_by(self, owner: Owner, limit: int) -> list[JobRecord]: ...


def cluster_root(config: Config) -> bytes:
    """The key prefix of this cluster in etcd (shared by every host of it)."""
    return b"/harunner/default/"


class HostDuty:
    """The etcd-mode shell duty of one runner incarnation."""

    def __init__(self, config: Config, slot: int, root: bytes,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.slot = slot
        self.gateway = EtcdGateway(etcd_endpoints(config.backend), timeout=ETCD_TIMEOUT)
        self.members = Membership(self.gateway, root, config.lease_ttl, clock)
        self.incarnation = self.members.allocate_incarnation()
        self.known: dict[int, Member] = {}
        self.watch: GatewayWatch | None = None
        self.rewatch_at: float | None = None
        self.revision = 0
        self.store: OrphanStore | None = None
        self.succession: Succession | None = None

    def join(self, store: OrphanStore, me: Owner, pid: int, now: float) -> None:
        """Register under a lease, read the RUNNING records, then list and watch the runners."""
        self.store = store
        self.succession = Succession(me, self.config.paxos_timeout_ms / 1000)
        self.members.register(me.incarnation, self.config.host, me.slot, pid)
        owners = {r.owner for r in store.running() if r.owner is not None}
        self._relist(now)
        self.succession.unowned(owners, now)

    def _relist(self, now: float) -> None:
        assert self.succession is not None
        if self.watch is not None:
            self.watch.close()
            self.watch = None
        members, self.revision = self.members.members()
        self.known = members
        self.succession.listed({i: m.slot for i, m in members.items()}, now)
        self.watch = self.members.watch(self.revision)
        self.rewatch_at = None

    def fds(self) -> list[int]:
        return [self.watch.fileno()] if self.watch is not None else []

    def deadline(self) -> float | None:
        due = [self.members.next_keepalive]
        orphans = self.succession.deadline() if self.succession is not None else None
        for extra in (self.rewatch_at, orphans):
            if extra is not None:
                due.append(extra)
        return min(due)

    def step(self, now: float, ready: set[object]) -> list[TakeOver]:
        """Keep the lease, read the watch, and return the take-overs due now."""
        self.members.keep_alive(now)  # LeaseLost propagates: the runner exits
        if self.watch is not None and self.watch.fileno() in ready:
            self._read_watch(now)
        elif self.watch is None and self.rewatch_at is not None and now >= self.rewatch_at:
            try:
                self._relist(now)
            except (EtcdUnavailable, EtcdError) as error:
                log.info("runner watch not reopened yet: %s", error)
                self.rewatch_at = now + REWATCH
        return self._take_overs(now)

    def _read_watch(self, now: float) -> None:
        assert self.watch is not None and self.succession is not None
        try:
            events = self.watch.poll(WATCH_READ)  # poll(0) reads nothing: it only parses
        except (EtcdUnavailable, WatchCompacted) as error:
            log.info("runner watch broken (%s): listing again in %.0f ms", error, REWATCH * 1000)
            self.watch.close()
            self.watch, self.rewatch_at = None, now + REWATCH
            return
        for event in events:
            self.revision = max(self.revision, event.mod_revision)
        for change in self.members.changes(events):
            if isinstance(change, Joined):
                self.known[change.member.incarnation] = change.member
                self.succession.joined(change.member.incarnation, change.member.slot)
            else:
                self.known.pop(change.incarnation, None)
                log.warning("runner incarnation %d left the cluster", change.incarnation)
                self.succession.left(change.incarnation, now)

    def _take_overs(self, now: float) -> list[TakeOver]:
        assert self.succession is not None and self.store is not None
        actions: list[TakeOver] = []
        for owner in self.succession.due(now):
            try:
                records = self.store.owned_by(owner, PAGE)
            except (EtcdUnavailable, EtcdError) as error:
                log.info("orphans of %s not read yet: %s", owner, error)
                continue
            if not records:
                self.succession.settled(owner)
                continue
            if len(records) >= PAGE:
                self.succession.more(owner, now)
            actions += [TakeOver(r.job_id, r.generation + 1) for r in records]
        return actions

    def detected(self, slot: int, incarnation: int) -> None:
        """A local peer died (this runner's detector saw it): revoke its lease at once."""
        member = self.known.get(incarnation)
        if member is None or member.host != self.config.host or member.slot != slot:
            return
        try:
            self.members.revoke(member.lease)
        except (EtcdUnavailable, EtcdError) as error:
            log.info("lease of incarnation %d not revoked (its TTL will do): %s",
                     incarnation, error)

    def close(self) -> None:
        """A clean stop: give up the lease (the others take over at once), close sockets."""
        if self.watch is not None:
            self.watch.close()
        try:
            self.members.resign()
        except (EtcdUnavailable, EtcdError) as error:
            log.info("lease not revoked at stop (its TTL will do): %s", error)
        self.gateway.close()

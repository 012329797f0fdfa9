"""Runner membership in etcd: cluster-wide incarnations, one leased key per live runner.

Keys, under the cluster's root (`/harunner/<cluster>/`, as the etcd store's keys):

    incarnation           the last incarnation handed out (decimal), raised by a txn
    runners/<incarnation> {"host", "slot", "pid", "lease"} (JSON), under the runner's lease

Invariants:
- an incarnation is handed out once in the whole cluster: it is raised by a
  compare-on-mod_revision txn, retried only when another runner won the race;
  so an `Owner(slot, incarnation)` names one runner process on one host;
- a runner's key lives exactly as long as its lease: revoked on a clean stop or
  by a local peer that saw it die, expired by etcd when its keep-alives stop
  (host lost, SIGSTOP, a loop stuck for the TTL);
- keep-alive is called from the runner's own loop (`keep_alive`, no thread): a
  loop that stops turning loses its lease; a keep-alive answered "gone", or no
  successful keep-alive for a whole TTL, raises `LeaseLost` and the runner must
  stop its workers and exit (its jobs already belong to someone else, or soon);
- the watch on `runners/` is resumed from the listing's revision + 1, so no
  join or leave between a listing and the watch is missed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from harunner.errors import ClusterError
from harunner.store.etcd.gateway import (
    EtcdError,
    EtcdGateway,
    EtcdUnavailable,
    GatewayWatch,
    WatchEvent,
    compare_mod,
    op_put,
)

RAISE_ATTEMPTS = 64  # racing runners: each failed txn means another one got a number


class LeaseLost(ClusterError):
    """This runner's lease is gone: it was declared dead and must stop its workers and exit."""


@dataclass(frozen=True)
class Member:
    """One live runner, as its key says."""

    incarnation: int
    host: str
    slot: int
    pid: int
    lease: int


@dataclass(frozen=True)
class Joined:
    member: Member


@dataclass(frozen=True)
class Left:
    incarnation: int


def _member(incarnation: int, value: bytes) -> Member | None:
    try:
        data = json.loads(value)
        return Member(incarnation, str(data["host"]), int(data["slot"]), int(data["pid"]),
                      int(data["lease"]))
    except (ValueError, KeyError, TypeError):
        return None  # not a runner key of ours: ignored


class Membership:
    """The membership keys of one cluster, read and written through one gateway client."""

    def __init__(self, gateway: EtcdGateway, root: bytes, ttl: int,
                 clock: Callable[[], float]) -> None:
        self.gateway = gateway
        self.counter = root + b"incarnation"
        self.prefix = root + b"runners/"
        self.ttl = ttl
        self.clock = clock
        self.lease = 0
        self.next_keepalive = 0.0
        self.last_refresh = 0.0

    def key(self, incarnation: int) -> bytes:
        return self.prefix + str(incarnation).encode()

    def allocate_incarnation(self) -> int:
        """The next cluster-wide incarnation (a compare-and-set on the counter's revision)."""
        for _ in range(RAISE_ATTEMPTS):
            current = self.gateway.get(self.counter)
            last = int(current.value) if current is not None else 0
            revision = current.mod_revision if current is not None else 0
            result = self.gateway.txn([compare_mod(self.counter, revision)],
                                      [op_put(self.counter, str(last + 1).encode())], [])
            if result.succeeded:
                return last + 1
        raise ClusterError(f"etcd: no incarnation allocated after {RAISE_ATTEMPTS} races on "
                           f"{self.counter.decode()}; too many runners starting at once")

    def register(self, incarnation: int, host: str, slot: int, pid: int) -> int:
        """Grant this runner's lease and put its key under it; the lease id."""
        lease = self.gateway.lease_grant(self.ttl)
        body = {"host": host, "slot": slot, "pid": pid, "lease": lease}
        self.gateway.put(self.key(incarnation), json.dumps(body).encode(), lease)
        self.lease = lease
        now = self.clock()
        self.last_refresh, self.next_keepalive = now, now + self.ttl / 3
        return lease

    def keep_alive(self, now: float) -> None:
        """Refresh the lease if due; `LeaseLost` when etcd says it is gone, or when no
        refresh succeeded for a whole TTL (etcd has expired it, or is about to)."""
        if not self.lease or now < self.next_keepalive:
            return
        try:
            ttl = self.gateway.lease_keepalive(self.lease)
        except (EtcdUnavailable, EtcdError) as error:
            if now - self.last_refresh >= self.ttl:
                raise LeaseLost(f"etcd: lease {self.lease:x} not refreshed for {self.ttl} s "
                                f"({error}); this runner counts as dead") from None
            self.next_keepalive = now + min(0.2, self.ttl / 10)  # try again soon
            return
        if ttl <= 0:
            raise LeaseLost(f"etcd: lease {self.lease:x} is gone (expired or revoked): this "
                            "runner was declared dead")
        self.last_refresh, self.next_keepalive = now, now + self.ttl / 3

    def revoke(self, lease: int) -> None:
        """Revoke `lease` (its runner's key goes with it); a lease already gone is fine."""
        try:
            self.gateway.lease_revoke(lease)
        except EtcdError as error:
            if "not found" not in error.message:
                raise

    def resign(self) -> None:
        """A clean stop: revoke this runner's own lease."""
        if self.lease:
            lease, self.lease = self.lease, 0
            self.revoke(lease)

    def members(self) -> tuple[dict[int, Member], int]:
        """Every live runner by incarnation, and the revision the listing saw."""
        kvs, revision = self.gateway.get_prefix(self.prefix)
        found = {}
        for kv in kvs:
            tail = kv.key[len(self.prefix):]
            if tail.isdigit() and (member := _member(int(tail), kv.value)) is not None:
                found[member.incarnation] = member
        return found, revision

    def watch(self, after_revision: int) -> GatewayWatch:
        """A watch on every runner key, from `after_revision` + 1."""
        return self.gateway.watch(self.prefix, after_revision + 1, prefix=True)

    def changes(self, events: list[WatchEvent]) -> list[Joined | Left]:
        """What watch events mean: runners that joined or left."""
        out: list[Joined | Left] = []
        for event in events:
            tail = event.key[len(self.prefix):]
            if not tail.isdigit():
                continue
            if event.kind == "DELETE":
                out.append(Left(int(tail)))
            elif (member := _member(int(tail), event.value)) is not None:
                out.append(Joined(member))
        return out

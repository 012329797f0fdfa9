"""Who takes over the jobs of a dead runner in etcd mode, and when. Pure.

Membership news (a listing, a runner that joined, one that left) and `now` go
in; out come the owners whose RUNNING jobs this runner should take over now
(`due`). The shell asks the store for those jobs (`owned_by`) and raises them
by a txn that compares each job's generation, so etcd decides between two
runners that try at once: a loser finds the job owned by someone else.

Rules:
- live runners are ranked by incarnation; the lowest live one takes a dead
  runner's jobs at once, rank r after r x `backoff` in case it died too;
- a dead owner stays due (every `backoff`) until the store says it owns
  nothing more (`settled`): a take-over that lost a race, or a page of a long
  list, is looked at again, never forgotten;
- this runner is always live to itself (its own key may not be listed yet);
- an owner seen in a RUNNING record while not live (a whole cluster
  restarted, a runner that died while nobody watched) is dead as well
  (`unowned`): the records must be read BEFORE the listing, so that a runner
  that registered and then claimed a job is in the listing.
State is bounded by the live runners plus the dead ones not yet settled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harunner.store.model import Owner


@dataclass
class Orphaned:
    owner: Owner
    since: float
    next_try: float


class Succession:
    def __init__(self, me: Owner, backoff: float) -> None:
        self.me = me
        self.backoff = backoff
        self.live: dict[int, int] = {me.incarnation: me.slot}  # incarnation -> slot
        self.dead: dict[int, Orphaned] = {}

    def rank(self) -> int:
        """This runner's place among the live runners, by incarnation (0: the lowest)."""
        return sorted(self.live).index(self.me.incarnation)

    def listed(self, members: Mapping[int, int], now: float) -> None:
        """A fresh listing (incarnation -> slot): whoever was live and is not listed left."""
        for incarnation in [i for i in self.live if i not in members]:
            self.left(incarnation, now)
        self.live.update(members)
        self.live[self.me.incarnation] = self.me.slot

    def joined(self, incarnation: int, slot: int) -> None:
        if incarnation not in self.dead:  # a key put again after it left is no resurrection
            self.live[incarnation] = slot

    def left(self, incarnation: int, now: float) -> None:
        """A runner's key is gone: its lease expired or was revoked."""
        if incarnation == self.me.incarnation:
            return  # this runner's own key: its keep-alive will say it lost the lease
        slot = self.live.pop(incarnation, None)
        if slot is None:
            return
        self._orphan(Owner(slot, incarnation), now)

    def unowned(self, owners: Iterable[Owner], now: float) -> None:
        """Owners of RUNNING records (read before the last listing) that are not live."""
        for owner in owners:
            if owner.incarnation not in self.live and owner != self.me:
                self._orphan(owner, now)

    def _orphan(self, owner: Owner, now: float) -> None:
        if owner.incarnation not in self.dead:
            wait = self.backoff * self.rank()
            self.dead[owner.incarnation] = Orphaned(owner, now, now + wait)

    def due(self, now: float) -> list[Owner]:
        """The dead owners to look at now; each is due again after `backoff` until settled."""
        owners = []
        for entry in self.dead.values():
            if now >= entry.next_try:
                entry.next_try = now + self.backoff
                owners.append(entry.owner)
        return owners

    def more(self, owner: Owner, now: float) -> None:
        """A full page of `owner`'s jobs was taken: look again at once."""
        if (entry := self.dead.get(owner.incarnation)) is not None:
            entry.next_try = now

    def settled(self, owner: Owner) -> None:
        """`owner` owns nothing any more."""
        self.dead.pop(owner.incarnation, None)

    def deadline(self) -> float | None:
        return min((e.next_try for e in self.dead.values()), default=None)

"""Which jobs are orphaned, who proposes their new owner, and when.

Pure bookkeeping over job records and the failure detector's view. A RUNNING
job is orphaned when its owner incarnation is known dead (exit notice, hang
timeout, or a newer incarnation of its slot), or when the owner has not been
seen at all for `grace` seconds since this runner started. For each orphan
the next instance is `(job_id, generation + 1)` — or past the highest
generation already decided, in case a decided owner died before taking over.
The lowest live slot proposes at once; the others wait `backoff * rank` in
case it died too. The scheduler duty goes to the proposer; jobs are spread
over the live runners.
"""

from __future__ import annotations

from collections.abc import Iterable

from harunner.detector import FailureDetector, Liveness
from harunner.paxos import InstanceKey, Value
from harunner.store import SCHEDULER_JOB, JobRecord, JobState, Owner


class Takeover:
    def __init__(self, me: Owner, backoff: float, grace: float, started: float) -> None:
        self.me = me
        self.backoff = backoff
        self.grace = grace
        self.started = started
        self.first_seen: dict[str, float] = {}
        self.unseen_since: dict[str, float] = {}
        self.proposed: dict[InstanceKey, float] = {}
        self.decided_generation: dict[str, int] = {}

    def is_orphan(self, record: JobRecord, detector: FailureDetector, now: float) -> bool:
        owner = record.owner
        if record.state is not JobState.RUNNING or owner is None or owner == self.me:
            return False
        if owner.slot == self.me.slot:
            return owner.incarnation < self.me.incarnation
        view = detector.peers.get(owner.slot)
        if view is None or view.incarnation < owner.incarnation:
            since = self.unseen_since.setdefault(record.job_id, max(now, self.started))
            return now - since > self.grace
        if view.incarnation > owner.incarnation:
            return True
        return view.liveness is Liveness.DEAD

    def proposals(self, records: Iterable[JobRecord], detector: FailureDetector,
                  now: float) -> dict[InstanceKey, Value]:
        """The instances this runner should propose now, with the owner it proposes."""
        orphans = [r for r in records if self.is_orphan(r, detector, now)]
        live = [Value(s, detector.peers[s].incarnation) for s in detector.live_slots()
                if s != self.me.slot] + [Value(self.me.slot, self.me.incarnation)]
        live.sort()
        rank = sorted(v.slot for v in live).index(self.me.slot)
        values: dict[InstanceKey, Value] = {}
        for index, record in enumerate(orphans):
            first = self.first_seen.setdefault(record.job_id, now)
            if now - first < self.backoff * rank:
                continue
            key = (record.job_id, max(record.generation,
                                      self.decided_generation.get(record.job_id, 0)) + 1)
            if key in self.proposed and now - self.proposed[key] < self.backoff * 4:
                continue
            self.proposed[key] = now
            mine = Value(self.me.slot, self.me.incarnation)
            values[key] = mine if record.job_id == SCHEDULER_JOB else live[index % len(live)]
        current = {r.job_id for r in orphans}
        for job_id in list(self.first_seen):
            if job_id not in current:
                del self.first_seen[job_id]
                self.unseen_since.pop(job_id, None)
        return values

    def learned(self, key: InstanceKey) -> None:
        job_id, generation = key
        self.decided_generation[job_id] = max(generation,
                                              self.decided_generation.get(job_id, 0))
        self.proposed.pop(key, None)

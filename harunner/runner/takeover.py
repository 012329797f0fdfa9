"""Which jobs are orphaned, who proposes their new owner, and when.

Pure bookkeeping over job records and the failure detector's view. A RUNNING
job is orphaned when its owner incarnation is known dead (exit notice, hang
timeout, or a newer incarnation of its slot), or when the owner has not been
seen at all for `grace` seconds since this runner started. For each orphan
the next instance is `(job_id, generation + 1)`. Once an instance is decided,
its owner is given time to take over: the job goes past a decided generation
only when that owner is known dead or has not raised the record within
`grace` seconds.
The lowest live slot proposes at once; the others wait `backoff * rank` in
case it died too. The scheduler duty goes to the proposer; jobs are spread
over the live runners.

Per-job state (first_seen, unseen_since, proposed, decided) is bounded by the
RUNNING jobs: `prune` drops what belongs to jobs no longer running and
decisions the record has already passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from harunner.paxos import InstanceKey, Value
from harunner.runner.detector import FailureDetector, Liveness
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
        self.decided: dict[str, tuple[int, Value, float]] = {}  # job -> generation, owner, when

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
                  now: float, fresh: bool = True) -> dict[InstanceKey, Value]:
        """The instances this runner should propose now, with the owner it proposes.

        Only `fresh` records (just read) may move a job past a decided owner
        that is still alive: a stale copy could miss that it raised the record.
        """
        records = list(records)
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
            generation = self._next_generation(record, detector, now, fresh)
            if generation is None:
                continue
            key = (record.job_id, generation)
            if key in self.proposed and now - self.proposed[key] < self.backoff * 4:
                continue
            self.proposed[key] = now
            mine = Value(self.me.slot, self.me.incarnation)
            values[key] = mine if record.job_id == SCHEDULER_JOB else live[index % len(live)]
        current = {r.job_id for r in orphans}
        for job_id in list(self.first_seen):
            if job_id not in current:
                del self.first_seen[job_id]
        listed = {r.job_id for r in records}
        for job_id in list(self.unseen_since):
            if job_id not in listed:
                del self.unseen_since[job_id]
        return values

    def _next_generation(self, record: JobRecord, detector: FailureDetector,
                         now: float, fresh: bool = True) -> int | None:
        """The generation to propose for an orphan, or None while a decided owner takes over."""
        decided = self.decided.get(record.job_id)
        if decided is None or decided[0] <= record.generation:
            return record.generation + 1
        generation, owner, learned_at = decided
        view = detector.peers.get(owner.slot)
        unheard = view is None or view.incarnation < owner.incarnation  # e.g. just restarted
        owner_alive = unheard or owner == Value(self.me.slot, self.me.incarnation) or (
            detector.is_live(owner.slot, owner.incarnation))
        if owner_alive and (not fresh or now - learned_at < self.grace):
            return None
        return generation + 1

    def learned(self, key: InstanceKey, value: Value, now: float) -> None:
        """Remember a decision, so that its owner gets time to take over."""
        job_id, generation = key
        if generation > self.decided.get(job_id, (0, value, now))[0]:
            self.decided[job_id] = (generation, value, now)
        self.proposed.pop(key, None)

    def prune(self, running: Mapping[str, JobRecord]) -> None:
        """Forget every job not in `running` and every decision its record has passed."""
        for table in (self.first_seen, self.unseen_since):
            for job_id in [j for j in table if j not in running]:
                del table[job_id]
        for job_id in [j for j, d in self.decided.items()
                       if j not in running or d[0] <= running[j].generation]:
            del self.decided[job_id]
        for key in [k for k in self.proposed
                    if k[0] not in running or k[1] <= running[k[0]].generation]:
            del self.proposed[key]

    def forgive(self, now: float) -> None:
        """After this runner was paused, restart the clocks it keeps on other runners."""
        for job_id in self.unseen_since:
            self.unseen_since[job_id] = now
        for job_id, (generation, owner, _) in self.decided.items():
            self.decided[job_id] = (generation, owner, now)

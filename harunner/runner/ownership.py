"""The ownership core of a runner: which jobs it runs, takes over, proposes and loses.

Sans-IO. Heartbeats, exit notices, bus hints, job records, Paxos decisions
and `now` (monotonic seconds) go in; `harunner.runner.actions` come out, for
the shell to carry out. It reads no clock, opens no socket, touches no file.

Records come in two ways, so that the core works with today's periodic scan
and with a store change feed alike: `observe(records)` for records that
changed, `reconcile(records)` for a full pass over every RUNNING record
(plus the records of this runner's workers) at start, periodically, or after
a pause. The core keeps the newest record of each RUNNING job it has seen;
a record older (lower generation) than one already seen is ignored, so no
generation it acts on is ever lowered.

Rules (docs/design.md "Takeover", docs/ownership.md):
- a peer's silence counts only over time this runner was listening: peers
  are judged as of the last drain of the bus (`listened`), never later; a
  gap between two drains, or between two inputs, longer than `pause` means
  this runner was paused (SIGSTOP, swap) or busy and deaf, wherever that
  fell; then every peer not known to have exited and every decided owner
  gets a fresh hang timeout before anything is judged (`Paused` first);
- orphans are proposed in one batch; the lowest live slot at once, rank r
  after r x paxos timeout (`harunner.runner.takeover`); only a full
  `reconcile` moves a job past a decided owner still alive (cached records
  may miss that it raised the record);
- a decision naming this runner is applied by `TakeOver` (the store raises
  the generation) before the worker starts (`Start` only after `took_over`);
- a record or hint showing a newer generation of a job this runner runs,
  or another owner at its generation, kills the worker (`Kill`);
- the scheduler duty is the `__scheduler__` record: owning it is primary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harunner.net.bus import Beat, OwnerChange
from harunner.paxos import InstanceKey, Value
from harunner.runner.actions import (
    Action,
    Announce,
    BecomePrimary,
    ClaimScheduler,
    Detected,
    Kill,
    LosePrimary,
    Paused,
    Propose,
    Read,
    Start,
    TakeOver,
)
from harunner.runner.detector import Died, FailureDetector
from harunner.runner.takeover import Takeover
from harunner.store.model import SCHEDULER_JOB, JobRecord, JobState, Owner


@dataclass(frozen=True)
class Timing:
    """The core's time constants, in seconds."""

    suspect_after: float
    hang: float
    paxos: float

    @property
    def pause(self) -> float:
        """A gap between two inputs longer than this is a pause of this runner itself."""
        return self.hang / 2


class OwnershipCore:
    """One runner incarnation's ownership state; every input returns the actions to take."""

    def __init__(self, me: Owner, timing: Timing, now: float) -> None:
        self.me = me
        self.value = Value(me.slot, me.incarnation)
        self.timing = timing
        self.detector = FailureDetector(timing.suspect_after, timing.hang)
        self.takeover = Takeover(me, timing.paxos, timing.hang, now)
        self.records: dict[str, JobRecord] = {}  # the newest RUNNING record of each job seen
        self.workers: dict[str, int] = {}  # job -> generation of the worker it runs
        self.awaiting: dict[str, int] = {}  # decided for me, not yet raised: job -> generation
        self.primary_generation = 0
        self.last_now = now
        self.last_listen = now  # silence is judged only up to the last drain of the bus

    # -- inputs ----------------------------------------------------------------------------

    def heard(self, beat: Beat, now: float) -> list[Action]:
        """A peer's heartbeat."""
        actions = self._awake(now)
        if beat.slot != self.me.slot:
            actions += self._deaths(e for e in self.detector.beat(beat, now)
                                    if isinstance(e, Died))
        return actions

    def exit_notice(self, slot: int, pid: int, now: float) -> list[Action]:
        """The OS saw process `pid` of `slot` exit (supervisor notice or pidfd)."""
        return self._awake(now) + self._deaths(self.detector.exit_notice(slot, pid))

    def listened(self, now: float) -> list[Action]:
        """The shell has just drained the bus: every beat queued until `now` is in.

        A long time since the previous drain (this runner paused, or busy and
        deaf to the bus) gives every peer a fresh hang timeout.
        """
        actions = self._awake(now)
        deaf = now - self.last_listen
        self.last_listen = max(self.last_listen, now)
        if deaf > self.timing.pause and not actions:
            actions = self._forgive(now, deaf)
        return actions

    def tick(self, now: float) -> list[Action]:
        """Judge peers silent up to the last drain of the bus; retry orphans after back-off."""
        actions = self._awake(now)
        deaths = self.detector.tick(min(now, self.last_listen))
        if deaths:
            return actions + self._deaths(deaths)
        if self.takeover.first_seen or self.takeover.unseen_since:
            actions += self._propose(now, fresh=False)  # back-offs and unseen owners' grace
        return actions

    def owner_changed(self, change: OwnerChange, now: float) -> list[Action]:
        """A bus hint that a job has a new owner: read it if mine, else stop an older copy."""
        actions = self._awake(now)
        if (change.slot, change.incarnation) == (self.me.slot, self.me.incarnation):
            return actions + [Read(change.job_id)]
        known = self.records.get(change.job_id)
        if known is not None and known.generation < change.generation:
            actions.append(Read(change.job_id))  # refresh: a decided owner raised it
        running = self.workers.get(change.job_id)
        if running is not None and running < change.generation:
            actions.append(self._kill(change.job_id, change.generation))
        if change.job_id == SCHEDULER_JOB and change.generation > self.primary_generation > 0:
            self.primary_generation = 0
            actions.append(LosePrimary(change.generation))
        return actions

    def observe(self, records: Iterable[JobRecord], now: float) -> list[Action]:
        """Records that changed (a change feed, a read after a hint, an assignment)."""
        actions = self._awake(now)
        for record in records:
            actions += self._merge(record)
        self.takeover.prune(self.records)
        return actions

    def reconcile(self, records: Iterable[JobRecord], now: float,
                  workers: Mapping[str, int] | None = None) -> list[Action]:
        """A full pass: every RUNNING record, and the records of this runner's workers.

        `workers` (job -> generation), if given, is the executor's own account of
        the workers it runs, which replaces the core's.
        """
        actions = self._awake(now)
        if workers is not None:
            self.workers = dict(workers)
        records = list(records)
        listed = {r.job_id for r in records}
        for job_id in [j for j in self.records if j not in listed]:
            del self.records[job_id]
        for record in records:
            actions += self._merge(record)
        scheduler = self.records.get(SCHEDULER_JOB)
        if self.primary_generation and (scheduler is None or scheduler.owner != self.me):
            self.primary_generation = 0
            actions.append(LosePrimary(0 if scheduler is None else scheduler.generation))
        for job_id, generation in list(self.awaiting.items()):
            actions.append(TakeOver(job_id, generation))
        if scheduler is None and self._may_claim(now):
            actions.append(ClaimScheduler())
        self.takeover.prune(self.records)
        return actions + self._propose(now)

    def decided(self, decisions: Mapping[InstanceKey, Value], now: float) -> list[Action]:
        """Paxos decisions: take over those naming this runner."""
        actions = self._awake(now)
        for (job_id, generation), value in decisions.items():
            self.takeover.learned((job_id, generation), value, now)
            if value != self.value or not self._newer(job_id, generation):
                continue
            if generation > self.awaiting.get(job_id, 0):
                self.awaiting[job_id] = generation
                actions.append(TakeOver(job_id, generation))
        return actions

    def took_over(self, record: JobRecord, now: float) -> list[Action]:
        """The store raised the record to this runner: announce it, then start it."""
        actions = self._awake(now)
        if self.awaiting.get(record.job_id, 0) <= record.generation:
            self.awaiting.pop(record.job_id, None)
        return actions + [Announce(record)] + self._merge(record)

    def take_over_failed(self, job_id: str, generation: int, busy: bool) -> None:
        """The store refused (or its lock was busy: then it is retried on reconcile)."""
        if not busy and self.awaiting.get(job_id) == generation:
            del self.awaiting[job_id]

    def worker_ended(self, job_id: str, generation: int) -> None:
        """The worker of `job_id` at `generation` exited or could not start."""
        if self.workers.get(job_id) == generation:
            del self.workers[job_id]

    # -- rules -----------------------------------------------------------------------------

    def _awake(self, now: float) -> list[Action]:
        """Before judging anything: was this runner itself paused since the last input?"""
        gap = now - self.last_now
        self.last_now = max(self.last_now, now)
        return self._forgive(now, gap) if gap > self.timing.pause else []

    def _forgive(self, now: float, gap: float) -> list[Action]:
        """This runner was paused or deaf for `gap`: peers and decided owners start afresh."""
        self.last_listen = max(self.last_listen, now)  # the deaf time is forgiven, not judged
        self.detector.forgive(now)
        self.takeover.forgive(now)
        return [Paused(gap)]

    def _newer(self, job_id: str, generation: int) -> bool:
        known = self.records.get(job_id)
        return known is None or known.generation < generation

    def _merge(self, record: JobRecord) -> list[Action]:
        """Take in one record unless an newer one is known; act on what it says."""
        known = self.records.get(record.job_id)
        if known is not None and known.generation > record.generation:
            return []
        if record.state is JobState.RUNNING:
            self.records[record.job_id] = record
        else:
            self.records.pop(record.job_id, None)
            self.awaiting.pop(record.job_id, None)
        if self.awaiting.get(record.job_id, record.generation + 1) <= record.generation:
            del self.awaiting[record.job_id]
        if record.job_id == SCHEDULER_JOB:
            return self._primary(record)
        actions: list[Action] = []
        running = self.workers.get(record.job_id)
        if running is not None and (running < record.generation or (
                running == record.generation and record.owner != self.me)):
            actions.append(self._kill(record.job_id, record.generation))
            running = None
        if running is None and record.state is JobState.RUNNING and record.owner == self.me:
            self.workers[record.job_id] = record.generation
            actions.append(Start(record))
        return actions

    def _primary(self, record: JobRecord) -> list[Action]:
        mine = record.state is JobState.RUNNING and record.owner == self.me
        if mine and self.primary_generation != record.generation:
            self.primary_generation = record.generation
            return [BecomePrimary(record.generation)]
        if not mine and self.primary_generation and record.generation >= self.primary_generation:
            self.primary_generation = 0
            return [LosePrimary(record.generation)]
        return []

    def _kill(self, job_id: str, generation: int) -> Kill:
        self.workers.pop(job_id, None)
        return Kill(job_id, generation)

    def _deaths(self, deaths: Iterable[Died]) -> list[Action]:
        actions: list[Action] = [Detected(d.slot, d.incarnation, d.reason) for d in deaths]
        return actions + self._propose(self.last_now, fresh=False) if actions else []

    def _propose(self, now: float, fresh: bool = True) -> list[Action]:
        """Propose orphans; past a live decided owner only from a fresh full `reconcile`."""
        values = self.takeover.proposals(self.records.values(), self.detector, now, fresh)
        return [Propose(values)] if values else []

    def _may_claim(self, now: float) -> bool:
        """The lowest live slot claims a new cluster's scheduler; others after a hang timeout."""
        lowest = min([self.me.slot] + self.detector.live_slots())
        return lowest == self.me.slot or now - self.takeover.started > self.timing.hang

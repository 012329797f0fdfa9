"""A runner's ownership duties: taking jobs over, starting and losing them.

Mixed into `harunner.runner.Runner`, which owns the loop, the sockets and the
attributes used here. Rules kept here:
- after a death, orphans are proposed in one batch (`harunner.takeover`);
- a decision naming this runner is applied by `Store.take_over` before the
  worker starts, so the worker reads the checkpoint only once the old owner
  is fenced; a busy job lock is retried from `_reconcile`, never waited on;
- a job whose record shows another owner or generation loses its worker at
  once (`_lose`);
- the scheduler duty is claimed by compare-and-set, like any assignment;
- Paxos votes below a job's current generation are compacted.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from harunner.errors import (
    HarunnerError,
    LockTimeoutError,
    StoreError,
    UnknownJobError,
)
from harunner.net import bus
from harunner.paxos import InstanceKey, Value
from harunner.runner.detector import Died
from harunner.store import SCHEDULER_JOB, JobRecord, JobState, Owner

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    from harunner.config import Config
    from harunner.executor.executor import Executor
    from harunner.net.sockets import Publisher
    from harunner.runner.consensus import Consensus
    from harunner.runner.detector import FailureDetector
    from harunner.runner.scheduler import Scheduler
    from harunner.runner.takeover import Takeover
    from harunner.store import Store
    from harunner.store.events import EventLog

log = logging.getLogger("harunner.runner")


class OwnershipDuties:
    """Methods of `Runner` that change which jobs it runs (its attributes, declared)."""

    config: Config
    slot: int
    incarnation: int
    me: Owner
    cluster: str
    store: Store
    executor: Executor
    consensus: Consensus
    detector: FailureDetector
    takeover: Takeover
    scheduler: Scheduler
    events: EventLog
    publisher: Publisher
    rng: random.Random
    awaiting: dict[str, int]
    primary_generation: int
    _keep_beating: Callable[[], None]

    def _on_death(self, event: Died) -> None:
        log.warning("runner slot %d incarnation %d is dead: %s", event.slot, event.incarnation,
                    event.reason)
        self.events.emit("detected", slot=event.slot, incarnation=event.incarnation,
                         reason=event.reason)
        self._propose_orphans(time.monotonic())

    def _propose_orphans(self, now: float, records: list[JobRecord] | None = None) -> None:
        if records is None:
            records = self._running_records()
        values = self.takeover.proposals(records, self.detector, now)
        if values:
            self.events.emit("propose", count=len(values))
            self._learn(self.consensus.propose(values, now, self.rng))

    def _learn(self, decided: dict[InstanceKey, Value]) -> None:
        now = time.monotonic()
        mine = []
        for key, value in decided.items():
            self.takeover.learned(key, value, now)
            if value == Value(self.slot, self.incarnation):
                self.events.emit("decided", job=key[0], generation=key[1], slot=self.slot)
                self.awaiting[key[0]] = max(key[1], self.awaiting.get(key[0], 0))
                mine.append(key[0])
        for job_id in mine:
            self._keep_beating()
            if job_id in self.awaiting:
                self._take_over(job_id, self.awaiting[job_id])

    def _take_over(self, job_id: str, generation: int) -> None:
        """Raise the job's generation in the store; a busy lock is retried on reconcile."""
        try:
            record = self.store.take_over(job_id, generation, self.me)
        except LockTimeoutError:
            return
        except StoreError as error:
            log.info("no takeover of %s at generation %d: %s", job_id, generation, error)
            self.awaiting.pop(job_id, None)
            return
        self.awaiting.pop(job_id, None)
        self.events.emit("took_over", job=job_id, generation=generation, slot=self.slot)
        self._announce(record)
        self._start(record)

    def _announce(self, record: JobRecord) -> None:
        assert record.owner is not None
        change = bus.OwnerChange(record.job_id, record.generation, record.owner.slot,
                                 record.owner.incarnation)
        self.publisher.publish(bus.encode(change, self.cluster))

    def _start(self, record: JobRecord) -> None:
        """Run a job this runner owns (for `__scheduler__`: become primary)."""
        if record.state is not JobState.RUNNING or record.owner != self.me:
            return
        if record.job_id == SCHEDULER_JOB:
            if self.primary_generation != record.generation:
                log.info("slot %d is primary at generation %d", self.slot, record.generation)
                self.scheduler.poke()
            self.primary_generation = record.generation
            return
        if record.job_id in self.executor.running():
            return
        try:
            self.executor.start(record)
        except (HarunnerError, OSError) as error:
            log.warning("cannot start a worker for %s: %s", record.job_id, error)
            return
        self.events.emit("worker_started", job=record.job_id, generation=record.generation,
                         slot=self.slot)

    def _assigned(self, record: JobRecord) -> None:
        self._announce(record)
        if record.owner == self.me:
            self._start(record)

    def _on_owner_change(self, change: bus.OwnerChange) -> None:
        owner = Owner(change.slot, change.incarnation)
        running = self.executor.running()
        if owner == self.me:
            try:
                record = self.store.get(change.job_id)
            except StoreError as error:
                log.warning("cannot start %s: %s", change.job_id, error)
                return
            if record.generation == change.generation:
                self._start(record)
        elif change.job_id in running and running[change.job_id] < change.generation:
            self._lose(change.job_id, change.generation)
        elif change.job_id == SCHEDULER_JOB and change.generation > self.primary_generation:
            self.primary_generation = 0

    def _lose(self, job_id: str, generation: int) -> None:
        log.warning("slot %d lost %s to generation %d: killing its worker", self.slot, job_id,
                    generation)
        self.executor.kill(job_id)
        self.events.emit("lost", job=job_id, generation=generation, slot=self.slot)

    def _reconcile(self, now: float) -> None:
        """Make the executor match the store; take the scheduler duty if nobody holds it."""
        for job_id, generation in list(self.executor.running().items()):
            try:
                record = self.store.get(job_id)
            except StoreError:
                continue
            if record.generation != generation or record.owner != self.me:
                self._lose(job_id, record.generation)
        for job_id, generation in list(self.awaiting.items()):
            self._keep_beating()
            self._take_over(job_id, generation)
        records = self._running_records()
        mine = [record for record in records if record.owner == self.me]
        if not any(record.job_id == SCHEDULER_JOB for record in mine):
            self.primary_generation = 0
        for record in mine:
            self._keep_beating()
            self._start(record)
        self._claim_scheduler(now)
        self._propose_orphans(now, records)

    def _compact(self, now: float) -> None:
        """Drop Paxos votes that can never matter again: below a job's current generation."""
        for job_id in self.consensus.instances():
            try:
                record = self.store.get(job_id)
            except UnknownJobError:  # the job was removed: none of its instances matters
                below = 1 + max(g for j, g in self.consensus.node.acceptor_state.votes
                                if j == job_id)
                self.consensus.compact(job_id, below, now, self.rng)
                continue
            except StoreError:
                continue
            below = record.generation + 1 if record.state.finished else record.generation
            self.consensus.compact(job_id, below, now, self.rng)

    def _running_records(self) -> list[JobRecord]:
        try:
            return self.store.list_jobs({JobState.RUNNING})
        except StoreError as error:
            log.warning("cannot list jobs: %s", error)
            return []

    def _claim_scheduler(self, now: float) -> None:
        """The first runner up takes the scheduler duty of a new cluster by compare-and-set."""
        try:
            try:
                record = self.store.get(SCHEDULER_JOB)
            except UnknownJobError:
                record = self.store.submit(SCHEDULER_JOB, {}, job_id=SCHEDULER_JOB)
        except StoreError:
            return
        lowest = min([self.slot] + self.detector.live_slots())
        waited = now - self.takeover.started > self.config.hang_timeout_ms / 1000
        if record.state is JobState.PENDING and (lowest == self.slot or waited):
            try:
                self._assigned(self.store.assign(SCHEDULER_JOB, self.me, record.generation))
            except StoreError as error:
                log.info("scheduler duty not claimed: %s", error)

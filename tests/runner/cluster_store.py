"""The simulated cluster's store: job records with the real store's fencing rule.

A takeover must raise a RUNNING record's generation (or repeat the same
owner and generation); the job's lock is busy now and then. Every write is
reported to the checker and put on the change feed (`Changed` entries on
the lossy, reordering link).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from harunner.store.model import JobRecord, JobState, Owner

if TYPE_CHECKING:
    from cluster_sim import Simulator


@dataclass(frozen=True)
class Changed:
    """A change-feed entry: a record as the store wrote it (delivered late, maybe twice)."""

    record: JobRecord


class Busy(Exception):
    """The job's lock was busy: try again later."""


class Refused(Exception):
    """The store refused the transition (fenced)."""


class FakeStore:
    """Job records with the real store's fencing rule for takeovers."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.records: dict[str, JobRecord] = {}

    def create(self, job_id: str, owner: Owner) -> None:
        record = JobRecord(job_id, "sim", {}, JobState.RUNNING, 1, owner)
        self.records[job_id] = record
        self.sim.checker.on_write(None, record)

    def take_over(self, job_id: str, generation: int, owner: Owner) -> JobRecord:
        """Raise a RUNNING job to `generation` (> the record's) with `owner`; idempotent."""
        record = self.records[job_id]
        if self.sim.rng.random() < self.sim.params.busy:
            raise Busy(job_id)
        if (record.generation, record.owner) == (generation, owner):
            return record
        if record.state is not JobState.RUNNING or record.generation >= generation:
            raise Refused(f"{job_id}@{record.generation}")
        new = replace(record, generation=generation, owner=owner)
        self.records[job_id] = new
        self.sim.checker.on_write(record, new)
        for target in self.sim.slots:
            self.sim.send(owner.slot, target, Changed(new))
        return new

    def running(self) -> list[JobRecord]:
        return [r for r in self.records.values() if r.state is JobState.RUNNING]



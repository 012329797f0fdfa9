"""Invariants of the simulated cluster of runners, checked after every step.

- one_owner: at most one owner per job per generation. The store's owner of
  a generation reached by takeover is the value Paxos chose for that
  instance (no two values are ever learned for one instance), and a runner
  starts a worker at (job, generation) only once the store names it the
  owner of that generation;
- monotonic: no generation is ever lowered: not in the store, and not in
  any runner's view of a job (its core's newest record) during one
  incarnation;
- healthy_keeps: no healthy runner loses a job to a runner that was itself
  paused: a runner whose last stop ended less than two hang timeouts ago
  never proposes a new owner for a job whose owner has been healthy (up,
  never stopped, its beats to the proposer not blacked out) since before
  that stop began, less a hang timeout;
- recovered (checked by `check_recovered` after the cluster healed, all
  runners up): every RUNNING job is owned by a live incarnation that runs
  its worker at the store's generation, no other runner runs a copy, and
  exactly the owner of `__scheduler__` believes it is primary.

A breach raises `Violation`, whose `invariant` names the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from harunner.paxos import InstanceKey, Value
from harunner.store.model import SCHEDULER_JOB, JobRecord, JobState

if TYPE_CHECKING:
    from cluster_sim import SimRunner, Simulator

INVARIANTS = ("one_owner", "monotonic", "healthy_keeps", "recovered")


class Violation(AssertionError):
    """A safety or liveness invariant failed."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant


class Checker:
    """Records what the store, Paxos and the runners did; checks the invariants."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.owners: dict[InstanceKey, tuple[int, int]] = {}
        self.learned: dict[InstanceKey, Value] = {}
        self.seen: dict[tuple[int, int, str], int] = {}  # (slot, incarnation, job) -> generation

    def fail(self, invariant: str, detail: str) -> None:
        raise Violation(invariant, f"t={self.sim.now:.3f} {detail}")

    def on_write(self, old: JobRecord | None, new: JobRecord) -> None:
        """The store changed a record."""
        assert new.owner is not None
        if old is not None and new.generation < old.generation:
            self.fail("monotonic", f"store lowered {new.job_id} {old.generation} -> "
                      f"{new.generation}")
        key = (new.job_id, new.generation)
        owner = (new.owner.slot, new.owner.incarnation)
        if self.owners.setdefault(key, owner) != owner:
            self.fail("one_owner", f"{key} owned by {self.owners[key]} and {owner}")
        if old is not None:
            chosen = self.learned.get(key)
            if chosen is None or (chosen.slot, chosen.incarnation) != owner:
                self.fail("one_owner", f"{key} taken over by {owner}; Paxos chose {chosen}")

    def on_decided(self, decided: Mapping[InstanceKey, Value]) -> None:
        for key, value in decided.items():
            if self.learned.setdefault(key, value) != value:
                self.fail("one_owner", f"{key} learned as {self.learned[key]} and {value}")

    def on_start(self, runner: SimRunner, record: JobRecord) -> None:
        """A runner starts a worker: the store must name it the owner of that generation."""
        key = (record.job_id, record.generation)
        if self.owners.get(key) != (runner.slot, runner.incarnation):
            self.fail("one_owner", f"slot {runner.slot}/{runner.incarnation} starts {key}, "
                      f"owned by {self.owners.get(key)} in the store")

    def on_propose(self, runner: SimRunner, values: Mapping[InstanceKey, Value]) -> None:
        """No proposal may take a job from a healthy owner."""
        now, hang = self.sim.now, self.sim.params.hang
        if not runner.stops or runner.stops[-1][1] < now - 2 * hang:
            return  # not paused lately: a false suspicion costs a failover, not safety
        since = runner.stops[-1][0] - hang
        for job_id, generation in values:
            record = self.sim.store.records[job_id]
            if record.generation != generation - 1 or record.owner is None:
                continue
            owner = self.sim.runners[record.owner.slot]
            if owner is runner or not self.healthy(owner, record, runner.slot, since):
                continue
            paused = f"stopped {runner.stops[-1]}" if runner.stops else "never stopped"
            self.fail("healthy_keeps", f"slot {runner.slot}/{runner.incarnation} ({paused}) "
                      f"proposes {(job_id, generation)} of healthy slot {owner.slot}")

    def healthy(self, owner: SimRunner, record: JobRecord, observer: int, since: float) -> bool:
        """Up as the record's owner, never stopped and heard by `observer` since `since`."""
        assert record.owner is not None
        if not owner.up or owner.incarnation != record.owner.incarnation:
            return False
        if owner.started > since or any(end > since for _, end in owner.stops):
            return False
        blackouts = self.sim.blackouts.get((owner.slot, observer), ())
        return not any(end > since for _, end in blackouts)

    def after_step(self, runner: SimRunner | None) -> None:
        """A runner's view of a job's generation never goes down within an incarnation."""
        if runner is None or not runner.up:
            return
        seen = self.seen
        for job_id, record in runner.core.records.items():
            index = (runner.slot, runner.incarnation, job_id)
            if record.generation < seen.get(index, 0):
                self.fail("monotonic", f"slot {runner.slot} sees {job_id} at "
                          f"{record.generation} after {seen[index]}")
            seen[index] = record.generation

    def check_recovered(self) -> None:
        """After healing: each job run by its owner only; one primary."""
        sim = self.sim
        for record in sim.store.running():
            assert record.owner is not None
            owner = sim.runners[record.owner.slot]
            live = owner.up and owner.incarnation == record.owner.incarnation
            if record.job_id == SCHEDULER_JOB:
                if not live or owner.primary != record.generation:
                    self.fail("recovered", f"scheduler at {record.generation} owned by "
                              f"{record.owner}: not primary (up {owner.up})")
                continue
            if not live or owner.workers.get(record.job_id) != record.generation:
                self.fail("recovered", f"{record.job_id}@{record.generation} of {record.owner} "
                          f"has no worker there")
        for runner in sim.runners:
            scheduler = sim.store.records[SCHEDULER_JOB]
            if runner.primary and scheduler.owner != runner.me:
                self.fail("recovered", f"slot {runner.slot} believes it is primary")
            for job_id, generation in runner.workers.items():
                record = sim.store.records[job_id]
                if record.state is JobState.RUNNING and record.owner != runner.me:
                    self.fail("recovered", f"slot {runner.slot} still runs {job_id}@{generation}")

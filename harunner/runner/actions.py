"""What the ownership core asks its shell to do: frozen dataclasses, one per action.

The core (`harunner.runner.ownership.OwnershipCore`) returns a list of these
from every input; the shell (the runner process, or the simulated cluster in
tests/runner) carries them out in order and feeds the outcome back:

    Propose(values)          run Paxos for these instances; feed `decided(...)`
    TakeOver(job, gen)       Store.take_over(job, gen, me); feed `took_over(record)`,
                             or `take_over_failed(job, gen, busy)`
    Start(record)            start a worker for a job this runner owns
                             (if it cannot: feed `worker_ended(job)`)
    Kill(job, gen)           kill the worker of `job`: `gen` is the generation it lost to
    Announce(record)         publish OwnerChange for the record's owner and generation
    Read(job)                read the job's record and feed `observe([record])`
    BecomePrimary(gen)       this runner owns `__scheduler__` at `gen`: run the scheduler
    LosePrimary(gen)         it no longer does (`gen`: the generation that replaced it, or 0)
    ClaimScheduler()         nobody holds the scheduler duty: claim it by compare-and-set
    Detected(slot, inc, why) a peer incarnation is dead (log it; a fresh reconcile helps)
    Paused(seconds)          this runner was itself paused; peers were forgiven
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harunner.paxos import InstanceKey, Value
from harunner.store.model import JobRecord


@dataclass(frozen=True)
class Propose:
    values: Mapping[InstanceKey, Value]


@dataclass(frozen=True)
class TakeOver:
    job_id: str
    generation: int


@dataclass(frozen=True)
class Start:
    record: JobRecord


@dataclass(frozen=True)
class Kill:
    job_id: str
    generation: int


@dataclass(frozen=True)
class Announce:
    record: JobRecord


@dataclass(frozen=True)
class Read:
    job_id: str


@dataclass(frozen=True)
class BecomePrimary:
    generation: int


@dataclass(frozen=True)
class LosePrimary:
    generation: int


@dataclass(frozen=True)
class ClaimScheduler:
    pass


@dataclass(frozen=True)
class Detected:
    slot: int
    incarnation: int
    reason: str


@dataclass(frozen=True)
class Paused:
    seconds: float


Action = (Propose | TakeOver | Start | Kill | Announce | Read | BecomePrimary | LosePrimary
          | ClaimScheduler | Detected | Paused)

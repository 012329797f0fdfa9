"""The jobs an executor holds, and the lists of them it hands to pool workers.

A job is held from `Executor.start` until its end is recorded (or it is killed or
given back); it waits in the executor's queue, in a worker's list, or runs (the
first of its worker's list). `HeldJob` keeps its clocks: only a job that runs has
a start and a deadline. `list_size` says how many queued jobs one free worker
gets; `held_behind` finds the claimed-ahead jobs waiting behind a running one.

Invariants: a job that waits (queued, or behind another in a list) has no clock;
a job that has run once is never given back (`releasable` goes False when it
starts); a list holds at most BATCH_MAX jobs and BATCH_WINDOW of measured work.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

from harunner.executor.launcher import WorkerProcess
from harunner.store import JobRecord

BATCH_MAX = 16         # pool mode: jobs handed to one worker in one message at most
BATCH_WINDOW = 0.01    # ... and no more than this much work at the measured attempt time


@dataclass
class HeldJob:
    """One job an executor holds: its record and clocks (monotonic)."""

    record: JobRecord
    deadline: float | None = None
    terminated_at: float | None = None
    started_at: float | None = None
    kills: int = 0
    faults: int = 0
    releasable: bool = False  # claimed ahead: may be given back until it runs

    def began(self, now: float) -> None:
        """It is the one its worker runs now: its clocks start."""
        self.started_at, self.terminated_at, self.releasable = now, None, False
        self.deadline = now + self.record.timeout if self.record.timeout else None

    def waits(self) -> None:
        """It waits again (queued, or behind another job in a list): no clock."""
        self.started_at = self.deadline = self.terminated_at = None


def list_size(queued: int, free_workers: int, attempt_time: float | None) -> int:
    """How many of `queued` jobs the next free worker gets: one while attempt times are
    unknown; else the queue's share per free worker, at most BATCH_MAX and BATCH_WINDOW
    of work (a long job never holds many behind it)."""
    if attempt_time is None or queued <= 1:
        return 1
    share = -(-queued // max(1, free_workers))
    return max(1, min(BATCH_MAX, share, int(BATCH_WINDOW / max(attempt_time, 1e-6))))


def held_behind(heads: list[tuple[str, WorkerProcess]], jobs: Mapping[str, HeldJob]
                ) -> list[tuple[float, list[str]]]:
    """(start of the job a worker runs, the claimed-ahead jobs waiting behind it), for
    each worker that has such jobs."""
    found = []
    for job_id, proc in heads:
        started = jobs[job_id].started_at
        behind = [waiting for waiting, generation in itertools.islice(proc.jobs, 1, None)
                  if generation is not None and jobs[waiting].releasable]
        if started is not None and behind:
            found.append((started, behind))
    return found

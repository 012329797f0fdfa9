"""Claiming ahead of the workers: how many jobs a runner may hold queued, and which to give back.

A worker that finishes a short job should find the next one waiting, not
wait for its runner to claim one (a claim is a commit: a millisecond or
more). So while recent attempts are short, the executor asks for a queue
ahead of its free workers: at most `prefetch` jobs, and no more than
PREFETCH_WINDOW seconds of work at the measured attempt time. Long jobs get
no queue, so they never hold up a claimed job that another runner's free
worker could run; and a claimed job that still waits after RELEASE_AFTER
(every worker was taken by a longer job meanwhile) is reported overdue, for
the runner to give back (`Store.release_many`: PENDING again, the claim not
counted as an attempt).

Invariants: only jobs claimed ahead and never handed to a worker are ever
overdue (a job taken over, or started once, is never given back); the
measured attempt time is a moving average of the attempts' own times, as
their workers measure them (the runner's start-to-outcome view only when a
worker did not say);
claims come in batches (hysteresis: while the queue still feeds the workers,
no claim until half the queue is free).
"""

from __future__ import annotations

PREFETCH_WINDOW = 0.05  # claim ahead at most this much queued work (by recent attempt times)
RELEASE_AFTER = 0.2     # a claimed job still queued this long is given back for others to run


class Lookahead:
    """The queue ahead of one executor's workers."""

    def __init__(self, prefetch: int) -> None:
        self.prefetch = max(0, prefetch)
        self.attempt_time: float | None = None  # moving average of attempt durations (s)
        self._claimed: dict[str, float] = {}  # queued, claimed ahead, never started: since

    def measured(self, took: float) -> None:
        """An attempt took `took` seconds (its worker's measure, or start to outcome)."""
        average = self.attempt_time
        self.attempt_time = took if average is None else (average + took) / 2

    def room(self, concurrency: int, holding: int, queued: int) -> int:
        """How many more jobs to claim, holding `holding` (running, queued, resuming)."""
        ahead = 0
        if self.prefetch and self.attempt_time is not None:
            ahead = min(self.prefetch,
                        int(PREFETCH_WINDOW * concurrency / max(self.attempt_time, 1e-5)))
        room = max(0, concurrency + ahead - holding)
        if queued and room < ahead // 2:
            return 0  # the queue still feeds the workers: claim later, in a bigger batch
        return room

    def claimed(self, job_id: str, now: float) -> None:
        """`job_id` was claimed ahead and queued at `now`."""
        self._claimed[job_id] = now

    def started(self, job_id: str) -> None:
        """`job_id` was handed to a worker (or dropped): never to be given back."""
        self._claimed.pop(job_id, None)

    def overdue(self, now: float) -> list[str]:
        """Claimed-ahead jobs queued longer than RELEASE_AFTER."""
        return [job for job, since in self._claimed.items() if now - since > RELEASE_AFTER]

    def due(self) -> float | None:
        """When the oldest claimed-ahead job becomes overdue, if there is one."""
        oldest = min(self._claimed.values(), default=None)
        return None if oldest is None else oldest + RELEASE_AFTER

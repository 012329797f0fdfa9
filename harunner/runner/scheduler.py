"""Claiming work: each runner takes due PENDING jobs for its own free workers.

Every runner, primary or standby, claims for itself: when it has room (free
workers plus a short queue of `prefetch` jobs, as Celery's prefetch does),
it reads the earliest due PENDING jobs through the store's index and moves
them PENDING@g -> RUNNING@g+1 owned by itself in one transaction
(`Store.assign_many`, a compare-and-set per job). Two runners reading the same
due jobs cannot both win one: the loser's compare-and-set finds the job
RUNNING and skips it. A runner with more room takes more, so work goes where
workers are free without a primary counting anyone's load.

When it looks: at once when poked (a client rang the store's doorbell, an
attempt ended, it was just started), again at once while it is still finding
work, and otherwise every `rescan` seconds (a retry whose back-off ran out
needs no poke). Each look is one indexed query bounded by the room it has, so
its cost does not grow with the number of pending or finished jobs.
"""

from __future__ import annotations

from harunner import metrics
from harunner.store import SCHEDULER_JOB, JobRecord, Owner, Store
from harunner.store.transitions import Assignment


class Scheduler:
    """This runner's claims on due PENDING jobs."""

    def __init__(self, store: Store, me: Owner, rescan: float = 1.0) -> None:
        self.store = store
        self.me = me
        self.rescan = rescan
        self.next_look = 0.0

    def poke(self) -> None:
        """Look at the next turn: something may have become due."""
        self.next_look = 0.0

    def due_in(self, now: float) -> float:
        """Seconds until the next look (0 when one is due now)."""
        return max(0.0, self.next_look - now)

    def tick(self, now: float, wall: float, room: int) -> list[JobRecord]:
        """Claim up to `room` due jobs for this runner; the records it won."""
        if room <= 0 or now < self.next_look:
            return []
        due = [r for r in self.store.due_pending(wall, room + 1) if r.job_id != SCHEDULER_JOB]
        due = due[:room]
        claimed = self.store.assign_many([Assignment(r.job_id, self.me, r.generation)
                                          for r in due]) if due else []
        for record in claimed:  # queue wait: from due (submitted, or the retry's time) to claimed
            metrics.claimed(record.name, record.attempts,
                            record.updated_at - max(record.created_at, record.not_before))
        more = len(due) == room or len(claimed) < len(due)  # full, or lost some races
        self.next_look = now if more else now + self.rescan
        return claimed

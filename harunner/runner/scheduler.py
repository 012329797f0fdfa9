"""The scheduler duty: assign pending jobs to live runners.

Only the primary runs it, and the primary is simply the runner that owns the
`__scheduler__` record: the duty is taken over after a crash exactly like a
job. Assignment is a compare-and-set under the job's lock (PENDING at
generation g -> RUNNING at g + 1), so two would-be primaries can never both
assign one job. A retry waits in PENDING until its `not_before` time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harunner.errors import LockTimeoutError, StaleTransitionError, StoreError
from harunner.store import SCHEDULER_JOB, JobRecord, JobState, Owner, Store

MAX_ASSIGN_PER_TICK = 16  # the rest waits for the next turn of the loop, so beats keep flowing


def choose_owner(live: Sequence[Owner], load: dict[int, int], me: Owner) -> Owner:
    """The least loaded live runner; ties go to `me`, then to the lowest slot."""
    return min(live, key=lambda o: (load.get(o.slot, 0), o != me, o.slot))


class Scheduler:
    """Assigns due PENDING jobs; rescans the store when poked or every `rescan` seconds."""

    def __init__(self, store: Store, rescan: float = 1.0,
                 keep_alive: Callable[[], None] = lambda: None,
                 batch: int = MAX_ASSIGN_PER_TICK) -> None:
        self.store = store
        self.rescan = rescan
        self.keep_alive = keep_alive
        self.batch = batch
        self.next_scan = 0.0
        self.due_at: dict[str, float] = {}

    def poke(self) -> None:
        self.next_scan = 0.0

    def tick(self, now: float, wall: float, live: Sequence[Owner], load: dict[int, int],
             me: Owner, on_assign: Callable[[JobRecord], None]) -> None:
        """Assign every PENDING job that is due to a live runner."""
        if not live:
            return
        if now >= self.next_scan:
            self.next_scan = now + self.rescan
            pending = self.store.list_jobs({JobState.PENDING})
            self.due_at = {r.job_id: r.not_before for r in pending if r.job_id != SCHEDULER_JOB}
        load = dict(load)
        due = [job_id for job_id, not_before in sorted(self.due_at.items(), key=lambda i: i[1])
               if not_before <= wall]
        for job_id in due[:self.batch]:
            self.keep_alive()
            del self.due_at[job_id]
            owner = choose_owner(live, load, me)
            record = self._assign(job_id, owner)
            if record is not None:
                load[owner.slot] = load.get(owner.slot, 0) + 1
                on_assign(record)

    def _assign(self, job_id: str, owner: Owner) -> JobRecord | None:
        try:
            current = self.store.get(job_id)
            if current.state is not JobState.PENDING:
                return None
            return self.store.assign(job_id, owner, current.generation)
        except (StaleTransitionError, LockTimeoutError):
            self.poke()
            return None
        except StoreError:
            return None

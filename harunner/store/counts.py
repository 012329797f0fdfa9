"""Counts of jobs by state for the metrics endpoint, at a cost bounded per scrape.

Unfinished jobs (pending, running) are counted by state and job name through
an index whose first column is `state`: the cost follows the jobs that are
waiting or running, never the finished ones (the scheduler duty's record is
left out). Finished jobs are counted by state only, from such an index alone
(a covering index: no row is read): one indexed count that grows with the
finished jobs kept (`harunner prune` bounds them). Nothing is written; a
busy or missing database gives no counts.
"""

from __future__ import annotations

from pathlib import Path

from harunner.errors import StoreError
from harunner.store.db import Database
from harunner.store.model import SCHEDULER_JOB, JobState

UNFINISHED = ("pending", "running")
FINISHED = tuple(state.value for state in JobState if state.finished)


class JobCounts:
    """Reads counts from the job database at `path` (one connection per thread)."""

    def __init__(self, path: Path, busy_timeout: float = 0.2) -> None:
        self.path = Path(path)
        self.db = Database(self.path, busy_timeout)

    def by_state_and_name(self) -> dict[tuple[str, str], int]:
        """(state, name) -> jobs, for pending and running jobs; {} if unreadable."""
        if not self.path.exists():
            return {}
        try:
            found = self.db.read("SELECT state, name, COUNT(*) FROM jobs WHERE state IN (?, ?) "
                                 "AND job_id != ? GROUP BY state, name",
                                 (*UNFINISHED, SCHEDULER_JOB))
        except StoreError:
            return {}
        finally:
            self.db.close()  # each scrape runs in a thread of its own
        return {(str(row[0]), str(row[1])): int(row[2]) for row in found}

    def finished(self) -> dict[str, int]:
        """state -> jobs, for every finished state (zeros included); {} if unreadable."""
        if not self.path.exists():
            return {}
        marks = ", ".join("?" for _ in FINISHED)
        try:
            found = self.db.read(f"SELECT state, COUNT(*) FROM jobs "
                                 f"WHERE state IN ({marks}) GROUP BY state", FINISHED)
        except StoreError:
            return {}
        finally:
            self.db.close()
        counts = dict.fromkeys(FINISHED, 0)
        counts.update({str(row[0]): int(row[1]) for row in found})
        return counts

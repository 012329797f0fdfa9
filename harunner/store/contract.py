"""What the cluster needs from a job store: the contract every backend keeps.

Two backends keep it: `harunner.store.jobs.Store` (one host: SQLite and job
folders) and `harunner.store.etcd.store.EtcdStore` (several hosts: etcd).
`tests/contract/` runs one suite against both. Runners, workers, the API and the
CLI use a store only through these methods (`harunner.store.backends.open_store`
picks one from the config).

Invariants every backend keeps:
- **Acknowledged is durable.** A call that returns has its change durable and
  readable by any other store object on the same state (another process,
  another host for etcd); one that raises changed nothing, or, for a batch,
  nothing of the refused chunk (see below).
- **Compare-and-set transitions.** Every change of a record is computed from the
  record as read and written only if the record is still that one (the same
  generation and state: a compare inside the database or inside etcd), so of
  two racing changes of one job, one wins and the other is refused or retried
  on the winner's result. Transitions follow `model.TRANSITIONS`
  (`transitions.py` computes them, for every backend).
- **Generation fencing.** A job's generation only grows; each generation is
  granted once (by `assign`, `take_over`). A write at generation g
  (`write_checkpoint`, `set_progress`, `finish*`) is accepted only while the job
  is RUNNING at g: a lower g raises `FencedError` (a newer owner took over), a
  higher one or a job that is not RUNNING `StaleTransitionError`; an unknown
  job `UnknownJobError`. A progress write never fences a checkpoint.
- **Batches.** `*_many` and `settle` apply every item that still applies and
  skip (never raise for) the stale ones. A batch is all or nothing per
  transaction: the local store uses one transaction per call; etcd one txn per
  chunk of whole jobs (its `--max-txn-ops`), each chunk all or nothing.
- **Checkpoints.** `read_checkpoint` gives the newest acknowledged checkpoint,
  never a partial or an older one; its `seq` grows with every write of the job.
  A checkpoint above the backend's limit is refused with
  `CheckpointTooLargeError` before anything is written.
- **The change feed.** `head()` is a cursor; `changes(cursor)` returns the
  records changed after it, in change order, each job once per answer at its
  newest change, and the cursor to pass next: no change is missed and none is
  returned twice over successive calls. `brief=True` leaves out args, result
  and history, and jobs never claimed (PENDING at generation 0).
- **Bounded reads.** `due_pending`, `running`, `owned_by`, `count_unfinished`
  and `changes` go through indexes; none reads every job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harunner.store import transitions as t
from harunner.store.layout import Layout
from harunner.store.model import Checkpoint, JobRecord, JobState, Owner, Progress


@runtime_checkable
class JobStore(Protocol):
    """The store's contract (the invariants are in this module's docstring)."""

    layout: Layout  # the local state folder: job logs, events (every backend has one)

    def init(self) -> None:
        """Make the store ready (create what is missing, check the server); idempotent."""

    def close(self) -> None:
        """Release this thread's connections (a later call opens new ones)."""

    def get(self, job_id: str) -> JobRecord:
        """The job's record; `UnknownJobError` if there is none."""

    def list_jobs(self, states: Iterable[JobState] | None = None, *, name: str | None = None,
                  limit: int | None = None, newest_first: bool = False,
                  before: str | None = None, after: str | None = None) -> list[JobRecord]:
        """Records in creation order (or newest first), filtered, paged by job id cursors."""

    def changes(self, after_seq: int, limit: int = 1000, *, brief: bool = False
                ) -> tuple[list[JobRecord], int]:
        """Records changed after cursor `after_seq` and the next cursor (the change feed)."""

    def head(self) -> int:
        """The cursor of the newest change: read it before a full reconcile."""

    def due_pending(self, now_wall: float, limit: int = 1000) -> list[JobRecord]:
        """PENDING jobs with `not_before <= now_wall`, earliest first, at most `limit`."""

    def running(self) -> list[JobRecord]:
        """Every RUNNING job (bounded by how many run)."""

    def owned_by(self, owner: Owner, limit: int = 1000) -> list[JobRecord]:
        """RUNNING jobs of `owner`, at most `limit` (after `owner` lost its lease or died)."""

    def count_unfinished(self) -> int:
        """How many jobs are PENDING or RUNNING, the scheduler duty left out."""

    def submit(self, name: str, args: dict[str, Any], *, retries: int = 0,
               backoff: float = 1.0, timeout: float | None = None,
               job_id: str | None = None) -> JobRecord:
        """Create a PENDING job, durably; idempotent with an explicit `job_id`."""

    def submit_many(self, items: Sequence[t.Submission]) -> list[JobRecord]:
        """Create PENDING jobs; their records in the order given."""

    def assign(self, job_id: str, owner: Owner, expected_generation: int) -> JobRecord:
        """PENDING@expected_generation -> RUNNING@expected_generation+1 owned by `owner`."""

    def assign_many(self, assignments: Sequence[t.Assignment]) -> list[JobRecord]:
        """Assign pending jobs; stale ones are skipped."""

    def take_over(self, job_id: str, generation: int, owner: Owner) -> JobRecord:
        """Raise a RUNNING job to `generation` (above the record's) for `owner`; idempotent."""

    def take_over_many(self, items: Sequence[t.TakeOver]
                       ) -> tuple[list[JobRecord], list[t.TakeOver]]:
        """Many take-overs: (applied records, items busy now: try them again later)."""

    def release_many(self, items: Sequence[t.Release]) -> list[JobRecord]:
        """Give back claimed jobs that never started (PENDING again); the records given back."""

    def finish(self, job_id: str, generation: int, *, result: Any = None,
               error: str | None = None, retry_at: float | None = None) -> JobRecord:
        """End an attempt: SUCCEEDED, FAILED, or PENDING again until `retry_at`; fenced."""

    def finish_many(self, outcomes: Sequence[t.Outcome], *,
                    lock_wait: float | None = None) -> list[JobRecord]:
        """Many fenced finishes; the applied records."""

    def settle(self, outcomes: Sequence[t.Outcome], claim: t.Claim | None, *,
               lock_wait: float | None = None) -> tuple[list[JobRecord], list[JobRecord]]:
        """Fenced finishes and a claim of due jobs together: (finished, claimed)."""

    def cancel(self, job_id: str) -> JobRecord:
        """CANCELLED at generation + 1 (fences the running owner)."""

    def retry(self, job_id: str) -> JobRecord:
        """A FAILED or CANCELLED job PENDING again at generation + 1, attempts reset."""

    def write_checkpoint(self, job_id: str, generation: int, state: dict[str, Any]) -> int:
        """Durably store `state` as the job's newest checkpoint; its seq; fenced."""

    def read_checkpoint(self, job_id: str) -> Checkpoint | None:
        """The newest acknowledged checkpoint, or None if there is none."""

    def set_progress(self, job_id: str, generation: int, progress: Progress) -> None:
        """Record soft progress; fenced."""

    def read_progress(self, job_id: str) -> Progress | None:
        """The job's last progress, or None."""

    def log_path(self, job_id: str) -> Path:
        """Where the job's log goes (a local file on every backend)."""

    def prune(self, older_than_wall: float) -> int:
        """Delete finished jobs last updated before `older_than_wall`; how many."""

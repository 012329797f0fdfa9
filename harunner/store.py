"""The file-locked checkpoint store. (API contract; implementation in progress.)

Layout under the state directory:

    jobs/<job_id>/record         the job's record (KIND_RECORD, JSON payload)
    jobs/<job_id>/ckpt.<seq>     the newest and the previous good checkpoint (KIND_CHECKPOINT)
    jobs/<job_id>/progress       soft progress, fenced but not fsynced
    jobs/<job_id>/job.log        the job's log
    locks/<job_id>.lock          the job's filelock (never the data file)
    paxos/                       acceptor and proposer state of each slot
    run/                         sockets, pid files, slot locks (mode 0700)

Invariants: every mutation of a job happens under that job's lock, acquired
with a timeout; the writer's generation is checked against the record's under
that same lock; a lower generation gets `FencedError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

SCHEDULER_JOB = "__scheduler__"


class JobState(str, Enum):
    """Where a job is in its life. Transitions are in `TRANSITIONS`."""

    PENDING = "pending"      # waiting for the scheduler (new, or a retry waiting for not_before)
    RUNNING = "running"      # owned by a runner at `generation`
    SUCCEEDED = "succeeded"  # finished with a result
    FAILED = "failed"        # finished with an error, retries exhausted
    CANCELLED = "cancelled"  # cancelled by the user

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.RUNNING, JobState.PENDING, JobState.SUCCEEDED,
                                 JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class Owner:
    """A runner incarnation: slot number and the incarnation counter of that slot."""

    slot: int
    incarnation: int


@dataclass(frozen=True)
class Progress:
    done: float
    total: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class JobRecord:
    """A job's durable record."""

    job_id: str
    name: str
    args: dict[str, Any]
    state: JobState
    generation: int = 0
    owner: Owner | None = None
    attempts: int = 0
    retries: int = 0
    backoff: float = 1.0
    timeout: float | None = None
    not_before: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0
    result: Any = None
    error: str | None = None
    history: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Checkpoint:
    job_id: str
    generation: int
    seq: int
    state: dict[str, Any]


class Store:
    """One state directory. All methods are safe across processes."""

    def __init__(self, root: Path, lock_timeout: float = 2.0) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout

    def submit(self, name: str, args: dict[str, Any], *, retries: int = 0,
               backoff: float = 1.0, timeout: float | None = None) -> JobRecord:
        """Create a PENDING job; returns only once its record is durable."""
        raise NotImplementedError

    def get(self, job_id: str) -> JobRecord:
        """The job's record; `UnknownJobError` if there is none."""
        raise NotImplementedError

    def list_jobs(self, states: set[JobState] | None = None) -> list[JobRecord]:
        """Records, oldest first, optionally only those in `states`."""
        raise NotImplementedError

    def assign(self, job_id: str, owner: Owner, expected_generation: int) -> JobRecord:
        """CAS PENDING@expected_generation -> RUNNING@expected_generation+1 by `owner`."""
        raise NotImplementedError

    def take_over(self, job_id: str, generation: int, owner: Owner) -> JobRecord:
        """Raise a RUNNING job to `generation` (> the record's) with `owner`; idempotent."""
        raise NotImplementedError

    def read_checkpoint(self, job_id: str) -> Checkpoint | None:
        """The newest valid checkpoint, skipping (and reporting) a corrupt newest one."""
        raise NotImplementedError

    def write_checkpoint(self, job_id: str, generation: int, state: dict[str, Any]) -> int:
        """Durably store `state` as the next checkpoint; returns its seq; fenced."""
        raise NotImplementedError

    def set_progress(self, job_id: str, generation: int, progress: Progress) -> None:
        """Record soft progress; fenced."""
        raise NotImplementedError

    def read_progress(self, job_id: str) -> Progress | None:
        raise NotImplementedError

    def finish(self, job_id: str, generation: int, *, result: Any = None,
               error: str | None = None, retry_at: float | None = None) -> JobRecord:
        """End an attempt: SUCCEEDED, FAILED, or PENDING again until `retry_at`; fenced."""
        raise NotImplementedError

    def cancel(self, job_id: str) -> JobRecord:
        """CANCELLED at generation + 1, which fences the running owner."""
        raise NotImplementedError

    def log_path(self, job_id: str) -> Path:
        raise NotImplementedError

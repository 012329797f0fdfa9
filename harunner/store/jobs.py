"""The store: job records in one SQLite database, checkpoints in file-locked job folders.

Where each file lives: `harunner.store.layout` (jobs.db, jobs/<id>/, locks/jobs.lock).
docs/store.md gives the schema, the transactions and the numbers behind them.

Invariants:
- Records: every change is a compare-and-set on (job_id, generation, state) in
  a write transaction that commits with one fsync before the call returns;
  a batch (`*_many`) is one transaction: all its applied items or none.
- Fencing: every change of a RUNNING job's generation or state (`take_over*`,
  `finish*`, `cancel`) holds that job's file lock across its transaction, and
  `write_checkpoint`/`set_progress` check the record's generation and state
  under the same lock before writing: a lower generation gets `FencedError`, a
  higher one (never granted) and any write to a job that is not RUNNING get
  `StaleTransitionError`. `assign` (PENDING→RUNNING) takes no job lock: no
  writer is valid for a PENDING job, so there is no check-then-write to race.
- Lock waits are bounded: file locks by `lock_timeout` (`LockTimeoutError`),
  SQLite's write lock by the same `busy_timeout`; batched take-overs never wait
  (a busy job is returned as busy).
- Checkpoints go through `durable.write_atomic`; the newest and the previous
  good one are kept (`job_files`). Readers take no lock.
- Nothing reads all jobs: every query goes through an index with a bound.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from harunner.config import Config
from harunner.errors import CorruptFileError, UnknownJobError
from harunner.failpoints import failpoint
from harunner.store import job_files, legacy, upkeep
from harunner.store import transitions as t
from harunner.store.db import COMMIT_FAILPOINTS, Database
from harunner.store.durable import KIND_PROGRESS, WRITE_FAILPOINTS, write_atomic
from harunner.store.layout import PROGRESS, Layout
from harunner.store.locks import JobLocks
from harunner.store.model import (
    SCHEDULER_JOB,
    Checkpoint,
    JobRecord,
    JobState,
    Owner,
    Progress,
    check_writer,
    checkpoint_from,
    progress_from,
    state_json,
    to_json,
)
from harunner.store.table import BATCH_FAILPOINTS, JobTable

log = logging.getLogger("harunner.store")

CHECKPOINT_FAILPOINTS = ("store.checkpoint.before_write", *WRITE_FAILPOINTS,
                         "store.checkpoint.before_prune", "store.checkpoint.after_prune")
RECORD_FAILPOINTS = COMMIT_FAILPOINTS
FAILPOINTS = tuple(dict.fromkeys(CHECKPOINT_FAILPOINTS + RECORD_FAILPOINTS + BATCH_FAILPOINTS))
DEFAULT_LIMIT = 1000
MIN_BUSY_TIMEOUT = 0.2  # SQLite's write lock is shared by all jobs: one commit may take tens of ms


class Store:
    """One state directory. Safe across processes and threads (one connection each).

    `lock_timeout` bounds every job-lock wait (seconds); `busy_timeout` a wait for
    SQLite's write lock (default `lock_timeout`, at least `MIN_BUSY_TIMEOUT`); `clock`
    gives the wall-clock time stored in records (never used for timeouts)."""

    def __init__(self, root: Path, lock_timeout: float = 2.0,
                 clock: Callable[[], float] = time.time, *,
                 busy_timeout: float | None = None) -> None:
        self.root = Path(root)
        self.layout = Layout(self.root)
        self.lock_timeout = lock_timeout
        self.clock = clock
        self.corrupt_seen = 0
        self._locks = JobLocks(self.layout.job_locks)
        self._ready = False
        self._db = Database(self.layout.database, max(lock_timeout, MIN_BUSY_TIMEOUT)
                            if busy_timeout is None else busy_timeout)
        self._table = JobTable(self._db, self._report_row)

    @classmethod
    def from_config(cls, config: Config, lock_timeout: float | None = None, *,
                    busy_timeout: float | None = None) -> Store:
        """The store of `config`'s state directory; lock waits `lock_timeout_ms` by default."""
        wait = config.lock_timeout_ms / 1000 if lock_timeout is None else lock_timeout
        return cls(config.state_path, wait, busy_timeout=busy_timeout)

    def init(self) -> None:
        """Create the state directory, its folders and the job database if missing (and
        import harunner 0.1.0's record files, once, durably); idempotent."""
        if not self._ready:
            job_files.make_layout(self.root)
            job_files.warn_if_network(self.root)
            legacy.import_once(self.layout, self._db, self._table, self._report)
            self._ready = True

    def close(self) -> None:
        """Close this thread's database connection (the next call opens a new one)."""
        self._db.close()

    def _readable(self) -> bool:
        """Open the database for reading; False if the state directory holds no jobs at all."""
        if not self._ready and not self.layout.database.exists() and not self.layout.jobs.is_dir():
            return False
        self.init()
        return True

    # -- reading (no job lock) ------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        """The job's record; `UnknownJobError` if there is none."""
        found = self._table.fetch(job_id) if self._readable() else None
        if found is None:
            raise UnknownJobError(f"no job with id {job_id!r}; `harunner status` lists jobs")
        return found

    def list_jobs(self, states: Iterable[JobState] | None = None, *, name: str | None = None,
                  limit: int | None = None, newest_first: bool = False,
                  before: str | None = None, after: str | None = None) -> list[JobRecord]:
        """Records oldest (or newest) first, filtered and paged by the database.

        `states`, `name`: keep only those; `before`/`after`: only jobs created before/after
        the job with that id (paging); `limit`: at most that many. Damaged rows are skipped.
        """
        if not self._readable():
            return []
        for cursor in (before, after):
            if cursor is not None:
                self.get(cursor)
        return self._table.query(None if states is None else set(states), name, limit,
                                 newest_first, before, after)

    def changes(self, after_seq: int, limit: int = DEFAULT_LIMIT, *, brief: bool = False
                ) -> tuple[list[JobRecord], int]:
        """Records changed after change number `after_seq`, in change order, at most `limit`.

        Returns them with the change number to pass next time. A record
        changed twice appears once, at its newest change; pruned jobs vanish.
        `brief` (the runners' feed): records without args, result and history, and
        none of a job never claimed (PENDING at generation 0); the cursor passes them.
        """
        if not self._readable():
            return [], after_seq
        return self._table.changes(after_seq, limit, brief)  # type: ignore[no-any-return]

    def head(self) -> int:
        """The newest change number: read it before a full reconcile, then follow `changes`."""
        return self._table.head() if self._readable() else 0

    def due_pending(self, now_wall: float, limit: int = DEFAULT_LIMIT) -> list[JobRecord]:
        """PENDING jobs whose `not_before` ≤ `now_wall`, earliest first, at most `limit`."""
        return self._table.due_pending(now_wall, limit) if self._readable() else []

    def count_unfinished(self) -> int:
        """How many jobs are PENDING or RUNNING, the scheduler duty left out (one indexed count)."""
        return self._table.count_unfinished(SCHEDULER_JOB) if self._readable() else 0

    def running(self) -> list[JobRecord]:
        """Every RUNNING job (the full reconcile at a runner's start)."""
        return self.list_jobs({JobState.RUNNING})

    def owned_by(self, owner: Owner, limit: int = DEFAULT_LIMIT) -> list[JobRecord]:
        """RUNNING jobs owned by `owner`, at most `limit` (one query bounded by the RUNNING)."""
        ready = self._readable()
        return self._table.owned_by(owner.slot, owner.incarnation, limit) if ready else []

    def read_checkpoint(self, job_id: str) -> Checkpoint | None:
        """The newest valid checkpoint, skipping (and reporting) a corrupt newest one."""
        folder = self._folder(job_id)
        if not folder.is_dir():
            self.get(job_id)
            return None
        return job_files.read_newest_checkpoint(  # type: ignore[no-any-return]
            folder, lambda data, seq: checkpoint_from(data, job_id, seq), self._report)

    def read_progress(self, job_id: str) -> Progress | None:
        """The job's last progress, or None if there is none or it is unreadable."""
        try:
            found = job_files.load(self._folder(job_id) / PROGRESS, KIND_PROGRESS,
                                   lambda data: progress_from(data, job_id))
        except (FileNotFoundError, NotADirectoryError, CorruptFileError):
            return None
        return found  # type: ignore[no-any-return]

    def log_path(self, job_id: str) -> Path:
        """Where the job's log goes: jobs/<job_id>/job.log (its folder is created if missing)."""
        path = self.layout.job_log(self._checked_id(job_id))
        if self._ready or self.root.is_dir():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    # -- submitting -----------------------------------------------------------------

    def submit(self, name: str, args: dict[str, Any], *, retries: int = 0,
               backoff: float = 1.0, timeout: float | None = None,
               job_id: str | None = None) -> JobRecord:
        """Create a PENDING job; returns only once its record is durable.

        With an explicit `job_id` (such as `SCHEDULER_JOB`) submit is idempotent:
        if that job exists, its record is returned unchanged.
        """
        return self.submit_many([t.Submission(name, args, retries, backoff, timeout, job_id)])[0]

    def submit_many(self, items: Sequence[t.Submission]) -> list[JobRecord]:
        """Create PENDING jobs in one transaction (one fsync); records in the order given."""
        texts = []  # each item's args as JSON: checked and encoded once, then stored
        for item in items:
            texts.append(t.encoded_args(item))
            if item.job_id is not None:
                self._checked_id(item.job_id)
        self.init()
        now, token, count = self.clock(), os.urandom(2), len(items)
        with self._db.write() as writer:
            return [self._table.create(writer, item, now, token, index, count, text)
                    for index, (item, text) in enumerate(zip(items, texts, strict=True))]

    # -- transitions ----------------------------------------------------------------

    def assign(self, job_id: str, owner: Owner, expected_generation: int) -> JobRecord:
        """CAS PENDING@expected_generation -> RUNNING@expected_generation+1 by `owner`."""
        self._checked_id(job_id)
        item = t.Assignment(job_id, owner, expected_generation)
        return self._single(*self._transition([item], t.assigned))

    def assign_many(self, assignments: Sequence[t.Assignment]) -> list[JobRecord]:
        """Assign pending jobs in one transaction; stale ones are skipped, not raised."""
        return self._transition(assignments, t.assigned)[0]

    def take_over(self, job_id: str, generation: int, owner: Owner) -> JobRecord:
        """Raise a RUNNING job to `generation` (> the record's) with `owner`; idempotent."""
        return self._locked_one(t.TakeOver(job_id, generation, owner), t.taken_over)

    def take_over_many(self, items: Sequence[t.TakeOver]
                       ) -> tuple[list[JobRecord], list[t.TakeOver]]:
        """Many take-overs in one transaction: (applied records, items whose lock was busy).

        Never waits for a lock; an item that no longer applies is in neither list.
        """
        return self._without_waiting(items, t.taken_over)

    def release_many(self, items: Sequence[t.Release]) -> list[JobRecord]:
        """Give back claimed jobs that never started, in one transaction; never waits for a
        job lock (a busy one is left as it is); returns the records given back."""
        return self._without_waiting(items, t.released)[0]

    def finish(self, job_id: str, generation: int, *, result: Any = None,
               error: str | None = None, retry_at: float | None = None) -> JobRecord:
        """End an attempt: SUCCEEDED, FAILED, or PENDING again until `retry_at`; fenced."""
        return self._locked_one(t.Outcome(job_id, generation, result, error, retry_at),
                                t.finished)

    def finish_many(self, outcomes: Sequence[t.Outcome], *,
                    lock_wait: float | None = None) -> list[JobRecord]:
        """Many fenced finishes in one transaction; the applied records (see `settle`)."""
        return self.settle(outcomes, None, lock_wait=lock_wait)[0]

    def settle(self, outcomes: Sequence[t.Outcome], claim: t.Claim | None, *,
               lock_wait: float | None = None) -> tuple[list[JobRecord], list[JobRecord]]:
        """Fenced finishes and a claim of due jobs in one transaction: (finished, claimed).

        Each job's lock is waited for at most `lock_wait` seconds (default
        `lock_timeout`); fenced, stale and lock-busy outcomes are left out (`get`
        tells which: a busy one is still RUNNING at its generation)."""
        wait = self.lock_timeout if lock_wait is None else lock_wait
        with self._held([item.job_id for item in outcomes], wait=wait) as busy:
            chosen = [item for item in outcomes if item.job_id not in busy]
            now = self.clock()
            # Read and computed before the write lock, which is then held only for the
            # compare-and-set statements: a client's submission never waits for this work.
            wanted = [] if claim is None or claim.room <= 0 else (
                self._table.prepare_claim(claim, now))
            if not chosen and not wanted:
                return [], []  # nothing to write: no write lock taken just to find nothing
            done, _, won = self._table.settle(chosen, t.job_of,
                                              lambda record, item: t.finished(record, item, now),
                                              wanted)
            return done, won

    def cancel(self, job_id: str) -> JobRecord:
        """CANCELLED at generation + 1, which fences the running owner."""
        return self._locked_one(job_id, t.cancelled)

    def retry(self, job_id: str) -> JobRecord:
        """A FAILED or CANCELLED job back to PENDING at generation + 1, attempts reset to 0."""
        return self._locked_one(job_id, t.retried)

    def _transition(self, items: Sequence[Any],
                    change: Callable[[JobRecord, Any, float], JobRecord]
                    ) -> tuple[list[JobRecord], list[tuple[Any, Exception]]]:
        """Apply `change` to each item's record in one write transaction: (applied, refused)."""
        self.init()
        now = self.clock()
        applied, refused, _ = self._table.settle(
            items, t.job_of, lambda record, item: change(record, item, now))
        return applied, refused

    def _without_waiting(self, items: Sequence[Any], change: Callable[[JobRecord, Any, float],
                         JobRecord]) -> tuple[list[JobRecord], list[Any]]:
        """`change` each item under its job's lock, in one transaction, never waiting for a
        lock: (applied records, items whose lock was busy)."""
        with self._held([item.job_id for item in items], wait=0.0) as busy:
            chosen = [item for item in items if item.job_id not in busy]
            applied = self._transition(chosen, change)[0] if chosen else []
        return applied, [item for item in items if item.job_id in busy]

    def _locked_one(self, item: Any, change: Callable[[JobRecord, Any, float], JobRecord]
                    ) -> JobRecord:
        """One change under the job's lock; raises what refused it."""
        with self.job_lock(t.job_of(item)):
            return self._single(*self._transition([item], change))

    @staticmethod
    def _single(applied: list[JobRecord], refused: list[tuple[Any, Exception]]) -> JobRecord:
        if refused:
            raise refused[0][1]
        return applied[0]

    # -- checkpoints and progress (under the job's lock) ----------------------------

    def write_checkpoint(self, job_id: str, generation: int, state: dict[str, Any]) -> int:
        """Durably store `state` as the next checkpoint; returns its seq; fenced."""
        text = state_json(job_id, state)
        with self.job_lock(job_id):
            failpoint("store.checkpoint.before_write")
            check_writer(self.get(job_id), generation)
            return self._append_checkpoint(job_id, generation, text)

    def _append_checkpoint(self, job_id: str, generation: int, text: str) -> int:
        """Write the next checkpoint and prune; the caller holds the lock and checked fencing."""
        return job_files.append_checkpoint(self._folder(job_id), job_id, generation, text,
                                           self._report)

    def set_progress(self, job_id: str, generation: int, progress: Progress) -> None:
        """Record soft progress (atomic, not fsynced); fenced."""
        payload = to_json({"job_id": job_id, "generation": generation,
                           **dataclasses.asdict(progress)})
        with self.job_lock(job_id):
            check_writer(self.get(job_id), generation)
            folder = self._folder(job_id)
            job_files.make_job_dir(folder)
            write_atomic(folder / PROGRESS, KIND_PROGRESS, payload.encode(), durable=False)

    # -- housekeeping ---------------------------------------------------------------

    def prune(self, older_than_wall: float) -> int:
        """Delete finished jobs last updated before `older_than_wall`, with their files."""
        if not self._readable():
            return 0
        return upkeep.prune(self._held, self.layout, self._table, self._db, older_than_wall)

    def rebuild_index(self) -> int:
        """Check the job database (SQLite quick_check); `CorruptFileError` if it fails."""
        self.init()
        return upkeep.check(self._db, self.layout.database)

    # -- locking --------------------------------------------------------------------

    @contextlib.contextmanager
    def job_lock(self, job_id: str, wait: float | None = None) -> Iterator[None]:
        """Hold the job's file lock (re-entrant within a thread), waiting at most lock_timeout."""
        self.init()
        with self._locks.hold(self._checked_id(job_id),
                              self.lock_timeout if wait is None else wait):
            yield

    @contextlib.contextmanager
    def _held(self, job_ids: Iterable[str], wait: float) -> Iterator[set[str]]:
        """Hold the locks of `job_ids`; yields the ids whose lock stayed busy (or are invalid)."""
        self.init()
        chosen = set(job_ids)
        valid = {job_id for job_id in chosen if job_files.valid_job_id(job_id)}
        with self._locks.holding(valid, wait) as busy:
            yield busy | (chosen - valid)

    def _report(self, path: Path, error: CorruptFileError) -> None:
        self.corrupt_seen += 1
        where = "" if str(error).startswith(str(path)) else f"{path}: "
        log.warning("corrupt state file: %s%s; trying the previous version", where, error)

    def _report_row(self, error: CorruptFileError) -> None:
        self.corrupt_seen += 1
        log.warning("skipping a damaged job record: %s", error)

    def _folder(self, job_id: str) -> Path:
        return self.layout.job_folder(self._checked_id(job_id))

    def _checked_id(self, job_id: str) -> str:
        if not job_files.valid_job_id(job_id):
            raise UnknownJobError(f"no job with id {job_id!r}; job ids are letters, digits, "
                                  "'-' and '_'; `harunner status` lists jobs")
        return job_id


"""The file-locked checkpoint store: job records, checkpoints and progress on disk.

Where each file lives: `harunner.store.layout` (jobs/, locks/, index/active/).

Invariants: every mutation of a job happens under that job's lock, acquired
with a timeout; the writer's generation is checked against the record's under
that same lock: a lower generation gets `FencedError`, a higher one (never
granted) and any write to a job that is not RUNNING get `StaleTransitionError`.
Every write goes through `durable.write_atomic` (checksummed, fsynced, renamed)
and is durable before the call returns. State changes go through `advance`,
which follows `TRANSITIONS`. Readers (`get`, `list_jobs`, `read_checkpoint`,
`read_progress`) take no lock, so a paused writer never blocks `status`.

Generations: `submit` creates a job PENDING at generation 0. `assign` moves
PENDING@g to RUNNING@g+1 (attempts + 1). `take_over` raises a RUNNING job to a
higher generation and owner (attempts unchanged: the new owner resumes the
same attempt from its checkpoint). `finish` with a retry sets PENDING again at
the same generation; the next `assign` raises it. `cancel` sets CANCELLED at
generation + 1, which fences the owner still running. `retry` sets a FAILED or
CANCELLED job PENDING again at generation + 1 with its attempts reset.
`prune` deletes finished jobs (record, checkpoints, log, lock) under their lock.

The index: `list_jobs` of unfinished states reads only the jobs marked in
index/active, so the runners' frequent scans cost O(unfinished jobs), not
O(all jobs ever). A marker is created before the record that makes a job
unfinished is written, and removed only after the record that finishes it is
written, so a crash in between leaves an extra marker (filtered out by the
record, which is the truth) and never a missing one. `rebuild_index` repairs
the index from the records; the supervisor runs it at every start.

Limit: the fallback to `record.prev` trusts the older copy. If an acknowledged
newest record is later destroyed (media error, a user's editor), the job steps
back one transition, possibly one generation; the decided Paxos instance is
then the authority that re-raises it with `take_over`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import filelock

from harunner.config import Config
from harunner.errors import (
    CorruptFileError,
    JobArgumentError,
    LockTimeoutError,
    StaleTransitionError,
    StoreError,
    UnknownJobError,
)
from harunner.failpoints import failpoint
from harunner.store import job_files
from harunner.store.durable import (
    KIND_CHECKPOINT,
    KIND_PROGRESS,
    WRITE_FAILPOINTS,
    fsync_dir,
    write_atomic,
)
from harunner.store.layout import PROGRESS, Layout
from harunner.store.model import (
    HISTORY_LIMIT,
    SCHEDULER_JOB,
    Checkpoint,
    JobRecord,
    JobState,
    Owner,
    Progress,
    advance,
    check_writer,
    checkpoint_from,
    owner_name,
    progress_from,
    record_from,
    record_to_dict,
    stamp,
    state_json,
    to_json,
)

log = logging.getLogger("harunner.store")

CHECKPOINT_FAILPOINTS = ("store.checkpoint.before_write", *WRITE_FAILPOINTS,
                         "store.checkpoint.before_prune", "store.checkpoint.after_prune")
RECORD_FAILPOINTS = ("store.record.before_write", "store.record.after_keep_previous",
                     *WRITE_FAILPOINTS)
FAILPOINTS = tuple(dict.fromkeys(CHECKPOINT_FAILPOINTS + RECORD_FAILPOINTS))
PRUNED_PREFIX = ".pruned-"


class Store:
    """One state directory. All methods are safe across processes and threads.

    `lock_timeout` bounds every lock wait (seconds); `clock` gives wall-clock
    time for the timestamps stored in records (never used for timeouts).
    """

    def __init__(self, root: Path, lock_timeout: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.layout = Layout(self.root)
        self.lock_timeout = lock_timeout
        self.clock = clock
        self.corrupt_seen = 0
        self._locks: dict[Path, filelock.FileLock] = {}
        self._ready = False

    @classmethod
    def from_config(cls, config: Config, lock_timeout: float | None = None) -> Store:
        """The store of `config`'s state directory; lock waits `lock_timeout_ms` by default."""
        wait = config.lock_timeout_ms / 1000 if lock_timeout is None else lock_timeout
        return cls(config.state_path, wait)

    def init(self) -> None:
        """Create the state directory and its folders (durably) if missing; idempotent."""
        if not self._ready:
            job_files.make_layout(self.root)
            job_files.warn_if_network(self.root)
            self._ready = True

    # -- reading (no lock) ----------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        """The job's record; `UnknownJobError` if there is none."""
        found = self._read_record(job_id)
        if found is None:
            raise UnknownJobError(f"no job with id {job_id}; `harunner status` lists jobs")
        return found[0]

    def list_jobs(self, states: set[JobState] | None = None, *, name: str | None = None,
                  limit: int | None = None, newest_first: bool = False,
                  before: float | None = None) -> list[JobRecord]:
        """Records, oldest first (or newest first), filtered; unreadable ones are skipped.

        `states` and `name` (exact) filter; `before` keeps jobs created before
        that wall-clock time (a page's bound); at most `limit` are returned.
        """
        if states is not None and not any(state.finished for state in states):
            names = job_files.active_ids(self.root)
        else:
            try:
                names = os.listdir(self.layout.jobs)
            except FileNotFoundError:
                return []
        records = []
        for entry in names:
            try:
                found = self._read_record(entry) if job_files.valid_job_id(entry) else None
            except (StoreError, OSError) as error:
                log.warning("skipping job %s: %s", entry, error)
                continue
            if found is not None and _matches(found[0], states, name, before):
                records.append(found[0])
        records.sort(key=lambda record: (record.created_at, record.job_id), reverse=newest_first)
        return records if limit is None else records[:max(limit, 0)]

    def read_checkpoint(self, job_id: str) -> Checkpoint | None:
        """The newest valid checkpoint, skipping (and reporting) a corrupt newest one."""
        folder = self._existing_folder(job_id)
        return job_files.read_newest_checkpoint(  # type: ignore[no-any-return]
            folder, lambda data, seq: checkpoint_from(data, job_id, seq), self._report)

    def read_progress(self, job_id: str) -> Progress | None:
        """The job's last progress, or None if there is none or it is unreadable."""
        try:
            found = job_files.load(self._folder(job_id) / PROGRESS, KIND_PROGRESS,
                               lambda data: progress_from(data, job_id))
        except (FileNotFoundError, CorruptFileError):
            return None
        return found  # type: ignore[no-any-return]

    def log_path(self, job_id: str) -> Path:
        """Where the job's log goes: jobs/<job_id>/job.log."""
        return self.layout.job_log(self._checked_id(job_id))

    # -- writing (under the job's lock) ---------------------------------------------

    def submit(self, name: str, args: dict[str, Any], *, retries: int = 0,
               backoff: float = 1.0, timeout: float | None = None,
               job_id: str | None = None) -> JobRecord:
        """Create a PENDING job; returns only once its record is durable.

        With an explicit `job_id` (such as `SCHEDULER_JOB`) submit is idempotent:
        if that job exists, its record is returned unchanged.
        """
        try:
            to_json(args)
        except (TypeError, ValueError) as error:
            raise JobArgumentError(f"arguments of {name} are not JSON: {error}") from None
        self.init()
        for _ in range(10):
            chosen = job_id or job_files.new_job_id(self.clock(), os.urandom(2))
            created = self._create(chosen, name, args, retries, backoff, timeout, job_id is None)
            if created is not None:
                return created
        raise StoreError(f"could not find a free job id under {self.layout.jobs}")

    def _create(self, job_id: str, name: str, args: dict[str, Any], retries: int,
                backoff: float, timeout: float | None, fresh: bool) -> JobRecord | None:
        folder = self._folder(job_id)
        with self.job_lock(job_id):
            if not job_files.make_job_dir(folder):
                if fresh:
                    return None
                existing = self._read_record(job_id)
                if existing is not None:
                    return existing[0]
            now = self.clock()
            record = JobRecord(job_id=job_id, name=name, args=args, state=JobState.PENDING,
                               retries=retries, backoff=backoff, timeout=timeout,
                               created_at=now, updated_at=now,
                               history=(f"{stamp(now)} pending@0 submitted",))
            job_files.mark_active(self.root, job_id)
            job_files.write_record(folder, to_json(record_to_dict(record)).encode(), False)
            return record

    def assign(self, job_id: str, owner: Owner, expected_generation: int) -> JobRecord:
        """CAS PENDING@expected_generation -> RUNNING@expected_generation+1 by `owner`."""
        def change(record: JobRecord) -> JobRecord:
            if record.state is not JobState.PENDING or record.generation != expected_generation:
                raise StaleTransitionError(
                    f"job {job_id}: assign expected pending@{expected_generation}, found "
                    f"{record.state.value}@{record.generation}")
            return advance(record, JobState.RUNNING, now=self.clock(),
                           note=f"assigned to {owner_name(owner)}",
                           generation=expected_generation + 1, owner=owner,
                           attempts=record.attempts + 1)
        return self._update(job_id, change)

    def take_over(self, job_id: str, generation: int, owner: Owner) -> JobRecord:
        """Raise a RUNNING job to `generation` (> the record's) with `owner`; idempotent."""
        def change(record: JobRecord) -> JobRecord:
            running = record.state is JobState.RUNNING
            if running and (record.generation, record.owner) == (generation, owner):
                return record
            if not running or record.generation >= generation:
                raise StaleTransitionError(
                    f"job {job_id} is {record.state.value}@{record.generation} owned by "
                    f"{owner_name(record.owner)}; {owner_name(owner)} cannot take it over at "
                    f"generation {generation} (needs a running job below that generation)")
            return advance(record, JobState.RUNNING, now=self.clock(),
                           note=f"taken over by {owner_name(owner)}",
                           generation=generation, owner=owner)
        return self._update(job_id, change)

    def write_checkpoint(self, job_id: str, generation: int, state: dict[str, Any]) -> int:
        """Durably store `state` as the next checkpoint; returns its seq; fenced."""
        text = state_json(job_id, state)
        self._existing_folder(job_id)
        with self.job_lock(job_id):
            failpoint("store.checkpoint.before_write")
            check_writer(self._locked_record(job_id)[0], generation)
            return self._append_checkpoint(job_id, generation, text)

    def _append_checkpoint(self, job_id: str, generation: int, text: str) -> int:
        """Write checkpoint max(seq)+1 and prune; the caller holds the lock and checked fencing."""
        folder = self._folder(job_id)
        older = job_files.checkpoint_seqs(folder)
        seq = (older[-1] if older else 0) + 1
        payload = (f'{{"generation":{int(generation)},"job_id":{json.dumps(job_id)},'
                   f'"seq":{seq},"state":{text}}}')
        write_atomic(job_files.checkpoint_path(folder, seq), KIND_CHECKPOINT, payload.encode())
        failpoint("store.checkpoint.before_prune")
        job_files.prune_checkpoints(folder, older, lambda old: self._checkpoint_good(job_id, old))
        failpoint("store.checkpoint.after_prune")
        return seq

    def set_progress(self, job_id: str, generation: int, progress: Progress) -> None:
        """Record soft progress (atomic, not fsynced); fenced."""
        payload = to_json({"job_id": job_id, "generation": generation,
                            **dataclasses.asdict(progress)})
        self._existing_folder(job_id)
        with self.job_lock(job_id):
            check_writer(self._locked_record(job_id)[0], generation)
            write_atomic(self._folder(job_id) / PROGRESS, KIND_PROGRESS,
                         payload.encode(), durable=False)

    def finish(self, job_id: str, generation: int, *, result: Any = None,
               error: str | None = None, retry_at: float | None = None) -> JobRecord:
        """End an attempt: SUCCEEDED, FAILED, or PENDING again until `retry_at`; fenced."""
        def change(record: JobRecord) -> JobRecord:
            check_writer(record, generation)
            now = self.clock()
            if error is not None and retry_at is not None:
                return advance(record, JobState.PENDING, now=now, note=f"retry: {error}"[:200],
                               owner=None, not_before=retry_at, error=error)
            if error is not None:
                return advance(record, JobState.FAILED, now=now, note="failed", error=error)
            try:
                to_json(result)
            except (TypeError, ValueError) as bad:
                message = f"result is not JSON-serialisable: {bad}"
                return advance(record, JobState.FAILED, now=now, note="failed", error=message)
            return advance(record, JobState.SUCCEEDED, now=now, note="succeeded",
                           result=result, error=None)
        return self._update(job_id, change)

    def cancel(self, job_id: str) -> JobRecord:
        """CANCELLED at generation + 1, which fences the running owner."""
        def change(record: JobRecord) -> JobRecord:
            if record.state.finished:
                raise StaleTransitionError(f"job {job_id} is already {record.state.value}; "
                                           "there is nothing to cancel")
            return advance(record, JobState.CANCELLED, now=self.clock(), note="cancelled",
                           generation=record.generation + 1)
        return self._update(job_id, change)

    def retry(self, job_id: str) -> JobRecord:
        """A FAILED or CANCELLED job back to PENDING at generation + 1, attempts reset; fenced.

        The error stays until the next attempt ends; the history is kept. The
        active marker is created before the record that makes the job unfinished.
        """
        self._existing_folder(job_id)
        with self.job_lock(job_id):
            record, from_newest = self._locked_record(job_id)
            if record.state not in (JobState.FAILED, JobState.CANCELLED):
                raise StaleTransitionError(
                    f"job {job_id} is {record.state.value}; only a failed or cancelled job "
                    "can be retried")
            now = self.clock()
            generation = record.generation + 1
            # FAILED/CANCELLED -> PENDING is the one edge outside TRANSITIONS: a user's retry.
            new = dataclasses.replace(
                record, state=JobState.PENDING, generation=generation, owner=None, attempts=0,
                not_before=0.0, result=None, updated_at=now,
                history=(*record.history, f"{stamp(now)} pending@{generation} retried"
                         )[-HISTORY_LIMIT:])
            job_files.mark_active(self.root, job_id)
            job_files.write_record(self._folder(job_id), to_json(record_to_dict(new)).encode(),
                                   from_newest)
            return new

    def prune(self, older_than_wall: float) -> int:
        """Delete finished jobs last updated before `older_than_wall`, with all their files.

        Each job folder is renamed out of the way under the job's lock (one atomic
        step), then removed; a crash in between leaves a `.pruned-*` folder that
        the next prune removes. Returns how many jobs were deleted.
        """
        try:
            entries = os.listdir(self.layout.jobs)
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.startswith(PRUNED_PREFIX):
                shutil.rmtree(self.layout.jobs / entry, ignore_errors=True)
        return sum(self._prune_one(entry, older_than_wall) for entry in entries
                   if job_files.valid_job_id(entry) and entry != SCHEDULER_JOB)

    def _prune_one(self, job_id: str, older_than_wall: float) -> bool:
        try:
            with self.job_lock(job_id):
                found = self._read_record(job_id)
                if found is None or not found[0].state.finished \
                        or found[0].updated_at >= older_than_wall:
                    return False
                trash = self.layout.jobs / f"{PRUNED_PREFIX}{job_id}.{os.urandom(4).hex()}"
                os.replace(self._folder(job_id), trash)
                fsync_dir(self.layout.jobs)
                job_files.unmark_active(self.root, job_id)
                job_files.remove_entry(self.layout.job_lock(job_id))
        except (StoreError, OSError) as error:
            log.warning("not pruning job %s: %s", job_id, error)
            return False
        self._locks.pop(self.layout.job_lock(job_id), None)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def rebuild_index(self) -> int:
        """Make index/active match the records; returns how many markers it changed."""
        self.init()
        active = set(job_files.active_ids(self.root))
        wrong = [r for r in self.list_jobs() if r.state.finished == (r.job_id in active)]
        for record in wrong:
            mark = job_files.unmark_active if record.state.finished else job_files.mark_active
            mark(self.root, record.job_id)
        return len(wrong)

    # -- locking and the record -----------------------------------------------------

    @contextlib.contextmanager
    def job_lock(self, job_id: str) -> Iterator[None]:
        """Hold the job's file lock (re-entrant within a thread), waiting at most lock_timeout."""
        self.init()
        path = self.layout.job_lock(self._checked_id(job_id))
        lock = self._locks.get(path)
        if lock is None:
            lock = self._locks[path] = filelock.FileLock(path, mode=0o600,
                                                          fallback_to_soft=False)
        try:
            lock.acquire(timeout=self.lock_timeout)
        except filelock.Timeout:
            raise LockTimeoutError(
                f"job {job_id}: lock {path} not acquired within {self.lock_timeout:g} s; its "
                "holder may be paused (SIGSTOP) or hung: fencing makes it harmless once the "
                "job has a new owner; kill it if it does not resume") from None
        try:
            yield
        finally:
            lock.release()

    def _update(self, job_id: str, change: Callable[[JobRecord], JobRecord]) -> JobRecord:
        """Apply `change` to the record under the job's lock and store the result."""
        self._existing_folder(job_id)
        with self.job_lock(job_id):
            record, from_newest = self._locked_record(job_id)
            new = change(record)
            if new is not record:
                payload = to_json(record_to_dict(new)).encode()
                job_files.write_record(self._folder(job_id), payload, from_newest)
                if new.state.finished:
                    job_files.unmark_active(self.root, job_id)
            return new

    def _locked_record(self, job_id: str) -> tuple[JobRecord, bool]:
        found = self._read_record(job_id)
        if found is None:
            raise UnknownJobError(f"no job with id {job_id}; `harunner status` lists jobs")
        return found

    def _read_record(self, job_id: str) -> tuple[JobRecord, bool] | None:
        if not job_files.valid_job_id(job_id):
            return None
        try:
            return job_files.read_record(self._folder(job_id),
                                     lambda data: record_from(data, job_id), self._report)
        except NotADirectoryError:
            return None

    def _checkpoint_good(self, job_id: str, seq: int) -> bool:
        """Whether checkpoint `seq` is valid (a corrupt one is reported, then pruned)."""
        path = job_files.checkpoint_path(self._folder(job_id), seq)
        try:
            job_files.load(path, KIND_CHECKPOINT, lambda data: checkpoint_from(data, job_id, seq))
        except FileNotFoundError:
            return False
        except CorruptFileError as error:
            self._report(path, error)
            return False
        return True

    def _report(self, path: Path, error: CorruptFileError) -> None:
        self.corrupt_seen += 1
        where = "" if str(error).startswith(str(path)) else f"{path}: "
        log.warning("corrupt state file: %s%s; trying the previous version", where, error)

    def _folder(self, job_id: str) -> Path:
        return self.layout.job_folder(self._checked_id(job_id))

    def _existing_folder(self, job_id: str) -> Path:
        folder = self._folder(job_id)
        if not folder.is_dir():
            raise UnknownJobError(f"no job with id {job_id}; `harunner status` lists jobs")
        return folder

    def _checked_id(self, job_id: str) -> str:
        if not job_files.valid_job_id(job_id):
            raise UnknownJobError(f"no job with id {job_id!r}; job ids are letters, digits, "
                                  "'-' and '_'; `harunner status` lists jobs")
        return job_id


def _matches(record: JobRecord, states: set[JobState] | None, name: str | None,
             before: float | None) -> bool:
    return ((states is None or record.state in states)
            and (name is None or record.name == name)
            and (before is None or record.created_at < before))

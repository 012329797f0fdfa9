"""`EtcdStore`: the job store of `harunner.store.contract.JobStore` kept in etcd.

Records, fences, checkpoints, progress and indexes are keys under
`/harunner/<cluster>/` (`keys`); every change of a record is a compare-and-set
txn (`txns`); the change feed follows a watch (`feed`); reads go through the
indexes with a bound (`reads`). Job logs stay local files under `state_root`.
docs/etcd.md gives the key layout, the txns and the limits.

Invariants (those of the contract, and):
- every transition compares the job key's mod_revision inside etcd, so a stale
  owner's change fails in etcd, whichever host sends it;
- a worker's checkpoint or progress write compares `fence/<id>` with
  `running@<generation>` in the same txn as its put; only transitions write the
  fence, so a progress write never fences a checkpoint;
- a checkpoint above `max_value_bytes` is refused before anything is sent
  (`CheckpointTooLargeError`); the last one stands;
- an unknown outcome (`EtcdUnavailable` after sending) is decided by a re-read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harunner.errors import (
    CheckpointTooLargeError,
    CorruptFileError,
    StaleTransitionError,
    StoreError,
    UnknownJobError,
)
from harunner.failpoints import failpoint
from harunner.store import job_files
from harunner.store import transitions as t
from harunner.store.etcd.feed import Feed
from harunner.store.etcd.gateway import EtcdUnavailable, compare_value, op_put
from harunner.store.etcd.keys import Keys, fence_value
from harunner.store.etcd.kv import EtcdKV, range_body, txn_ranges
from harunner.store.etcd.reads import Reads
from harunner.store.etcd.submit import submit_records
from harunner.store.etcd.txns import Refused, Transactions, decode
from harunner.store.layout import Layout
from harunner.store.model import (
    Checkpoint,
    JobRecord,
    JobState,
    Owner,
    Progress,
    check_writer,
    progress_from,
    state_json,
    to_json,
)

log = logging.getLogger("harunner.store")

DEFAULT_LIMIT = 1000
MIB = 1024 * 1024
OPS_PRUNE = 7  # delete the record, fence, checkpoint, progress and three index keys
PRUNE_BATCH = 500


@dataclasses.dataclass(frozen=True)
class ClaimItem:
    """Assign job `job_id` to `owner` if it is still PENDING and due at `wall` (a claim)."""

    job_id: str
    owner: Owner
    wall: float


class EtcdStore:
    """The jobs of cluster `cluster` in etcd at `endpoints`; logs under `state_root`."""

    def __init__(self, endpoints: Sequence[str], state_root: Path, *, cluster: str = "default",
                 clock: Callable[[], float] = time.time, max_value_bytes: int = MIB,
                 max_txn_ops: int = 128, timeout: float = 5.0, feed_wait: float = 5.0) -> None:
        self.root = Path(state_root)
        self.layout = Layout(self.root)
        self.clock = clock
        self.max_value_bytes = max_value_bytes
        self.corrupt_seen = 0
        self.keys = Keys(cluster)
        self.kv = EtcdKV(endpoints, timeout=timeout, max_txn_ops=max_txn_ops)
        self.txns = Transactions(self.kv, self.keys, max_value_bytes)
        self.reads = Reads(self.kv, self.keys, self._report)
        self.feed = Feed(self.kv, self.keys, self._report, wait=feed_wait)

    def init(self) -> None:
        """Check etcd's version (3.4 or newer) and create the local folder for job logs."""
        self.kv.client()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def close(self) -> None:
        """Close this thread's connection and watch (the next call opens new ones)."""
        self.feed.close()
        self.kv.close()

    # -- reading --------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        """The job's record; `UnknownJobError` if there is none."""
        found = self.reads.records([self._checked_id(job_id)])
        if not found:
            raise UnknownJobError(f"no job with id {job_id!r}; `harunner status` lists jobs")
        return found[0]

    def list_jobs(self, states: Any = None, *, name: str | None = None,
                  limit: int | None = None, newest_first: bool = False,
                  before: str | None = None, after: str | None = None) -> list[JobRecord]:
        """Records oldest (or newest) first, filtered and paged (see `Store.list_jobs`)."""
        cursors = {side: self.get(job) for side, job in (("before", before), ("after", after))
                   if job is not None}
        return self.reads.listing(None if states is None else set(states), name, limit,
                                  newest_first, cursors)

    def changes(self, after_seq: int, limit: int = DEFAULT_LIMIT, *, brief: bool = False
                ) -> tuple[list[JobRecord], int]:
        """Records changed after revision `after_seq`, in revision order (docs/etcd.md)."""
        return self.feed.changes(after_seq, limit, brief)

    def head(self) -> int:
        """The revision of the newest change of a job record."""
        return self.feed.head()

    def feed_fileno(self) -> int | None:
        """The socket of this thread's feed watch, readable when a change arrives (a runner's
        loop may wait on it next to its other sockets); None before the first `changes`."""
        return self.feed.fileno()

    def feed_ready(self) -> None:
        """`feed_fileno()` was readable: take in what arrived (call `changes` next)."""
        self.feed.pump()

    def due_pending(self, now_wall: float, limit: int = DEFAULT_LIMIT) -> list[JobRecord]:
        """PENDING jobs whose `not_before` <= `now_wall`, earliest first, at most `limit`."""
        return self.reads.due(now_wall, limit)

    def count_unfinished(self) -> int:
        """How many jobs are PENDING or RUNNING, the scheduler duty left out (index counts)."""
        return self.reads.count_unfinished()

    def running(self) -> list[JobRecord]:
        """Every RUNNING job (bounded by how many run)."""
        return self.reads.running(None, 0)

    def owned_by(self, owner: Owner, limit: int = DEFAULT_LIMIT) -> list[JobRecord]:
        """RUNNING jobs owned by `owner`, at most `limit` (through the owner's index)."""
        return self.reads.running(owner, limit)

    def read_checkpoint(self, job_id: str) -> Checkpoint | None:
        """The newest checkpoint (its seq is its etcd revision), or None if there is none."""
        found = self.kv.get(self.keys.checkpoint(self._checked_id(job_id)))
        if found is None:
            self.get(job_id)
            return None
        try:
            data = json.loads(found.value)
            return Checkpoint(job_id, int(data["generation"]), found.mod_revision,
                              dict(data["state"]))
        except (ValueError, KeyError, TypeError) as error:
            raise CorruptFileError(f"checkpoint of job {job_id} in etcd: {error!r}; no older "
                                   "one is kept there: retry or cancel the job") from None

    def read_progress(self, job_id: str) -> Progress | None:
        """The job's last progress, or None if there is none or it is unreadable."""
        found = self.kv.get(self.keys.progress(self._checked_id(job_id)))
        try:
            return None if found is None else progress_from(json.loads(found.value), job_id)
        except (ValueError, CorruptFileError):
            return None

    def log_path(self, job_id: str) -> Path:
        """Where the job's log goes: a local file under the state folder (created if missing)."""
        path = self.layout.job_log(self._checked_id(job_id))
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    # -- submitting -----------------------------------------------------------------

    def submit(self, name: str, args: dict[str, Any], *, retries: int = 0,
               backoff: float = 1.0, timeout: float | None = None,
               job_id: str | None = None) -> JobRecord:
        """Create a PENDING job; returns once etcd committed it. An explicit id is idempotent."""
        return self.submit_many([t.Submission(name, args, retries, backoff, timeout, job_id)])[0]

    def submit_many(self, items: Sequence[t.Submission]) -> list[JobRecord]:
        """Create PENDING jobs (txns of up to `max_txn_ops // 5` jobs); records in order."""
        for item in items:
            t.checked(item)
            if item.job_id is not None:
                self._checked_id(item.job_id)
        return submit_records(self.txns, items, self.clock(), self.max_value_bytes)

    # -- transitions ----------------------------------------------------------------

    def assign(self, job_id: str, owner: Owner, expected_generation: int) -> JobRecord:
        """CAS PENDING@expected_generation -> RUNNING@expected_generation+1 by `owner`."""
        return self._one(t.Assignment(self._checked_id(job_id), owner, expected_generation),
                         t.assigned)

    def assign_many(self, assignments: Sequence[t.Assignment]) -> list[JobRecord]:
        """Assign pending jobs; stale ones are skipped, not raised."""
        return self._apply(assignments, t.assigned)[0]

    def take_over(self, job_id: str, generation: int, owner: Owner) -> JobRecord:
        """Raise a RUNNING job to `generation` (> the record's) with `owner`; idempotent."""
        return self._one(t.TakeOver(self._checked_id(job_id), generation, owner), t.taken_over)

    def take_over_many(self, items: Sequence[t.TakeOver]
                       ) -> tuple[list[JobRecord], list[t.TakeOver]]:
        """Many take-overs: (applied records, busy items: always none here, etcd has no locks)."""
        return self._apply(items, t.taken_over)[0], []

    def release_many(self, items: Sequence[t.Release]) -> list[JobRecord]:
        """Give back claimed jobs that never started; returns the records given back."""
        return self._apply(items, t.released)[0]

    def finish(self, job_id: str, generation: int, *, result: Any = None,
               error: str | None = None, retry_at: float | None = None) -> JobRecord:
        """End an attempt: SUCCEEDED, FAILED, or PENDING again until `retry_at`; fenced."""
        return self._one(t.Outcome(self._checked_id(job_id), generation, result, error,
                                   retry_at), self._finished)

    def finish_many(self, outcomes: Sequence[t.Outcome], *,
                    lock_wait: float | None = None) -> list[JobRecord]:
        """Many fenced finishes; the applied records (fenced and stale ones left out)."""
        return self.settle(outcomes, None)[0]

    def settle(self, outcomes: Sequence[t.Outcome], claim: t.Claim | None, *,
               lock_wait: float | None = None) -> tuple[list[JobRecord], list[JobRecord]]:
        """Fenced finishes and a claim of due jobs, in one txn where they fit: (finished,
        claimed). The claim reads the due index first; a job another claimer won is skipped."""
        items: list[Any] = list(outcomes)
        if claim is not None and claim.room > 0:
            due = self.reads.due_ids(claim.wall, claim.room + len(claim.skip))
            items += [ClaimItem(job_id, claim.owner, claim.wall)
                      for job_id in due if job_id not in claim.skip][:claim.room]
        if not items:
            return [], []
        now = self.clock()

        def change(record: JobRecord, item: Any, _now: float) -> JobRecord:
            if isinstance(item, ClaimItem):
                return self._claimed(record, item, now)
            return self._finished(record, item, now)

        applied = self._apply(items, change)[0]
        count = sum(1 for item in items if not isinstance(item, ClaimItem))
        done = {item.job_id for item in outcomes}
        finished = [r for r in applied if r.job_id in done][:count]
        return finished, [r for r in applied if r.job_id not in done]

    def cancel(self, job_id: str) -> JobRecord:
        """CANCELLED at generation + 1, which fences the running owner."""
        return self._one(self._checked_id(job_id), t.cancelled)

    def retry(self, job_id: str) -> JobRecord:
        """A FAILED or CANCELLED job back to PENDING at generation + 1, attempts reset to 0."""
        return self._one(self._checked_id(job_id), t.retried)

    def _finished(self, record: JobRecord, item: t.Outcome, now: float) -> JobRecord:
        """`transitions.finished`, with a result too large for etcd turned into a failure."""
        new = t.finished(record, item, now)
        size = len(to_json(new.result))
        if size > self.max_value_bytes // 2:
            limit = self.max_value_bytes // 2
            error = (f"result of job {record.job_id} is {size} bytes, above the etcd backend's "
                     f"limit of {limit} bytes (half of etcd_max_value_bytes); return less")
            new = t.finished(record, t.Outcome(item.job_id, item.generation, error=error), now)
        return new

    @staticmethod
    def _claimed(record: JobRecord, item: ClaimItem, now: float) -> JobRecord:
        if record.state is not JobState.PENDING or record.not_before > item.wall:
            raise StaleTransitionError(f"job {record.job_id} is no longer due")
        return t.assigned(record, t.Assignment(record.job_id, item.owner, record.generation), now)

    def _apply(self, items: Sequence[Any], change: Callable[[JobRecord, Any, float], JobRecord]
               ) -> tuple[list[JobRecord], list[Refused]]:
        now = self.clock()

        def on_record(record: JobRecord | None, item: Any) -> JobRecord:
            if record is None:
                raise UnknownJobError(f"no job with id {t.job_of(item)}; `harunner status` "
                                      "lists jobs")
            return change(record, item, now)

        return self.txns.apply(items, on_record)

    def _one(self, item: Any, change: Callable[[JobRecord, Any, float], JobRecord]) -> JobRecord:
        applied, refused = self._apply([item], change)
        if refused:
            raise refused[0][1]
        return applied[0]

    # -- checkpoints and progress (fenced on fence/<id> in etcd) ---------------------

    def write_checkpoint(self, job_id: str, generation: int, state: dict[str, Any]) -> int:
        """Store `state` as the newest checkpoint; returns its seq (its etcd revision); fenced."""
        state_json(job_id, state)  # refuses what is not a JSON object
        value = to_json({"job_id": job_id, "generation": generation, "state": state,
                         "token": os.urandom(8).hex()}).encode()
        if len(value) > self.max_value_bytes:
            raise CheckpointTooLargeError(
                f"checkpoint of job {job_id} is {len(value)} bytes, above the etcd backend's "
                f"limit of {self.max_value_bytes} bytes (etcd_max_value_bytes); keep less "
                "state, or raise --max-request-bytes on every etcd member and "
                "etcd_max_value_bytes with it")
        failpoint("store.checkpoint.before_write")
        return self._fenced_put(job_id, generation, self.keys.checkpoint(job_id), value)

    def set_progress(self, job_id: str, generation: int, progress: Progress) -> None:
        """Record soft progress; fenced like a checkpoint (and never fences one)."""
        value = to_json({"job_id": job_id, "generation": generation,
                         **dataclasses.asdict(progress)}).encode()
        if len(value) > self.max_value_bytes:
            raise StoreError(f"progress of job {job_id} is {len(value)} bytes, above "
                             f"etcd_max_value_bytes ({self.max_value_bytes}); shorten its message")
        self._fenced_put(job_id, generation, self.keys.progress(job_id), value)

    def _fenced_put(self, job_id: str, generation: int, key: bytes, value: bytes) -> int:
        """Put `value` at `key` if the job is RUNNING at `generation`: the revision written."""
        fence = self.keys.fence(self._checked_id(job_id))
        compare = [compare_value(fence, fence_value(JobState.RUNNING, generation))]
        failure = [{"request_range": range_body(self.keys.job(job_id))}]
        for _ in range(2):
            try:
                result = self.kv.txn(compare, [op_put(key, value)], failure)
            except EtcdUnavailable:
                written = self.kv.get(key)  # unknown outcome: re-read, decide
                if written is not None and written.value == value:
                    return written.mod_revision
                continue  # not applied: the compare still guards the second try
            if result.succeeded:
                return result.revision
            found = txn_ranges(result.responses)[0]
            if not found:
                raise UnknownJobError(f"no job with id {job_id!r}; `harunner status` lists jobs")
            check_writer(decode(found[0], job_id), generation)
            raise StoreError(f"job {job_id}: its fence disagrees with its record; this is a bug")
        raise EtcdUnavailable(f"job {job_id}: etcd did not answer a fenced write twice; "
                              "nothing was acknowledged")

    # -- housekeeping ---------------------------------------------------------------

    def prune(self, older_than_wall: float) -> int:
        """Delete finished jobs last updated before `older_than_wall`, with their keys and logs."""
        total = 0
        while True:
            job_ids = self.reads.finished_ids(older_than_wall, PRUNE_BATCH)

            def delete(record: JobRecord | None, _item: str) -> JobRecord | None:
                if record is None or not (record.state.finished
                                          and record.updated_at < older_than_wall):
                    raise StaleTransitionError("no longer prunable")
                return None

            refused = self.txns.apply(job_ids, delete, OPS_PRUNE)[1]
            gone = set(job_ids) - {t.job_of(item) for item, _ in refused}
            for job_id in gone:  # the local log folder (after the keys: a crash leaves a log)
                shutil.rmtree(self.layout.job_folder(job_id), ignore_errors=True)
            total += len(gone)
            if len(job_ids) < PRUNE_BATCH or not gone:
                return total

    # -- helpers --------------------------------------------------------------------

    def _report(self, error: CorruptFileError) -> None:
        self.corrupt_seen += 1
        log.warning("skipping a damaged job record: %s", error)

    @staticmethod
    def _checked_id(job_id: str) -> str:
        if not job_files.valid_job_id(job_id):
            raise UnknownJobError(f"no job with id {job_id!r}; job ids are letters, digits, "
                                  "'-' and '_'; `harunner status` lists jobs")
        return job_id

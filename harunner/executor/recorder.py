"""The recorder: commits batches of attempt outcomes on a thread, so the loop keeps going.

A commit waits for an fsync (about a millisecond, many under load). If the
runner's loop waited too, its workers would sit idle after each job until
the loop came back to hand them the next. The executor therefore gives each
batch of finishes to this recorder and goes on dispatching; the batch is
written by `Store.finish_many` on the recorder's own thread (its own SQLite
connection and job-lock descriptor; the GIL is released while SQLite writes
and fsyncs). When the commit returns, a byte on a pipe wakes the loop, which
then settles the batch (`collect`). A batch may carry the runner's claim of
due jobs (`Claim`): finishing and claiming then share one transaction, and
the runner's loop never waits for SQLite's write lock to claim.

Invariants: at most one batch is in flight, so batches commit in the order
given and a job's outcomes never race each other; a batch's result is read
only once; an outcome counts as recorded only when `collect` returned its
record (the loop never reports an attempt as ended before its commit).
`close` waits for the batch in flight. A `DurabilityError` (or any error that
is not a `StoreError`) met on the thread is raised by `collect` in the loop's
thread, never swallowed: a failed fsync must still stop the runner.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
from collections.abc import Sequence

from harunner.errors import LockTimeoutError, StaleTransitionError, StoreError
from harunner.store import JobRecord, JobState, JobStore
from harunner.store.transitions import Claim, Outcome

# Per outcome (or for the whole batch), and the jobs claimed in the same transaction.
Result = tuple[list[JobRecord | StoreError] | StoreError, list[JobRecord]]


class Recorder:
    """One background writer of outcome batches for one executor."""

    def __init__(self, store: JobStore, lock_wait: float) -> None:
        self._store = store
        self._lock_wait = lock_wait
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._requests: queue.SimpleQueue[tuple[list[Outcome], Claim | None] | None] = (
            queue.SimpleQueue())
        self._result: Result | None = None
        self._failure: BaseException | None = None
        self._in_flight = False
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """A batch is being committed."""
        return self._in_flight

    def fileno(self) -> int:
        """Readable when the batch in flight has been committed (or refused)."""
        return self._read

    def submit(self, outcomes: Sequence[Outcome], claim: Claim | None = None) -> None:
        """Commit `outcomes` (and `claim`) in one transaction, in the background; only when
        not busy."""
        assert not self._in_flight, "one batch at a time"
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="harunner-recorder",
                                            daemon=True)
            self._thread.start()
        self._in_flight = True
        self._requests.put((list(outcomes), claim))

    def collect(self, wait: float | None = 0.0) -> Result | None:
        """The result of the batch in flight once it is committed (None: not yet).

        `wait` None blocks until it is."""
        if not self._in_flight:
            return None
        if wait is None or wait > 0:
            select.select([self._read], [], [], wait)
        try:
            os.read(self._read, 64)
        except BlockingIOError:
            return None
        result, self._result, self._in_flight = self._result, None, False
        if self._failure is not None:  # never swallowed: a failed fsync stops the process
            failure, self._failure = self._failure, None
            raise failure
        assert result is not None
        return result

    def close(self) -> Result | None:
        """Wait for the batch in flight (its result, if any) and stop the thread."""
        result = self.collect(None) if self._in_flight else None
        if self._thread is not None:
            self._requests.put(None)
            self._thread.join(5.0)
            self._thread = None
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
        return result

    def _serve(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            batch, claim = request
            result: Result
            try:
                applied, claimed = self._store.settle(batch, claim, lock_wait=self._lock_wait)
                written = {record.job_id: record for record in applied}
                result = ([written.get(item.job_id) or self._why_not(item) for item in batch],
                          claimed)
            except StoreError as refused:  # busy or full: the executor retries the batch
                result = (refused, [])
            except BaseException as error:  # a DurabilityError, or a bug: raised by `collect`
                self._failure = error
                result = (StoreError(f"recording outcomes failed: {error!r}"), [])
            self._result = result
            os.write(self._write, b"x")

    def _why_not(self, item: Outcome) -> StoreError:
        """Why `item` was left out of its batch: fenced (the job moved on) or its lock was busy."""
        try:
            record = self._store.get(item.job_id)
        except StoreError as error:
            return error
        if record.state is JobState.RUNNING and record.generation == item.generation:
            return LockTimeoutError(f"job {item.job_id}: its lock was busy; retrying")
        return StaleTransitionError(f"job {item.job_id} is {record.state.value}@"
                                    f"{record.generation}, not running@{item.generation}")

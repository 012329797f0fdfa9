"""The executor: runs each job the runner owns in a worker process it can kill.

The runner calls `start(record)` for a job it owns (RUNNING at
`record.generation`), waits on `sentinels()` with the rest of its loop, then
calls `reap(now)` and `check_timeouts(now)`; `kill(job_id)` when it loses
ownership; `shutdown()` when it stops. See `harunner.worker` for the worker's
side and its exit codes, and `harunner.launcher` for how workers start (the
multiprocessing context, the forkserver, the spare worker that takes a job
in a few milliseconds).

Responsibilities and invariants:
- A worker is a process-group leader: every kill (timeout, lost ownership,
  shutdown, and the clean-up after any exit) goes to its whole group, so the
  job's own children die with it. The worker itself is signalled through a
  pidfd opened at start, which cannot hit a recycled pid.
- Every attempt that ends without the worker recording it (a crash, a signal,
  a timeout) is recorded here as a failed attempt, with the retry time of the
  record's policy, and only after the worker is confirmed dead; the write is
  fenced, and a `FencedError` only means a newer owner has the job. `kill`
  records nothing: the job belongs to someone else.
- Timeouts use the monotonic `now` passed in; retry times use the wall clock
  (`clock`), like the store's `not_before`.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

from harunner.api import retry_at
from harunner.errors import (
    FencedError,
    HarunnerError,
    StaleTransitionError,
    StoreError,
)
from harunner.executor import worker
from harunner.executor.launcher import (
    REAP_WAIT,
    Launcher,
    absolute_entry,
    close_process,
    has_exited,
    signal_group,
)
from harunner.store import JobRecord, JobState, Store

OUTCOMES = ("succeeded", "failed", "retrying", "crashed", "timeout", "fenced", "killed")
_RECORDED = {worker.EXIT_SUCCEEDED: "succeeded", worker.EXIT_FAILED: "failed",
             worker.EXIT_RETRYING: "retrying"}
log = logging.getLogger("harunner.executor")


@dataclass(frozen=True)
class WorkerExit:
    """How a worker ended: `outcome` is one of OUTCOMES; `exitcode` < 0 is a signal."""

    job_id: str
    generation: int
    exitcode: int | None
    outcome: str


@dataclass
class _Worker:
    record: JobRecord
    process: BaseProcess
    pidfd: int
    deadline: float | None
    terminated_at: float | None = None

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid


class Executor:
    """The worker processes of one runner, by job id, and one spare worker ready to go."""

    def __init__(self, state_dir: Path, job_entries: Sequence[str], lock_timeout: float,
                 start_method: str = "forkserver", grace: float = 1.0, *,
                 preload_jobs: bool = True, spare: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method {start_method!r}: use 'forkserver' or 'spawn'")
        self.state_dir = Path(state_dir).resolve()
        self.job_entries = tuple(absolute_entry(entry) for entry in job_entries)
        self.lock_timeout = lock_timeout
        self.start_method = start_method
        self.grace = grace
        self._clock = clock
        self._store = Store(self.state_dir, lock_timeout=lock_timeout)
        self._launcher = Launcher(self.state_dir, self.job_entries, lock_timeout, start_method,
                                  preload_jobs=preload_jobs, spare=spare, owner=self)
        self._workers: dict[str, _Worker] = {}
        self._unrecorded: dict[str, tuple[_Worker, int, str, str]] = {}

    # -- starting ------------------------------------------------------------------

    def warm_up(self) -> None:
        """Start the forkserver and the spare worker now, so the first job starts fast."""
        self._launcher.warm_up()

    def start(self, record: JobRecord, now: float | None = None) -> None:
        """Start a worker for `record` (RUNNING, owned by this runner) at its generation."""
        if record.job_id in self._workers or record.job_id in self._unrecorded:
            raise HarunnerError(f"job {record.job_id} already has a worker in this runner")
        if record.state is not JobState.RUNNING:
            raise HarunnerError(f"job {record.job_id} is {record.state.value}, not running")
        now = time.monotonic() if now is None else now
        process, pidfd = self._launcher.start_job(record.job_id, record.generation, now)
        deadline = now + record.timeout if record.timeout else None
        self._workers[record.job_id] = _Worker(record, process, pidfd, deadline)

    # -- watching ------------------------------------------------------------------

    def running(self) -> dict[str, int]:
        """Job id -> generation of every job whose worker is not yet settled."""
        jobs = {job_id: w.record.generation for job_id, w in self._workers.items()}
        jobs.update({job_id: u[0].record.generation for job_id, u in self._unrecorded.items()})
        return jobs

    @property
    def spare_pid(self) -> int | None:
        """The pid of the spare worker waiting for a job, if there is one."""
        return self._launcher.spare_pid

    def sentinels(self) -> list[int]:
        """Handles that become ready when a worker exits (for connection.wait)."""
        return [w.process.sentinel for w in self._workers.values()]

    def next_deadline(self) -> float | None:
        """The earliest monotonic time at which `check_timeouts` or `reap` has work to do."""
        times = [w.deadline if w.terminated_at is None else w.terminated_at + self.grace
                 for w in self._workers.values() if w.deadline is not None]
        if self._launcher.replenish_at is not None:
            times.append(self._launcher.replenish_at)
        return min(times, default=None)

    def reap(self, now: float) -> list[WorkerExit]:
        """Settle every worker that has exited, recording attempts it left unrecorded.

        Also starts the next spare worker once SPARE_DELAY has passed since a
        start, so that it does not compete for the CPU with a job just started.
        """
        self._launcher.replenish_if_due(now)
        exits = [exit for exit in map(self._retry_unrecorded, list(self._unrecorded)) if exit]
        for job_id, w in list(self._workers.items()):
            if w.process.exitcode is None and not has_exited(w.pidfd):
                continue
            del self._workers[job_id]
            settled = self._settle(w, self._wait_dead(w))
            if settled is not None:
                exits.append(settled)
        return exits

    def check_timeouts(self, now: float) -> list[str]:
        """SIGTERM the groups of workers past their timeout, SIGKILL after the grace."""
        signalled = []
        for job_id, w in self._workers.items():
            if w.deadline is None or now < w.deadline:
                continue
            if w.terminated_at is None:
                w.terminated_at = now
                signal_group(w.pid, w.pidfd, signal.SIGTERM)
                signalled.append(job_id)
            elif now >= w.terminated_at + self.grace:
                signal_group(w.pid, w.pidfd, signal.SIGKILL)
        return signalled

    # -- stopping ------------------------------------------------------------------

    def kill(self, job_id: str) -> WorkerExit | None:
        """SIGKILL the job's worker group now and reap it; records nothing."""
        unrecorded = self._unrecorded.pop(job_id, None)
        if unrecorded is not None:
            return WorkerExit(job_id, unrecorded[0].record.generation, unrecorded[1], "killed")
        w = self._workers.pop(job_id, None)
        if w is None:
            return None
        signal_group(w.pid, w.pidfd, signal.SIGKILL)
        return WorkerExit(job_id, w.record.generation, self._wait_dead(w), "killed")

    def shutdown(self) -> list[WorkerExit]:
        """Kill and reap every worker; records nothing."""
        self._launcher.discard_spare()
        job_ids = list(self._workers) + list(self._unrecorded)
        return [exit for exit in map(self.kill, job_ids) if exit is not None]

    # -- settling ------------------------------------------------------------------

    def _wait_dead(self, w: _Worker) -> int:
        """Make sure the worker and its group are gone; release its handles; its exit code."""
        pid = w.process.pid
        assert pid is not None
        if not has_exited(w.pidfd):
            signal_group(pid, w.pidfd, signal.SIGKILL)  # reported gone but alive: lost forkserver
            has_exited(w.pidfd, REAP_WAIT)
        signal_group(pid, -1, signal.SIGKILL)  # whatever the job left in its group
        code = close_process(w.process, w.pidfd)
        return 255 if code is None else code

    def _settle(self, w: _Worker, code: int) -> WorkerExit | None:
        if code == worker.EXIT_FENCED:
            return WorkerExit(w.record.job_id, w.record.generation, code, "fenced")
        if code in _RECORDED and not self._still_ours(w):
            return WorkerExit(w.record.job_id, w.record.generation, code, _RECORDED[code])
        if w.terminated_at is not None:
            return self._record(w, code, "timeout", f"timed out after {w.record.timeout:g}s")
        return self._record(w, code, "crashed", f"worker {worker.describe_exit(code)}")

    def _still_ours(self, w: _Worker) -> bool:
        """Whether the record is still RUNNING at the worker's generation (nothing recorded)."""
        record = self._store.get(w.record.job_id)
        return record.state is JobState.RUNNING and record.generation == w.record.generation

    def _record(self, w: _Worker, code: int, outcome: str, error: str) -> WorkerExit | None:
        """Record the failed attempt (retry per policy); fenced means another owner has it."""
        job_id, generation = w.record.job_id, w.record.generation
        try:
            record = self._store.get(job_id)
            if record.state is not JobState.RUNNING or record.generation != generation:
                return WorkerExit(job_id, generation, code, "fenced")
            self._store.finish(job_id, generation, error=error,
                               retry_at=retry_at(record, self._clock()))
        except (FencedError, StaleTransitionError):
            return WorkerExit(job_id, generation, code, "fenced")
        except StoreError as problem:
            self._unrecorded[job_id] = (w, code, outcome, error)
            log.warning("could not record the end of job %s (%s); will retry", job_id, problem)
            return None
        return WorkerExit(job_id, generation, code, outcome)

    def _retry_unrecorded(self, job_id: str) -> WorkerExit | None:
        w, code, outcome, error = self._unrecorded.pop(job_id)
        return self._record(w, code, outcome, error)

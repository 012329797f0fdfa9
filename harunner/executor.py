"""The executor: runs each job the runner owns in a worker process it can kill.

The runner calls `start(record)` for a job it owns (RUNNING at
`record.generation`), waits on `sentinels()` with the rest of its loop, then
calls `reap(now)` and `check_timeouts(now)`; `kill(job_id)` when it loses
ownership; `shutdown()` when it stops. See `harunner.worker` for the worker's
side and its exit codes.

Responsibilities and invariants:
- Workers start through one lazily created multiprocessing context
  (forkserver with `harunner.worker` preloaded, or spawn), created inside the
  runner process on first use (`warm_up` does it early), never at import.
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

import contextlib
import logging
import multiprocessing
import os
import select
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import spawn
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from harunner import worker
from harunner.api import retry_at
from harunner.discovery import module_names
from harunner.errors import (
    DurabilityError,
    FencedError,
    HarunnerError,
    StaleTransitionError,
    StoreError,
)
from harunner.store import JobRecord, JobState, Store

OUTCOMES = ("succeeded", "failed", "retrying", "crashed", "timeout", "fenced", "killed")
_RECORDED = {worker.EXIT_SUCCEEDED: "succeeded", worker.EXIT_FAILED: "failed",
             worker.EXIT_RETRYING: "retrying"}
REAP_WAIT = 2.0
FORKSERVER_RETRIES = 40
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


class Executor:
    """The worker processes of one runner, by job id."""

    def __init__(self, state_dir: Path, job_entries: Sequence[str], lock_timeout: float,
                 start_method: str = "forkserver", grace: float = 1.0, *,
                 preload_jobs: bool = True, clock: Callable[[], float] = time.time) -> None:
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method {start_method!r}: use 'forkserver' or 'spawn'")
        self.state_dir = Path(state_dir).resolve()
        self.job_entries = tuple(_absolute_entry(entry) for entry in job_entries)
        self.lock_timeout = lock_timeout
        self.start_method = start_method
        self.grace = grace
        self._clock = clock
        self._store = Store(self.state_dir, lock_timeout=lock_timeout)
        self._context: BaseContext | None = None
        self._preloading_jobs = preload_jobs and start_method == "forkserver"
        self._workers: dict[str, _Worker] = {}
        self._unrecorded: dict[str, tuple[_Worker, int, str, str]] = {}

    # -- starting ------------------------------------------------------------------

    def warm_up(self) -> None:
        """Start the forkserver and one no-op process now, so the first job starts fast."""
        process = self._launch(worker.ping, (), "harunner-warm-up")
        process.join()
        process.close()

    def start(self, record: JobRecord, now: float | None = None) -> None:
        """Start a worker for `record` (RUNNING, owned by this runner) at its generation."""
        if record.job_id in self._workers or record.job_id in self._unrecorded:
            raise HarunnerError(f"job {record.job_id} already has a worker in this runner")
        if record.state is not JobState.RUNNING:
            raise HarunnerError(f"job {record.job_id} is {record.state.value}, not running")
        now = time.monotonic() if now is None else now
        request = worker.WorkerRequest(
            str(self.state_dir), self.lock_timeout, self.job_entries, record.job_id,
            record.generation, os.getpid(), worker.process_start_ticks(os.getpid()))
        process = self._launch(worker.main, (request,), f"harunner-job-{record.job_id}")
        assert process.pid is not None
        deadline = now + record.timeout if record.timeout else None
        self._workers[record.job_id] = _Worker(record, process, _pidfd(process.pid), deadline)

    def _launch(self, target: Callable[..., None], args: tuple[Any, ...],
                name: str) -> BaseProcess:
        """Start a process; if preloading the job modules broke the forkserver, go without."""
        try:
            return self._start_process(target, args, name)
        except (EOFError, OSError) as error:
            if not self._preloading_jobs:
                raise
            log.warning("the forkserver died while preloading the job modules (%s); workers "
                        "will import them themselves", error)
            self._preloading_jobs = False
            assert self._context is not None
            self._context.set_forkserver_preload(["harunner.worker"])
        for _ in range(FORKSERVER_RETRIES):
            try:
                return self._start_process(target, args, name)
            except (EOFError, OSError):
                time.sleep(0.05)  # the broken forkserver may still be exiting
        return self._start_process(target, args, name)

    def _start_process(self, target: Callable[..., None], args: tuple[Any, ...],
                       name: str) -> BaseProcess:
        process: BaseProcess = self._multiprocessing().Process(  # type: ignore[attr-defined]
            target=target, args=args, name=name)
        with _main_module_not_rerun(), _python_path(self._forkserver_path()):
            process.start()
        return process

    def _forkserver_path(self) -> list[str]:
        """Where a newly launched forkserver must find harunner and the job folders.

        Python 3.11's forkserver does not apply the runner's `sys.path` before
        it preloads (it gets `sys_path` but ignores it), so it is given them
        through PYTHONPATH, which its workers then inherit.
        """
        if self.start_method != "forkserver":
            return []
        folders = [entry for entry in self.job_entries if Path(entry).is_dir()]
        package_root = str(Path(__file__).resolve().parent.parent)
        return [*(folders if self._preloading_jobs else []), package_root]

    def _multiprocessing(self) -> BaseContext:
        """The multiprocessing context, created on first use inside this process."""
        if self._context is None:
            context = multiprocessing.get_context(self.start_method)
            if self.start_method == "forkserver":
                context.set_forkserver_preload(self._preload_modules())
            self._context = context
        return self._context

    def _preload_modules(self) -> list[str]:
        """What the forkserver imports once: the worker and, if asked, the job modules.

        A job module that fails to import with ImportError is skipped by the
        forkserver; any other error kills it, and `_launch` then restarts it
        without the job modules (the worker reports the error per job).
        """
        if not self._preloading_jobs:
            return ["harunner.worker"]
        return ["harunner.worker", *module_names(self.job_entries)]

    # -- watching ------------------------------------------------------------------

    def running(self) -> dict[str, int]:
        """Job id -> generation of every job whose worker is not yet settled."""
        jobs = {job_id: w.record.generation for job_id, w in self._workers.items()}
        jobs.update({job_id: u[0].record.generation for job_id, u in self._unrecorded.items()})
        return jobs

    def sentinels(self) -> list[int]:
        """Handles that become ready when a worker exits (for connection.wait)."""
        return [w.process.sentinel for w in self._workers.values()]

    def next_deadline(self) -> float | None:
        """The earliest monotonic time at which `check_timeouts` has something to do."""
        times = [w.deadline if w.terminated_at is None else w.terminated_at + self.grace
                 for w in self._workers.values() if w.deadline is not None]
        return min(times, default=None)

    def reap(self, now: float) -> list[WorkerExit]:
        """Settle every worker that has exited, recording attempts it left unrecorded."""
        exits = [exit for exit in map(self._retry_unrecorded, list(self._unrecorded)) if exit]
        for job_id, w in list(self._workers.items()):
            if w.process.exitcode is None and not _pidfd_ready(w.pidfd):
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
                _signal_group(w, signal.SIGTERM)
                signalled.append(job_id)
            elif now >= w.terminated_at + self.grace:
                _signal_group(w, signal.SIGKILL)
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
        _signal_group(w, signal.SIGKILL)
        return WorkerExit(job_id, w.record.generation, self._wait_dead(w), "killed")

    def shutdown(self) -> list[WorkerExit]:
        """Kill and reap every worker; records nothing."""
        job_ids = list(self._workers) + list(self._unrecorded)
        return [exit for exit in map(self.kill, job_ids) if exit is not None]

    # -- settling ------------------------------------------------------------------

    def _wait_dead(self, w: _Worker) -> int:
        """Make sure the worker and its group are gone; release its handles; its exit code."""
        if not _pidfd_ready(w.pidfd):
            _signal_group(w, signal.SIGKILL)  # reported gone but alive: the forkserver died
            _pidfd_ready(w.pidfd, REAP_WAIT)
        _signal_group(w, signal.SIGKILL, worker_too=False)
        w.process.join(REAP_WAIT)
        code = w.process.exitcode
        if w.pidfd >= 0:
            os.close(w.pidfd)
        if code is not None:
            w.process.close()
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
        except DurabilityError:
            raise
        except StoreError as problem:
            self._unrecorded[job_id] = (w, code, outcome, error)
            log.warning("could not record the end of job %s (%s); will retry", job_id, problem)
            return None
        return WorkerExit(job_id, generation, code, outcome)

    def _retry_unrecorded(self, job_id: str) -> WorkerExit | None:
        w, code, outcome, error = self._unrecorded.pop(job_id)
        return self._record(w, code, outcome, error)


def _absolute_entry(entry: str) -> str:
    """A folder entry as an absolute path (workers may not share the working directory)."""
    path = Path(entry).expanduser()
    return str(path.resolve()) if path.is_dir() else entry


@contextlib.contextmanager
def _main_module_not_rerun() -> Iterator[None]:
    """Start processes without re-running the runner's `__main__` in them.

    multiprocessing re-imports the parent's main script (as `__mp_main__`) in
    every child so that functions defined there can be unpickled. A worker's
    target is `harunner.worker.main`, so it needs none of that; re-running the
    main script costs milliseconds to a hundred (a CLI's imports) per worker,
    and runs an unguarded script's code again. On Python 3.11 the forkserver
    cannot preload `__main__` to avoid it (its `main_path` is never passed).
    """
    original = spawn.get_preparation_data

    def without_main(name: str) -> dict[str, Any]:
        data = original(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    spawn.get_preparation_data = without_main  # type: ignore[assignment]
    try:
        yield
    finally:
        spawn.get_preparation_data = original  # type: ignore[assignment]


@contextlib.contextmanager
def _python_path(folders: list[str]) -> Iterator[None]:
    """PYTHONPATH with `folders` first, for processes launched meanwhile (the forkserver)."""
    if not folders:
        yield
        return
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([*folders, *([old] if old else [])])
    try:
        yield
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


def _pidfd(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return -1


def _pidfd_ready(pidfd: int, timeout: float = 0.0) -> bool:
    """Whether the process behind `pidfd` has exited (waiting up to `timeout`)."""
    if pidfd < 0:
        return True
    readable, _, _ = select.select([pidfd], [], [], timeout)
    return bool(readable)


def _signal_group(w: _Worker, signum: int, worker_too: bool = True) -> None:
    """Send `signum` to the worker's process group, and to the worker through its pidfd."""
    assert w.process.pid is not None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(w.process.pid, signum)
    if worker_too and w.pidfd >= 0:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(w.pidfd, signum)

"""The executor: runs each job the runner owns in a worker process it can kill.

The runner calls `start(record)` for a job it owns (RUNNING at
`record.generation`), waits on `sentinels()` with the rest of its loop, then
calls `reap(now)` and `check_timeouts(now)`; `kill(job_id)` when it loses
ownership; `shutdown()` when it stops. See `harunner.worker` for the worker's
side and its exit codes.

Responsibilities and invariants:
- Workers start through one lazily created multiprocessing context
  (forkserver with `harunner.worker` and the job modules preloaded, or
  spawn), created inside the runner process on first use (`warm_up` does it
  early), never at import. One spare worker, already set up (process group,
  runner watchdog, imports), waits on a pipe; `start` hands it the job, so a
  job starts in a few milliseconds even with spawn. The next spare starts
  SPARE_DELAY later, from `reap`, so it does not slow the job just started.
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

import atexit
import contextlib
import logging
import multiprocessing
import os
import select
import signal
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import spawn
from multiprocessing.connection import Connection
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
SPARE_DELAY = 0.1  # after a start, wait this long before starting the next spare
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

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid


@dataclass
class _Spare:
    process: BaseProcess
    pidfd: int
    connection: Connection


class Executor:
    """The worker processes of one runner, by job id, and one spare worker ready to go."""

    def __init__(self, state_dir: Path, job_entries: Sequence[str], lock_timeout: float,
                 start_method: str = "forkserver", grace: float = 1.0, *,
                 preload_jobs: bool = True, spare: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
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
        self._keep_spare = spare
        self._spare: _Spare | None = None
        self._replenish_at: float | None = None
        self._setup: worker.WorkerSetup | None = None
        self._workers: dict[str, _Worker] = {}
        self._unrecorded: dict[str, tuple[_Worker, int, str, str]] = {}

    # -- starting ------------------------------------------------------------------

    def warm_up(self) -> None:
        """Start the forkserver and the spare worker now, so the first job starts fast."""
        process = self._launch(worker.ping, (), "harunner-warm-up")
        process.join()
        process.close()
        self._replenish()

    def start(self, record: JobRecord, now: float | None = None) -> None:
        """Start a worker for `record` (RUNNING, owned by this runner) at its generation."""
        if record.job_id in self._workers or record.job_id in self._unrecorded:
            raise HarunnerError(f"job {record.job_id} already has a worker in this runner")
        if record.state is not JobState.RUNNING:
            raise HarunnerError(f"job {record.job_id} is {record.state.value}, not running")
        now = time.monotonic() if now is None else now
        request = worker.WorkerRequest(self._worker_setup(), record.job_id, record.generation)
        process, pidfd = self._hand_to_spare(request) or self._start_worker(request)
        deadline = now + record.timeout if record.timeout else None
        self._workers[record.job_id] = _Worker(record, process, pidfd, deadline)
        if self._keep_spare and self._replenish_at is None:
            self._replenish_at = now + SPARE_DELAY

    def _worker_setup(self) -> worker.WorkerSetup:
        if self._setup is None or self._setup.runner_pid != os.getpid():
            self._setup = worker.WorkerSetup(
                str(self.state_dir), self.lock_timeout, self.job_entries, os.getpid(),
                worker.process_start_ticks(os.getpid()))
        return self._setup

    def _start_worker(self, request: worker.WorkerRequest) -> tuple[BaseProcess, int]:
        process = self._launch(worker.main, (request,), f"harunner-job-{request.job_id}")
        assert process.pid is not None
        return process, _pidfd(process.pid)

    def _hand_to_spare(self, request: worker.WorkerRequest) -> tuple[BaseProcess, int] | None:
        """Give the job to the spare worker, if there is a live one."""
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        try:
            if _pidfd_ready(spare.pidfd):
                raise BrokenPipeError("the spare worker died while idle")
            spare.connection.send((request.job_id, request.generation))
        except OSError as error:
            log.warning("spare worker %s unusable (%s); starting a new one", spare.process.pid,
                        error)
            self._discard(spare)
            return None
        spare.connection.close()
        return spare.process, spare.pidfd

    def _replenish(self) -> None:
        """Start a spare worker if there is none (it sets itself up, then waits for a job)."""
        self._replenish_at = None
        if not self._keep_spare or self._spare is not None:
            return
        reader, writer = self._multiprocessing().Pipe(duplex=False)  # type: ignore[attr-defined]
        process = self._launch(worker.standby, (self._worker_setup(), reader), "harunner-spare")
        reader.close()
        assert process.pid is not None
        self._spare = _Spare(process, _pidfd(process.pid), writer)

    def _discard(self, spare: _Spare) -> None:
        spare.connection.close()
        assert spare.process.pid is not None
        _signal_group(spare.process.pid, spare.pidfd, signal.SIGKILL)
        _close_process(spare.process, spare.pidfd)

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
            # At interpreter exit, multiprocessing joins every child: kill ours first.
            atexit.register(_shutdown_at_exit, weakref.ref(self))
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

    @property
    def spare_pid(self) -> int | None:
        """The pid of the spare worker waiting for a job, if there is one."""
        return self._spare.process.pid if self._spare is not None else None

    def sentinels(self) -> list[int]:
        """Handles that become ready when a worker exits (for connection.wait)."""
        return [w.process.sentinel for w in self._workers.values()]

    def next_deadline(self) -> float | None:
        """The earliest monotonic time at which `check_timeouts` or `reap` has work to do."""
        times = [w.deadline if w.terminated_at is None else w.terminated_at + self.grace
                 for w in self._workers.values() if w.deadline is not None]
        if self._replenish_at is not None:
            times.append(self._replenish_at)
        return min(times, default=None)

    def reap(self, now: float) -> list[WorkerExit]:
        """Settle every worker that has exited, recording attempts it left unrecorded.

        Also starts the next spare worker once SPARE_DELAY has passed since a
        start, so that it does not compete for the CPU with a job just started.
        """
        if self._replenish_at is not None and now >= self._replenish_at:
            self._replenish()
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
                _signal_group(w.pid, w.pidfd, signal.SIGTERM)
                signalled.append(job_id)
            elif now >= w.terminated_at + self.grace:
                _signal_group(w.pid, w.pidfd, signal.SIGKILL)
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
        _signal_group(w.pid, w.pidfd, signal.SIGKILL)
        return WorkerExit(job_id, w.record.generation, self._wait_dead(w), "killed")

    def shutdown(self) -> list[WorkerExit]:
        """Kill and reap every worker; records nothing."""
        if self._spare is not None:
            self._discard(self._spare)
            self._spare = None
        job_ids = list(self._workers) + list(self._unrecorded)
        return [exit for exit in map(self.kill, job_ids) if exit is not None]

    # -- settling ------------------------------------------------------------------

    def _wait_dead(self, w: _Worker) -> int:
        """Make sure the worker and its group are gone; release its handles; its exit code."""
        pid = w.process.pid
        assert pid is not None
        if not _pidfd_ready(w.pidfd):
            _signal_group(pid, w.pidfd, signal.SIGKILL)  # reported gone but alive: lost forkserver
            _pidfd_ready(w.pidfd, REAP_WAIT)
        _signal_group(pid, -1, signal.SIGKILL)  # whatever the job left in its group
        code = _close_process(w.process, w.pidfd)
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


def _shutdown_at_exit(executor: weakref.ref[Executor]) -> None:
    alive = executor()
    if alive is not None:
        alive.shutdown()


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


def _signal_group(pid: int, pidfd: int, signum: int) -> None:
    """Send `signum` to process group `pid`, and to the process itself through `pidfd` (if >= 0)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
    if pidfd >= 0:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signum)


def _close_process(process: BaseProcess, pidfd: int) -> int | None:
    """Join a dead process, release its pidfd and sentinel; its exit code."""
    process.join(REAP_WAIT)
    code = process.exitcode
    if pidfd >= 0:
        os.close(pidfd)
    if code is not None:
        process.close()
    return code

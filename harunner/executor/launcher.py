"""The launcher: starts the worker processes of one runner, each with a pipe and a pidfd.

The executor asks `launch(max_jobs)` for a new worker (a `WorkerProcess`:
the process, a pidfd for it, and the executor's end of a duplex pipe). The
launcher knows nothing of jobs, outcomes or the store; it also holds the
process-handle helpers the executor uses.

Responsibilities and invariants:
- One multiprocessing context (forkserver or spawn), created inside the
  runner process on first use, never at import; creating it registers the
  owner's `shutdown` (weakly) to run at exit, before multiprocessing joins
  every child.
- The forkserver preloads `harunner.executor.worker` and, if asked, the job
  modules; if that kills it, it restarts without them for good. No launched
  process re-runs the runner's `__main__`.
- Every worker comes with a pidfd opened right after it starts (-1 if it
  has already exited); the process itself is only signalled through it, so
  a recycled pid is never hit. The worker's end of the pipe is closed here
  once the worker has it, so the executor's end reads EOF when the worker dies.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing import spawn
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Protocol

from harunner.api.discovery import module_names
from harunner.executor import worker
from harunner.pidfds import close, open_pidfd, send_signal

REAP_WAIT = 2.0
FORKSERVER_RETRIES = 40
log = logging.getLogger("harunner.launcher")


class Owner(Protocol):
    """What owns the launched processes: it can kill them all at interpreter exit."""

    def shutdown(self) -> object: ...


@dataclass
class WorkerProcess:
    """A launched worker: its process, a pidfd, the executor's end of its pipe, and the
    jobs it was given and has not reported yet, in the order it runs them (the first runs)."""

    process: BaseProcess
    pid: int
    pidfd: int
    connection: Connection
    start_ticks: int
    jobs: deque[tuple[str, int | None]] = field(default_factory=deque)  # None: abandoned


class Launcher:
    """Starts workers through one lazily created multiprocessing context."""

    def __init__(self, state_dir: Path, job_entries: tuple[str, ...], lock_timeout: float,
                 start_method: str, *, preload_jobs: bool, owner: Owner) -> None:
        self.state_dir = state_dir
        self.job_entries = job_entries
        self.lock_timeout = lock_timeout
        self.start_method = start_method
        self._owner = weakref.ref(owner)
        self._context: BaseContext | None = None
        self._preloading_jobs = preload_jobs and start_method == "forkserver"
        self._setup: worker.WorkerSetup | None = None

    def warm_up(self) -> None:
        """Start the forkserver now (a no-op process through it), so workers start fast."""
        process = self._launch(worker.ping, (), "harunner-warm-up")
        process.join()
        process.close()

    def launch(self, max_jobs: int) -> WorkerProcess:
        """A new worker that runs up to `max_jobs` assignments (0: any number)."""
        ours, theirs = self._multiprocessing().Pipe(duplex=True)  # type: ignore[attr-defined]
        try:
            process = self._launch(worker.serve, (self._worker_setup(), theirs, max_jobs),
                                   "harunner-worker")
        finally:
            theirs.close()
        assert process.pid is not None
        return WorkerProcess(process, process.pid, open_pidfd(process.pid), ours,
                             worker.process_start_ticks(process.pid))

    def _worker_setup(self) -> worker.WorkerSetup:
        if self._setup is None or self._setup.runner_pid != os.getpid():
            self._setup = worker.WorkerSetup(
                str(self.state_dir), self.lock_timeout, self.job_entries, os.getpid(),
                worker.process_start_ticks(os.getpid()))
        return self._setup

    def known_pids(self) -> set[int]:
        """Processes of this runner that are not workers: the forkserver, resource tracker."""
        from multiprocessing import forkserver, resource_tracker

        pids = {forkserver._forkserver._forkserver_pid,  # type: ignore[attr-defined]
                resource_tracker._resource_tracker._pid}  # type: ignore[attr-defined]
        return {pid for pid in pids if pid}

    # -- processes and the forkserver ----------------------------------------------

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
        return self._relaunch_without_jobs(target, args, name)

    def _relaunch_without_jobs(self, target: Callable[..., None], args: tuple[Any, ...],
                               name: str) -> BaseProcess:
        """Preload only the worker from now on; start the process once a new forkserver is up."""
        self._preloading_jobs = False
        assert self._context is not None
        self._context.set_forkserver_preload(["harunner.executor.worker"])
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
            atexit.register(_shutdown_at_exit, self._owner)
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
            return ["harunner.executor.worker"]
        return ["harunner.executor.worker", *module_names(self.job_entries)]


def _shutdown_at_exit(owner: weakref.ref[Owner]) -> None:
    alive = owner()
    if alive is not None:
        alive.shutdown()


def absolute_entry(entry: str) -> str:
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


def signal_group(pid: int, pidfd: int, signum: int) -> None:
    """Send `signum` to process group `pid`, and to the process itself through `pidfd` (if >= 0)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
    send_signal(pidfd, signum)


def close_process(process: BaseProcess, pidfd: int) -> int | None:
    """Join a dead process, release its pidfd and sentinel; its exit code."""
    process.join(REAP_WAIT)
    code = process.exitcode
    close(pidfd)
    if code is not None:
        process.close()
    return code

"""The job worker: the process that runs one attempt of one job at one generation.

The executor starts `main(request)` in a fresh process (forkserver or spawn),
or `standby(setup, pipe)` for its spare worker, which does steps 1-2 at once
and waits on the pipe for the job. The worker
1. makes itself a process-group leader, so the runner can kill the job and
   every process the job started with one `killpg`;
2. dies with its runner, and takes its group (the job's own children) with
   it: a background thread polls a pidfd of the runner and SIGKILLs the worker's
   group the moment the runner is gone. PR_SET_PDEATHSIG=SIGKILL (plus a
   parent check) covers the start-up until that thread watches, and stays
   armed when the parent is the forkserver (it fires if the forkserver dies;
   the runner, still alive, then kills the group). When the parent is the
   runner itself (spawn), it is disarmed once the thread watches, because it
   would kill the worker alone and leave the job's children behind. A job
   holding the GIL in C code for good would stall the thread: a known limit;
3. reads the job's record and checks that it is RUNNING at the worker's
   generation, reads the last checkpoint, imports the job, and calls it with
   the record's arguments and a `Context`;
4. records the outcome with `store.finish` (a result; or an error with a retry
   time per the record's policy) and exits with a code that says what it did.

Invariants: a fenced worker (a newer owner or a cancel raised the generation)
writes nothing more to the store (one line in the job's log says why) and
exits with EXIT_FENCED; the job's stdout and stderr
go to its log file; nothing is imported or started at import time.

Exit codes (any other code, or death by a signal, means the worker crashed
and the executor records the failed attempt itself):
"""

from __future__ import annotations

import _thread
import contextlib
import ctypes
import logging
import os
import select
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

from harunner.api import Context, job_logger, retry_at
from harunner.api.discovery import find
from harunner.errors import FencedError, HarunnerError, StaleTransitionError
from harunner.store import JobRecord, JobState, Store

EXIT_SUCCEEDED = 0    # the job returned; SUCCEEDED recorded
EXIT_FAILED = 64      # the job raised, no retry left (or its result was not JSON); FAILED recorded
EXIT_RETRYING = 65    # the job raised; PENDING recorded with not_before = the retry time
EXIT_UNRECORDED = 70  # the outcome could not be recorded (a store error); the executor records
EXIT_FENCED = 75      # a newer generation owns the job; nothing was written
EXIT_ORPHANED = 76    # the runner is gone; the worker killed its group and wrote nothing

EXIT_CODES = {EXIT_SUCCEEDED: "succeeded", EXIT_FAILED: "failed", EXIT_RETRYING: "retrying",
              EXIT_UNRECORDED: "unrecorded", EXIT_FENCED: "fenced", EXIT_ORPHANED: "orphaned"}
__doc__ += "".join(f"\n    {code:3d}  {name}" for code, name in EXIT_CODES.items()) + "\n"

PR_SET_PDEATHSIG = 1
log = logging.getLogger("harunner.executor.worker")


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker of one runner shares, picklable."""

    state_dir: str
    lock_timeout: float
    job_entries: tuple[str, ...]
    runner_pid: int
    runner_start_ticks: int


@dataclass(frozen=True)
class WorkerRequest:
    """One attempt to run: which job, at which generation."""

    setup: WorkerSetup
    job_id: str
    generation: int


def main(request: WorkerRequest) -> None:
    """The worker process's target: set up, run the attempt, exit with its code."""
    prepare(request.setup)
    _exit(run(request))


def standby(setup: WorkerSetup, connection: Connection) -> None:
    """A spare worker's target: set up now, then wait for (job_id, generation) and run it.

    The executor keeps one spare ready so that a job starts without paying
    for a process start. The spare exits quietly if the pipe closes unused.
    """
    prepare(setup)
    try:
        job_id, generation = connection.recv()
    except (EOFError, OSError):
        _exit(EXIT_SUCCEEDED)
    connection.close()
    _exit(run(WorkerRequest(setup, job_id, generation)))


def prepare(setup: WorkerSetup) -> None:
    """Lead a process group and die with the runner (see the module docstring)."""
    _own_process_group()
    _set_parent_death_signal(signal.SIGKILL)
    watch_runner(setup.runner_pid, setup.runner_start_ticks)
    if os.getppid() == setup.runner_pid:
        _set_parent_death_signal(0)


def _exit(code: int) -> NoReturn:
    _flush_output()
    os._exit(code)


def ping() -> None:
    """A no-op target, used to warm up the forkserver."""


def run(request: WorkerRequest) -> int:
    """Run the attempt and record its outcome; returns the exit code."""
    setup = request.setup
    store = Store(Path(setup.state_dir), lock_timeout=setup.lock_timeout)
    try:
        record = store.get(request.job_id)
        if record.state is not JobState.RUNNING or record.generation != request.generation:
            return EXIT_FENCED
        checkpoint = store.read_checkpoint(request.job_id)
        logger = job_logger(store, record)
        _redirect_output(store.log_path(request.job_id))
        return attempt(store, record, checkpoint, logger, setup.job_entries)
    except (FencedError, StaleTransitionError):
        return EXIT_FENCED
    except Exception:
        traceback.print_exc()
        return EXIT_UNRECORDED


def attempt(store: Store, record: JobRecord, checkpoint: Any, logger: logging.Logger,
            entries: tuple[str, ...]) -> int:
    """Call the job; record its result or error; returns the exit code."""
    context = None
    try:
        spec = find(entries, record.name)
        context = Context(store, record, checkpoint, logger)
        logger.info("attempt %d of %s starts%s", record.attempts, record.name,
                    f" from checkpoint {checkpoint.seq}" if checkpoint else "")
        result = spec.function(context, **record.args)
    except FencedError:
        return _fenced(logger)
    except (Exception, SystemExit) as error:
        if context is not None and context.fenced:
            return _fenced(logger)
        logger.error("attempt %d failed:\n%s", record.attempts, traceback.format_exc())
        return _record_failure(store, record, summarize(error))
    if context.fenced:
        return _fenced(logger)
    finished = store.finish(record.job_id, record.generation, result=result)
    logger.info("attempt %d %s", record.attempts, finished.state.value)
    return EXIT_SUCCEEDED if finished.state is JobState.SUCCEEDED else EXIT_FAILED


def _record_failure(store: Store, record: JobRecord, error: str) -> int:
    when = retry_at(record, time.time())
    finished = store.finish(record.job_id, record.generation, error=error, retry_at=when)
    return EXIT_RETRYING if finished.state is JobState.PENDING else EXIT_FAILED


def _fenced(logger: logging.Logger) -> int:
    logger.warning("fenced: a newer owner has this job; this worker stops, writing nothing")
    return EXIT_FENCED


def summarize(error: BaseException) -> str:
    """One line: the exception and where the job raised it."""
    text = f"{type(error).__name__}: {error}".strip()
    frames = traceback.extract_tb(error.__traceback__)
    if frames and not isinstance(error, HarunnerError):
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text


def watch_runner(pid: int, start_ticks: int) -> None:
    """Exit at once if runner `pid` is gone; else watch it from a daemon thread."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        orphaned()
    except OSError:
        fd = -1
    if process_start_ticks(pid) != start_ticks:
        orphaned()
    target = _wait_on_pidfd if fd >= 0 else _poll_pid
    # A bare thread: threading.Thread.start() would wait until it runs (~ms under load).
    _thread.start_new_thread(target, (fd if fd >= 0 else pid, start_ticks))


def _wait_on_pidfd(fd: int, _start_ticks: int) -> None:
    while True:
        readable, _, _ = select.select([fd], [], [])
        if readable:
            orphaned()


def _poll_pid(pid: int, start_ticks: int) -> None:
    while process_start_ticks(pid) == start_ticks:
        time.sleep(0.05)
    orphaned()


def orphaned() -> NoReturn:
    """The runner is gone: kill this worker's group (the job's children too) and exit."""
    if os.getpgrp() == os.getpid():
        with contextlib.suppress(OSError):
            os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(EXIT_ORPHANED)


def process_start_ticks(pid: int) -> int:
    """The start time of process `pid` in clock ticks since boot; -1 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return -1
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return -1
    return int(fields[19])


def _own_process_group() -> None:
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)


def _set_parent_death_signal(signum: int) -> None:
    """Ask the kernel to send `signum` (0: nothing) when the parent exits; exit if it has."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if signum and (os.getppid() != parent or parent == 1):
        orphaned()


def _redirect_output(path: Path) -> None:
    """Send this process's stdout and stderr (fds 1 and 2) to the job's log file."""
    _flush_streams()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _flush_output() -> None:
    _flush_streams()
    logging.shutdown()


def describe_exit(exitcode: int) -> str:
    """Human words for a worker's exit code (negative: killed by that signal)."""
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"

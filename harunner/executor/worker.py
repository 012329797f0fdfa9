"""The worker process: runs attempts of jobs, one at a time, for as long as the executor wants.

The executor starts `serve(setup, connection, max_jobs)` in a fresh process
(forkserver or spawn): `max_jobs=0` for a long-lived pool worker, 1 for
`worker_mode = "process"`. The worker
1. makes itself a process-group leader and a child subreaper, so that every
   process a job starts, even one that calls setsid(), stays in its tree;
2. dies with its runner, and takes its descendants with it: a daemon thread
   blocks on a pidfd of the runner and kills the worker's tree the moment
   the runner is gone. PR_SET_PDEATHSIG=SIGKILL (plus a parent check) covers
   the start-up until that thread watches, and stays armed when the parent
   is the forkserver. When the parent is the runner itself (spawn), it is
   disarmed once the thread watches, because it would kill the worker alone
   and leave the job's children behind. A job holding the GIL in C code for
   good would stall the thread: a known limit;
3. opens its spool (`harunner.executor.spool`: one file, where the output of
   an attempt without a job log goes, and a thread that gives an attempt its
   log after SPOOL_AFTER), before any attempt, so the thread is part of the
   baseline; a spool that cannot be made means job logs are written directly;
4. blocks on the pipe for an `Assignment` (job id, generation), or a tuple of
   them when attempts are short (`executor.lists.list_size`), runs each in
   order with `harunner.executor.attempt.run_attempt` (which checks the
   record, reads the checkpoint, calls the job, and cleans up after it), and
   sends each `Outcome` back as soon as it has it; the executor records them.
   Then it blocks again. A retiring attempt ends the list: the worker exits,
   and the executor queues the jobs it did not run again.

An idle worker costs nothing: its main thread blocks in recv() and its
watchdog in select() on the pidfd; neither wakes up on a timer.

Invariants: a fenced worker writes nothing more to the store; every
descendant of an attempt is dead before its outcome is sent; nothing is
imported or started at import time. The worker exits 0 when the pipe closes
or after `max_jobs` attempts, EXIT_ORPHANED when the runner is gone (both remove
its spool, moving a running attempt's output into the job's log first); any
other end is a crash, which the executor classifies (and `spool.adopt`s).
"""

from __future__ import annotations

import _thread
import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import NoReturn

from harunner.config import store_config
from harunner.executor import descendants
from harunner.executor.attempt import Assignment, run_attempt
from harunner.executor.spool import Spool
from harunner.pidfds import GONE, has_exited, open_pidfd
from harunner.store.backends import open_store
from harunner.store.layout import Layout

EXIT_DONE = 0         # the pipe closed, or max_jobs attempts were run and reported
EXIT_ORPHANED = 76    # the runner is gone; the worker killed its tree and wrote nothing
PR_SET_PDEATHSIG = 1
log = logging.getLogger("harunner.executor.worker")
_spool: Spool | None = None  # this worker's spool (`orphaned` and `_exit` close it)


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker of one runner shares, picklable."""

    state_dir: str
    lock_timeout: float
    job_entries: tuple[str, ...]
    runner_pid: int
    runner_start_ticks: int


def serve(setup: WorkerSetup, connection: Connection, max_jobs: int = 0) -> None:
    """The worker's target: set up, then run assignments until the pipe closes or max_jobs."""
    prepare(setup)
    logging.getLogger("harunner.job")  # a real parent: job loggers do not pile up under it
    done = 0
    # One Store for the worker's life: its job locks keep nothing per job once released,
    # and its database connection is opened once, not per attempt.
    store = open_store(store_config(setup.state_dir), lock_timeout=setup.lock_timeout)
    spool = open_spool(store.layout)
    while not max_jobs or done < max_jobs:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            _exit(EXIT_DONE)
        batch = (message,) if isinstance(message, Assignment) else (
            message if isinstance(message, tuple) else ())
        for assignment in batch:
            started = time.monotonic()
            outcome = dataclasses.replace(run_attempt(store, assignment, setup.job_entries,
                                                      spool), took=time.monotonic() - started)
            done += 1
            try:
                connection.send(outcome)
            except OSError:
                _exit(EXIT_DONE)
            if outcome.retire:  # the rest of the list is left to the executor to re-queue
                _exit(EXIT_DONE)
    _exit(EXIT_DONE)


def open_spool(layout: Layout) -> Spool | None:
    """The worker's spool (its thread starts here, before any attempt's `Baseline`); None,
    after one line saying why, if it cannot be made: job logs are then written directly."""
    global _spool
    try:
        _spool = Spool(layout)
    except OSError as error:
        log.warning("worker %d: cannot create its spool %s (%s); job logs are written "
                    "directly", os.getpid(), layout.spool(os.getpid()), error)
    return _spool


def prepare(setup: WorkerSetup) -> None:
    """Lead a process group, adopt orphans, die with the runner (see the module docstring)."""
    _own_process_group()
    descendants.become_subreaper()
    _set_parent_death_signal(signal.SIGKILL)
    watch_runner(setup.runner_pid, setup.runner_start_ticks)
    if os.getppid() == setup.runner_pid:
        _set_parent_death_signal(0)


def _exit(code: int) -> NoReturn:
    _flush_output()
    if _spool is not None:
        _spool.close()
    os._exit(code)


def ping() -> None:
    """A no-op target, used to warm up the forkserver."""


def watch_runner(pid: int, start_ticks: int) -> None:
    """Exit at once if runner `pid` is gone; else watch it from a daemon thread."""
    fd = open_pidfd(pid)
    if fd == GONE or process_start_ticks(pid) != start_ticks:
        orphaned()
    # A bare thread: threading.Thread.start() would wait until it runs (~ms under load).
    _thread.start_new_thread(_wait_on_pidfd, (fd,))


def _wait_on_pidfd(fd: int) -> None:
    while not has_exited(fd, None):
        pass
    orphaned()


def orphaned() -> NoReturn:
    """The runner is gone: kill this worker's descendants and group, and exit."""
    with contextlib.suppress(OSError):
        descendants.kill_all(descendants.descendants(os.getpid(), stop=True))
    if _spool is not None:  # the attempt's output so far goes to the job's log
        _spool.close()
    if os.getpgrp() == os.getpid():  # this worker too: it leads the group
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

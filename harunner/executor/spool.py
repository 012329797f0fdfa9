"""Where an attempt's output goes until it has something to say: the worker's spool.

A job's folder and log are created only when an attempt writes something,
fails, or runs for longer than SPOOL_AFTER. Each worker has one spool file,
`layout.spool(pid)` (folder and file 0700/0600, locked with flock for the
worker's life). `joblog.open_log` starts an attempt's log:
- the job's log exists: fds 1 and 2 and the job's logger go to it, as before;
- it does not: they go to the spool, which is empty at that moment.
`joblog.AttemptLog.end` (after `Baseline.restore` killed every descendant and put
fds 1 and 2 back) settles a spooled attempt: a success that wrote nothing
beyond the "attempt N starts" line truncates the spool (no folder, no log,
no "returned" line); anything else is materialized: the job's folder is made,
the spool is hard-linked as the job's log and its name removed (every open
fd, a subprocess's too, keeps writing to the same inode, now the job's log),
and a fresh spool is opened. A log that appeared meanwhile gets the spool
appended instead, and the logger's fd is pointed at it.

A daemon thread of the worker (started before the first `Baseline`)
materializes an attempt spooled for longer than SPOOL_AFTER, so that
`harunner logs --follow` shows it; one lock makes the thread and the end of
an attempt exclusive. A worker that dies mid-attempt leaves its spool: the
executor calls `adopt(layout, pid, job_id)`, which moves what it holds into
the job's log and removes it. Empty spools of dead workers (killed while
idle) are removed by the next worker that starts (`sweep`): a spool whose
flock can be taken has no live owner.

Invariants: at the start of an attempt the spool is empty; a spooled
attempt's output is in the spool, in the order written, until it is linked
or copied into the job's log; nothing is truncated that is more than the
header of a successful attempt.
"""

from __future__ import annotations

import _thread
import contextlib
import fcntl
import logging
import os
import threading
import time

from harunner.store.layout import Layout

SPOOL_AFTER = 0.25  # seconds: a longer attempt gets its log while it runs
LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
log = logging.getLogger("harunner.executor.spool")


class Spool:
    """One worker's spool file, its lock, and the thread that materializes long attempts."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.path = layout.spool(os.getpid())
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        for folder in (layout.run, layout.spools):  # run/ is made by the store, if not yet
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o700)
        sweep(layout, self.path)
        self.fd = _open_spool(self.path)
        self.broken: str | None = None  # why the spool is no longer used (fd -1)
        self.job_id: str | None = None  # the attempt now spooled, if any
        self.logger_fd = -1  # the job logger's own descriptor (a dup of the spool's)
        self.started = 0.0
        self.header_end = -1  # the spool's size once the header is written (set by joblog)
        self._timer_may_link = True
        self._timer_idle = False
        _thread.start_new_thread(self._timer, ())  # bare: threading.Thread would wait for it

    def begin(self, job_id: str) -> int:
        """Spool the attempt of `job_id`: fds 1 and 2 now write to the spool. A descriptor
        of it for the job's logger (closed with the logger)."""
        with self.lock:
            os.dup2(self.fd, 1, inheritable=True)
            os.dup2(self.fd, 2, inheritable=True)
            self.logger_fd = os.dup(self.fd)
            self.job_id, self.started, self.header_end = job_id, time.monotonic(), -1
            self._timer_may_link = True
            if self._timer_idle:
                self._wake.notify()
        return self.logger_fd

    def usable(self) -> bool:
        """Whether attempts can be spooled; says once, when it stops being so, why not."""
        if self.fd < 0 and self.broken:
            log.warning("worker %d writes job logs directly from now on: %s", os.getpid(),
                        self.broken)
            self.broken = ""
        return self.fd >= 0

    def settle(self, succeeded: bool) -> bool:
        """End the spooled attempt (fds 1 and 2 restored, descendants dead). True if the job's
        log holds the attempt, so its last line goes there; False if it was quiet."""
        with self.lock:
            if self.job_id is None:  # materialized while it ran
                return True
            try:
                if succeeded and os.fstat(self.fd).st_size == self.header_end > 0:
                    os.ftruncate(self.fd, 0)
                    return False
                return self._materialize(copy=True)
            except OSError as error:
                log.warning("job %s: could not move the attempt's output from the spool %s "
                            "into the job's log (%s); it is dropped", self.job_id, self.path,
                            error)
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, 0)
                return False
            finally:
                self.job_id, self.logger_fd = None, -1

    def close(self) -> None:
        """The worker exits: put a spooled attempt into its log, remove the spool's name."""
        if not self.lock.acquire(timeout=0.5):  # the main thread is stuck holding it
            return
        try:
            if self.job_id is not None:
                with contextlib.suppress(OSError):
                    self._materialize(copy=True)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        finally:
            self.lock.release()

    # -- under the lock ------------------------------------------------------------------

    def _materialize(self, copy: bool) -> bool:
        """Make the spool the job's log (or, `copy`, append it to a log that exists), and
        open a fresh spool. Without `copy`, False if it cannot be linked (left spooled)."""
        assert self.job_id is not None
        target = self.layout.job_log(self.job_id)
        with contextlib.suppress(FileExistsError):
            os.mkdir(target.parent, 0o700)
        try:
            os.link(self.path, target)
        except OSError as error:  # the log exists, or this file system has no hard links
            if not copy:
                return False  # the end of the attempt copies it, once every writer is gone
            if not (isinstance(error, FileExistsError) and os.path.samefile(self.path, target)):
                self._append_to(target)
        os.unlink(self.path)
        os.close(self.fd)
        self.job_id = None
        self.fd = -1
        try:
            self.fd = _open_spool(self.path)
        except OSError as error:  # the worker logs its job logs directly from now on
            self.broken = f"cannot create a fresh spool {self.path}: {error}"
        return True

    def _append_to(self, target: os.PathLike[str]) -> None:
        """Copy the spool to the end of the job's log; the logger writes there from now on."""
        fd = os.open(target, LOG_FLAGS | os.O_CREAT, 0o600)
        try:
            copy_all(self.fd, fd)
            if self.logger_fd >= 0:
                with contextlib.suppress(OSError):
                    os.dup2(fd, self.logger_fd, inheritable=False)
        finally:
            os.close(fd)

    def _timer(self) -> None:
        """Materialize an attempt spooled for longer than SPOOL_AFTER (a daemon thread).
        It never logs: a LogRecord would make `threading` see it as a new thread."""
        with self.lock:
            while True:
                if self.job_id is None or not self._timer_may_link:
                    self._timer_idle = True
                    self._wake.wait()
                    self._timer_idle = False
                    continue
                due = self.started + SPOOL_AFTER - time.monotonic()
                if due > 0:
                    self._wake.wait(due)
                    continue
                try:
                    self._timer_may_link = self._materialize(copy=False)
                except OSError:  # the end of the attempt tries again, and says why
                    self._timer_may_link = False


def _open_spool(path: os.PathLike[str]) -> int:
    """Create (or take over) the spool at `path`, empty and locked by this process."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:  # not removed by a sweep while we waited for the lock
            os.ftruncate(fd, 0)
            return fd
        os.close(fd)


def sweep(layout: Layout, own: os.PathLike[str]) -> None:
    """Remove the empty spools that no live worker holds (their workers were killed idle).
    A spool whose process is alive is passed over at the cost of one `kill(pid, 0)`."""
    folder = os.fspath(layout.spools)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    own_name = os.path.basename(own)
    for name in names:
        pid = name.rpartition("-")[2]
        if name == own_name or (pid.isdigit() and _alive(int(pid))):
            continue
        path = os.path.join(folder, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            found = os.fstat(fd)
            if found.st_size == 0 and os.stat(path).st_ino == found.st_ino:
                os.unlink(path)
        except OSError:
            pass  # held by a live worker, or gone already
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def adopt(layout: Layout, pid: int, job_id: str) -> None:
    """Worker `pid` died (and its descendants): what its spool holds goes to the end of job
    `job_id`'s log, and the spool is removed. Called by the executor before it writes its
    own line for that attempt."""
    path = layout.spool(pid)
    try:
        if os.stat(path).st_size:
            target = layout.job_log(job_id)
            with contextlib.suppress(FileExistsError):
                os.mkdir(target.parent, 0o700)
            try:
                os.link(path, target)
            except FileExistsError:
                if not os.path.samefile(path, target):
                    _append_file(path, target)
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as error:
        log.warning("job %s: could not move the output of dead worker %d from %s into the "
                    "job's log: %s", job_id, pid, path, error)


def _append_file(source: os.PathLike[str], target: os.PathLike[str]) -> None:
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, LOG_FLAGS)
        try:
            copy_all(src, dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def copy_all(source: int, target: int) -> None:
    """Append everything in `source` (from its start) to `target`."""
    offset = 0
    while chunk := os.pread(source, 1 << 16, offset):
        offset += len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(target, view):]

"""Per-job file locks: `flock(2)` on locks/<id>.lock, with a bounded wait.

The same kind of lock as the `filelock` package takes (whole-file flock on a
separate `.lock` path, never the data file), without its per-call overhead,
which dominated a batch of a thousand finishes (about 0.6 ms per lock).

Invariants:
- A lock is released by `LOCK_UN` before its descriptor is closed, so a
  process forked while a lock was held (it shares the open file description)
  can neither keep the lock alive nor release it later; a forked child
  forgets every lock its parent held (the table is keyed by pid).
- Re-entrant within one thread of one process; another thread of the same
  process opens its own descriptor and is excluded like another process.
- Waits poll with `LOCK_NB` and a short back-off, never past `timeout`:
  a paused (SIGSTOP) holder delays a caller by at most its timeout.
- The kernel drops the lock when its holder dies, SIGKILL included.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from pathlib import Path

POLL_FIRST = 0.0005
POLL_MAX = 0.01


class LockBusy(Exception):
    """The lock was not acquired within the timeout."""


class FileLocks:
    """The job locks this process (and thread) holds, with their re-entry counts."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._held: dict[tuple[int, Path], list[int]] = {}  # (thread, path) -> [fd, count]
        self._guard = threading.Lock()

    def acquire(self, path: Path, timeout: float) -> None:
        """Take the flock on `path`, waiting at most `timeout` seconds; `LockBusy` otherwise."""
        key = self._key(path)
        entry = self._held.get(key)
        if entry is not None:
            entry[1] += 1
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            _wait_for(fd, timeout)
        except BaseException:
            os.close(fd)
            raise
        self._held[key] = [fd, 1]

    def release(self, path: Path) -> None:
        key = self._key(path)
        entry = self._held[key]
        entry[1] -= 1
        if entry[1] == 0:
            del self._held[key]
            try:
                fcntl.flock(entry[0], fcntl.LOCK_UN)
            finally:
                os.close(entry[0])

    def _key(self, path: Path) -> tuple[int, Path]:
        with self._guard:
            if self._pid != os.getpid():  # forked: the parent's locks are not ours
                self._pid, self._held = os.getpid(), {}
        return threading.get_ident(), path


def _wait_for(fd: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pause = POLL_FIRST
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockBusy
        time.sleep(min(pause, left))
        pause = min(pause * 2, POLL_MAX)

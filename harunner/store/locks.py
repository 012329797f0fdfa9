"""Per-job file locks: one byte of locks/jobs.lock per job, locked with OFD record locks.

A job's lock is an exclusive open-file-description lock (`F_OFD_SETLK`, Linux
3.15+) on the byte at offset hash(job id) of one shared lock file. Like the
per-job `flock` files of harunner 0.1.0 it is released by the kernel when its
holder dies (SIGKILL included) and held forever by a paused (SIGSTOP) holder;
unlike them it needs no lock file per job: creating ten thousand lock files
cost about 1 ms each on ext4 and dominated a batch of finishes (docs/store.md).
Two jobs share a lock only if their 62-bit hashes collide (about one in 10^7 at
a million jobs), which delays, never breaks, either of them.

Invariants:
- Each thread of each process locks through its own descriptor (OFD locks of
  different descriptors exclude each other, even within one process), opened
  when the thread takes its first lock and closed when it releases its last,
  so a descriptor inherited through fork never outlives a hold it shares; a
  forked child forgets its parent's locks (the table is keyed by pid).
- Re-entrant within one thread: a count per job; the byte is unlocked when
  the count drops to zero.
- Waits poll with a non-blocking attempt and a short back-off, never past the
  timeout: a paused holder delays a caller by at most its timeout.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from harunner.errors import LockTimeoutError

POLL_FIRST = 0.0005
POLL_MAX = 0.01
OFFSET_BITS = 62
_FLOCK = struct.Struct("hhqqi4x")  # struct flock on Linux x86-64 and aarch64


class LockBusy(Exception):
    """The lock was not acquired within the timeout."""


def offset_of(job_id: str) -> int:
    """The byte of the lock file that stands for `job_id`."""
    import hashlib  # here: its import (OpenSSL) costs a submission ~5 ms

    digest = hashlib.blake2b(job_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << OFFSET_BITS) - 1)


class _Holder:
    """One thread's descriptor on the lock file and the counts of the jobs it holds."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.counts: dict[int, int] = {}


class JobLocks:
    """The job locks of the lock file at `path`, for this process and its threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pid = os.getpid()
        self._holders: dict[int, _Holder] = {}
        self._guard = threading.Lock()

    def acquire(self, job_id: str, timeout: float) -> None:
        """Lock `job_id`, waiting at most `timeout` seconds; `LockBusy` otherwise."""
        holder, offset = self._holder(), offset_of(job_id)
        if offset in holder.counts:
            holder.counts[offset] += 1
            return
        if holder.fd is None:
            holder.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                                0o600)
        try:
            _wait_for(holder.fd, offset, timeout)
        except BaseException:
            self._close_if_idle(holder)
            raise
        holder.counts[offset] = 1

    def release(self, job_id: str) -> None:
        holder, offset = self._holder(), offset_of(job_id)
        holder.counts[offset] -= 1
        if holder.counts[offset] == 0:
            del holder.counts[offset]
            assert holder.fd is not None
            try:
                _set(holder.fd, fcntl.F_UNLCK, offset)
            finally:
                self._close_if_idle(holder)

    @contextlib.contextmanager
    def hold(self, job_id: str, timeout: float) -> Iterator[None]:
        """Hold the lock of `job_id`, waiting at most `timeout`: `LockTimeoutError` if not."""
        try:
            self.acquire(job_id, timeout)
        except LockBusy:
            raise LockTimeoutError(
                f"job {job_id}: lock {self.path} (byte {offset_of(job_id)}) not acquired "
                f"within {timeout:g} s; its holder may be paused (SIGSTOP) or hung: fencing "
                "makes it harmless once the job has a new owner; kill it if it does not "
                "resume") from None
        try:
            yield
        finally:
            self.release(job_id)

    @contextlib.contextmanager
    def holding(self, job_ids: Iterable[str], wait: float) -> Iterator[set[str]]:
        """Hold the locks of `job_ids` (in sorted order, each waited for at most `wait`).

        Yields the ids whose lock stayed busy; releases every lock taken on exit.
        """
        held, busy = [], set()
        try:
            for job_id in sorted(set(job_ids)):
                try:
                    self.acquire(job_id, wait)
                except LockBusy:
                    busy.add(job_id)
                    continue
                held.append(job_id)
            yield busy
        finally:
            for job_id in reversed(held):
                self.release(job_id)

    def _holder(self) -> _Holder:
        with self._guard:
            if self._pid != os.getpid():  # forked: the parent's locks are not ours
                self._pid, self._holders = os.getpid(), {}
            return self._holders.setdefault(threading.get_ident(), _Holder())

    @staticmethod
    def _close_if_idle(holder: _Holder) -> None:
        if not holder.counts and holder.fd is not None:
            os.close(holder.fd)
            holder.fd = None


def _set(fd: int, kind: int, offset: int) -> None:
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(kind, os.SEEK_SET, offset, 1, 0))


def _wait_for(fd: int, offset: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pause = POLL_FIRST
    while True:
        try:
            _set(fd, fcntl.F_WRLCK, offset)
            return
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockBusy
        time.sleep(min(pause, left))
        pause = min(pause * 2, POLL_MAX)

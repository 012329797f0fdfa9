"""Watching processes through pidfds: the one helper every process of harunner uses.

A pidfd (Linux 5.3+) names one process for good: it becomes readable when
that process exits, and a signal sent through it can never hit a recycled
pid. `PidWatch` holds pidfds by key (a slot, a (slot, pid) pair, a job id)
for a process that watches several others: its `fds()` go into the caller's
poll, `exited()` says whose ended. The functions are for one process at a time.

Invariants: a pidfd is closed exactly once (when its process is reported
exited, forgotten, or the watch is closed); a process that is already gone
when it is watched is reported exited at the next `exited()`, never lost.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
GONE = -1


def open_pidfd(pid: int) -> int:
    """A pidfd for `pid`, or GONE (-1) if the process has already exited."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return GONE


def has_exited(pidfd: int, timeout: float | None = 0.0) -> bool:
    """Whether the process behind `pidfd` has exited, waiting up to `timeout` s (None: for ever)."""
    if pidfd < 0:
        return True
    return bool(select.select([pidfd], [], [], timeout)[0])


def readable(pidfds: Iterable[int], timeout: float = 0.0) -> set[int]:
    """Those of `pidfds` whose process has exited (waiting up to `timeout` for one)."""
    fds = [fd for fd in pidfds if fd >= 0]
    gone = {fd for fd in pidfds if fd < 0}
    if not fds:
        return gone
    return gone | set(select.select(fds, [], [], 0 if gone else timeout)[0])


def send_signal(pidfd: int, signum: int) -> bool:
    """Signal the process behind `pidfd`; False if it is gone."""
    if pidfd < 0:
        return False
    try:
        signal.pidfd_send_signal(pidfd, signum)
    except ProcessLookupError:
        return False
    return True


def close(pidfd: int) -> None:
    if pidfd >= 0:
        with contextlib.suppress(OSError):
            os.close(pidfd)


class PidWatch(Generic[K]):
    """pidfds by key; each exit is reported once, then its pidfd is closed."""

    def __init__(self) -> None:
        self._fds: dict[K, int] = {}
        self._pids: dict[K, int] = {}

    def watch(self, key: K, pid: int) -> None:
        """Watch `pid` under `key` (replacing whatever `key` watched before)."""
        self.forget(key)
        self._fds[key] = open_pidfd(pid)
        self._pids[key] = pid

    def forget(self, key: K) -> None:
        """Stop watching `key`, closing its pidfd."""
        close(self._fds.pop(key, GONE))
        self._pids.pop(key, None)

    def exited(self, timeout: float = 0.0) -> list[K]:
        """Keys whose process has exited since the last call; they are forgotten."""
        gone = readable(self._fds.values(), timeout)
        keys = [key for key, fd in self._fds.items() if fd in gone]
        for key in keys:
            self.forget(key)
        return keys

    def signal(self, key: K, signum: int) -> bool:
        return send_signal(self._fds.get(key, GONE), signum)

    def fds(self) -> list[int]:
        """The open pidfds, for a poll that also waits on sockets."""
        return [fd for fd in self._fds.values() if fd >= 0]

    def pid(self, key: K) -> int | None:
        return self._pids.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._fds

    def keys(self) -> list[K]:
        return list(self._fds)

    def close(self) -> None:
        for key in list(self._fds):
            self.forget(key)

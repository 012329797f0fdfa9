"""A job lock held by a paused (SIGSTOP) process: every mutation times out at lock_timeout with
`LockTimeoutError`, never waits forever and never breaks the lock; a killed holder frees it.

The same for SQLite's write lock: a process paused inside a write transaction makes every
writer fail with `LockTimeoutError` after the busy timeout, while reads go on; its death
frees the lock and loses nothing acknowledged.

Catches: a lock acquired without a timeout (the test would hang until pytest-timeout), a
timeout that is not honoured, a store that breaks or ignores a held lock, and a database
opened without a busy timeout (fails at once) or with an unbounded one (hangs).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from harunner.errors import LockTimeoutError
from harunner.store import Owner, Store

TIMEOUT = 1.0


def _timed(call) -> float:  # noqa: ANN001
    start = time.monotonic()
    with pytest.raises(LockTimeoutError) as caught:
        call()
    elapsed = time.monotonic() - start
    message = str(caught.value)
    assert "paused" in message and ".lock" in message and f"{TIMEOUT:g} s" in message
    return elapsed


@pytest.mark.integration
def test_a_paused_lock_holder_makes_writers_time_out(children, store: Store, running: str,
                                                     poll) -> None:  # noqa: ANN001
    holder = children.start("hold", store.root, running)
    assert children.read_line(holder, timeout=20) == "locked"
    os.kill(holder.pid, signal.SIGSTOP)
    poll(lambda: _state(holder.pid) == "T", 5, "the holder to stop")
    writer = Store(store.root, lock_timeout=TIMEOUT)
    calls = [lambda: writer.write_checkpoint(running, 1, {"done": 1}),
             lambda: writer.take_over(running, 2, Owner(1, 1)),
             lambda: writer.finish(running, 1, result=None)]
    for call in calls:
        elapsed = _timed(call)
        assert TIMEOUT <= elapsed < TIMEOUT + 2, elapsed
    assert writer.get(running).generation == 1, "reads must not need the lock"
    os.kill(holder.pid, signal.SIGCONT)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    assert writer.write_checkpoint(running, 1, {"done": 1}) == 1


def _state(pid: int) -> str:
    """The scheduler state letter of process `pid` (R, S, T, Z...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.integration
def test_a_paused_database_writer_makes_writers_time_out(children, store: Store,
                                                         running: str, poll) -> None:  # noqa: ANN001
    holder = children.start("hold_db", store.root)
    assert children.read_line(holder, timeout=20) == "locked"
    os.kill(holder.pid, signal.SIGSTOP)
    poll(lambda: _state(holder.pid) == "T", 5, "the holder to stop")
    writer = Store(store.root, lock_timeout=TIMEOUT)
    for call in (lambda: writer.submit("jobs.demo", {}),
                 lambda: writer.take_over(running, 2, Owner(1, 1)),
                 lambda: writer.cancel(running)):
        start = time.monotonic()
        with pytest.raises(LockTimeoutError, match="write lock"):
            call()
        assert TIMEOUT * 0.9 <= time.monotonic() - start < TIMEOUT + 2
    assert writer.get(running).generation == 1 and len(writer.list_jobs()) == 1
    os.kill(holder.pid, signal.SIGCONT)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    assert writer.take_over(running, 2, Owner(1, 1)).generation == 2

"""One child process of a crash test: start it, watch its events, SIGKILL it on time, reap it.

`run_attempt` starts `child.run_child` from the forkserver, collects what the
child reports on its events pipe ("started" with the checkpoint it resumed
from, each acknowledged "checkpoint", "finished"), and, for a timed kill
point, SIGKILLs it `delay` seconds after the event that starts the timer.

Invariants: every signal goes through a pidfd opened right after the start,
so it can never hit a recycled pid (the forkserver, not this process, reaps
the children); the child is SIGKILLed and reaped before `run_attempt`
returns, whatever happened; a child that runs past `timeout` is killed and
reported as timed out. Runs go on in threads, and multiprocessing's
forkserver `Popen.poll` is not thread-safe: two threads reading one child's
exit status (a `join`, and the poll of every child that each `start` does)
leave the loser with 255, possibly over the right code (CPython gh-130895).
So `start` and the reading of an exit status hold `_REAP`, and the status is
read only once the child is known to have exited, so the lock is never held
while waiting.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing import forkserver
from multiprocessing.connection import Connection, wait
from typing import Any

from harunner import pidfds
from harunner.testing.child import ChildRequest, run_child

Event = tuple[str, int, float]
_REAP = threading.Lock()  # around Process.start and the read of an exit status


@dataclass(frozen=True)
class Attempt:
    """One process of a run: how it ended and what it reported on its events pipe."""

    exitcode: int | None
    events: tuple[Event, ...]
    timed_out: bool

    @property
    def resumed_from(self) -> int | None:
        """The checkpoint the process started from (0: none), or None if it never started."""
        return next((seq for kind, seq, _ in self.events if kind == "started"), None)


def forkserver_context(preload: list[str]) -> Any:
    """The forkserver context, its server running (restarted if another part reaped it).

    multiprocessing's forkserver is one per process. If something else in
    the process reaped it after it died (a `waitpid(-1)` clean-up, as a
    subreaper does), `ensure_running` raises ChildProcessError forever;
    forgetting the dead server's pid, address and pipe lets it start afresh.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    try:
        forkserver.ensure_running()
    except ChildProcessError:
        server: Any = getattr(forkserver, "_forkserver")  # noqa: B009 (private: no stub)
        with contextlib.suppress(OSError, TypeError):
            os.close(server._forkserver_alive_fd)
        server._forkserver_pid = None
        server._forkserver_address = None
        server._forkserver_alive_fd = None
        forkserver.ensure_running()
    return context


def run_attempt(mp: Any, request: ChildRequest, timed: tuple[int, float] | None,
                timeout: float) -> Attempt:
    """Run one child; with `timed` = (k, delay), SIGKILL it `delay` s after checkpoint k."""
    reader, writer = mp.Pipe(duplex=False)
    process = mp.Process(target=run_child, args=(request, writer), daemon=True)
    with _REAP:
        process.start()
    pidfd = pidfds.open_pidfd(process.pid) if process.pid else pidfds.GONE
    writer.close()
    try:
        events, timed_out = _watch(process, pidfd, reader, timed, timeout)
    finally:
        pidfds.send_signal(pidfd, signal.SIGKILL)
        wait([process.sentinel])  # it has exited: reading its status cannot block
        with _REAP:
            process.join()
            exitcode = process.exitcode
        pidfds.close(pidfd)
        reader.close()
    return Attempt(exitcode, tuple(events), timed_out)


def _watch(process: Any, pidfd: int, reader: Connection, timed: tuple[int, float] | None,
           timeout: float) -> tuple[list[Event], bool]:
    """Collect the child's events until it ends; SIGKILL it at the `timed` point."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    kill_at: float | None = None
    waiting: list[Any] = [reader, process.sentinel]
    while True:
        now = time.monotonic()
        if kill_at is not None and now >= kill_at:
            pidfds.send_signal(pidfd, signal.SIGKILL)
            return events, False
        if now >= deadline:
            return events, True
        until = deadline if kill_at is None else min(kill_at, deadline)
        ready = wait(waiting, timeout=until - now)
        if reader in ready:
            try:
                event = reader.recv()
            except EOFError:
                waiting.remove(reader)
                continue
            events.append(event)
            if kill_at is None and timed is not None and _timer_starts(event, timed[0]):
                kill_at = time.monotonic() + timed[1]
        elif process.sentinel in ready and (reader not in waiting or not reader.poll()):
            return events, False


def _timer_starts(event: Event, checkpoint: int) -> bool:
    kind, seq, _ = event
    if checkpoint == 0:
        return kind == "started"
    return kind == "checkpoint" and seq == checkpoint

"""The worker processes of one executor: idle, busy (by job id) and retiring, and their burial.

The executor decides which job runs; the pool knows which process runs it.
`free_worker()` gives an idle live worker (or a new one if there is room),
`receive(proc)` the outcome waiting on a worker's pipe, `deaths()` the busy
workers that died, `bury(proc)` reaps a dead worker and kills what it left.

Invariants: a worker is in exactly one of `idle`, `busy`, `retiring`
(retiring: it reported and is exiting, never given another job); at most
`concurrency` are busy; in pool mode `fill` keeps `concurrency` alive, in
process mode one spare is started SPARE_DELAY after a start. Burying a
worker kills its whole tree, its group, and (when this process adopts
orphans) the children it left re-parented to us (`descendants.orphans_of`).
"""

from __future__ import annotations

import logging
import select
import signal
import time

from harunner.executor import descendants
from harunner.executor.attempt import Outcome
from harunner.executor.launcher import (
    REAP_WAIT,
    Launcher,
    WorkerProcess,
    close_process,
    signal_group,
)
from harunner.pidfds import has_exited

SPARE_DELAY = 0.1  # process mode: after a start, wait this long before starting the next spare
LAUNCH_BATCH = 8  # worker processes started per turn at most (the loop beats between turns)
LAUNCH_TIME = 0.05  # no more starts in a turn once its starts took this long (at least one)
log = logging.getLogger("harunner.executor")


class LaunchBudget:
    """The new workers one turn of the loop may still start: LAUNCH_BATCH, and none once
    LAUNCH_TIME has gone by since the turn's first start (one start can take tens of ms
    on a loaded host: a take-over of hundreds of jobs then starts them over many turns,
    and the loop beats between them)."""

    def __init__(self) -> None:
        self.left = LAUNCH_BATCH
        self.until: float | None = None

    def refill(self) -> None:
        """A new turn."""
        self.left, self.until = LAUNCH_BATCH, None

    def take(self) -> bool:
        """Whether one more worker may start now (if so, it counts)."""
        now = time.monotonic()
        if self.left <= 0 or (self.until is not None and now >= self.until):
            return False
        self.left -= 1
        if self.until is None:
            self.until = now + LAUNCH_TIME
        return True


class Pool:
    """Idle, busy and retiring workers of one executor."""

    def __init__(self, launcher: Launcher, mode: str, concurrency: int, keep_spare: bool,
                 adopting: bool) -> None:
        self.launcher = launcher
        self.mode = mode
        self.concurrency = concurrency
        self.keep_spare = keep_spare
        self.adopting = adopting
        self.busy: dict[str, WorkerProcess] = {}
        self.idle: list[WorkerProcess] = []
        self.retiring: list[WorkerProcess] = []
        self.spare_at: float | None = None
        self.budget = LaunchBudget()  # the executor refills it each turn (`reap`)

    def pids(self) -> list[int]:
        """The pids of every live worker, busy or idle."""
        return [p.pid for p in [*self.busy.values(), *self.idle]]

    def sentinels(self) -> list[int]:
        """Busy workers' pipes (an outcome arrived) and every worker's pidfd (it exited)."""
        fds = [proc.connection.fileno() for proc in self.busy.values()]
        procs = [*self.busy.values(), *self.idle, *self.retiring]
        return fds + [proc.pidfd for proc in procs if proc.pidfd >= 0]

    # -- getting a worker --------------------------------------------------------------

    def free_worker(self) -> WorkerProcess | None:
        """An idle live worker, or a new one if there is room; None if all are busy."""
        while self.idle:
            proc = self.idle.pop()
            if not has_exited(proc.pidfd):
                return proc
            self.bury(proc)
        if len(self.busy) >= self.concurrency:
            return None
        return self._launch()

    def started(self, job_id: str, proc: WorkerProcess, now: float) -> None:
        """`proc` took `job_id`."""
        self.busy[job_id] = proc
        if self.mode == "process" and self.spare_at is None:
            self.spare_at = now + SPARE_DELAY

    def fill(self, now: float) -> None:
        """Pool: keep `concurrency` workers alive. Process: one spare, SPARE_DELAY after a start."""
        if self.mode == "pool":
            while len(self.busy) + len(self.idle) < self.concurrency:
                proc = self._launch()
                if proc is None:
                    return
                self.idle.append(proc)
            return
        due = self.spare_due()
        if due is not None and now >= due:
            self.spare_at = None
            proc = self._launch()
            if proc is not None:
                self.idle.append(proc)

    def spare_due(self) -> float | None:
        """Process mode: when the next spare is due, if one is."""
        if self.mode != "process" or not self.keep_spare or self.idle:
            return None
        if len(self.busy) >= self.concurrency:
            return None
        return self.spare_at

    def _launch(self) -> WorkerProcess | None:
        try:
            return self.launcher.launch(1 if self.mode == "process" else 0)
        except (OSError, EOFError) as error:
            log.warning("cannot start a worker: %s", error)
            return None

    # -- outcomes and deaths ---------------------------------------------------------------

    def receive(self, job_id: str) -> Outcome | None:
        """The outcome waiting on `job_id`'s worker's pipe, if any; the worker is then freed."""
        proc = self.busy[job_id]
        try:
            outcome = proc.connection.recv() if _readable(proc.connection.fileno()) else None
        except (EOFError, OSError):
            outcome = None
        if not isinstance(outcome, Outcome):
            return None
        del self.busy[job_id]
        if outcome.retire or self.mode == "process":
            self.retiring.append(proc)
        else:
            self.idle.append(proc)
        return outcome

    def outcomes(self) -> list[tuple[str, Outcome]]:
        """Every outcome waiting on a busy worker's pipe."""
        found = []
        for job_id in list(self.busy):
            outcome = self.receive(job_id)
            if outcome is not None:
                found.append((job_id, outcome))
        return found

    def deaths(self) -> list[tuple[str, int | Outcome, int]]:
        """Busy workers that exited: (job, exit code, pid), or (job, outcome, pid) if it
        reported first.

        Idle and retiring workers that exited are buried on the way.
        """
        found: list[tuple[str, int | Outcome, int]] = []
        for job_id, proc in list(self.busy.items()):
            if not has_exited(proc.pidfd):
                continue
            outcome = self.receive(job_id)  # sent just before it exited, after we looked
            if outcome is not None:
                found.append((job_id, outcome, proc.pid))
                continue
            del self.busy[job_id]
            found.append((job_id, self.bury(proc), proc.pid))
        for group in (self.idle, self.retiring):
            for proc in [p for p in group if has_exited(p.pidfd)]:
                group.remove(proc)
                self.bury(proc, sweep=group is self.idle)
        return found

    # -- killing -----------------------------------------------------------------------

    def kill(self, job_id: str) -> int | None:
        """Kill `job_id`'s worker tree and bury it: its exit code; None if it had reported."""
        if self.receive(job_id) is not None:  # it had just reported: the worker is free
            return None
        proc = self.busy.pop(job_id)
        descendants.kill_tree(proc.pid, proc.pidfd)
        has_exited(proc.pidfd, REAP_WAIT)
        return self.bury(proc)

    def shutdown(self) -> None:
        """Kill and bury every idle and retiring worker (busy ones are killed per job)."""
        procs = [*self.idle, *self.retiring]
        for proc in procs:
            descendants.kill_tree(proc.pid, proc.pidfd)
        for proc in procs:
            has_exited(proc.pidfd, REAP_WAIT)
            self.bury(proc)
        self.idle.clear()
        self.retiring.clear()

    def bury(self, proc: WorkerProcess, sweep: bool = True) -> int:
        """Make sure the worker is dead, reap it, kill what it left behind; its exit code."""
        if not has_exited(proc.pidfd):
            descendants.kill_tree(proc.pid, proc.pidfd)
            has_exited(proc.pidfd, REAP_WAIT)
        signal_group(proc.pid, -1, signal.SIGKILL)  # whatever is left in its group
        code = close_process(proc.process, proc.pidfd)
        proc.connection.close()
        if self.adopting and self.launcher.start_method == "forkserver":
            descendants.reap_if_child(proc.pid)  # re-parented to us if the forkserver died
        if sweep and self.adopting:
            known = self.launcher.known_pids() | set(self.pids()) | {proc.pid}
            known |= {p.pid for p in self.retiring}
            descendants.kill_and_reap(descendants.orphans_of(proc.pid, proc.start_ticks, known))
        return 255 if code is None else code


def _readable(fd: int) -> bool:
    """`fd` has data or its end is closed (then `recv` raises EOFError). One poll(2):
    `Connection.poll()` builds a selector per call, ten times the cost, once per busy
    worker per loop turn."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))

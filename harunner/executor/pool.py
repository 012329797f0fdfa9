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
    """Idle, working and retiring workers of one executor, and the jobs each was given."""

    def __init__(self, launcher: Launcher, mode: str, concurrency: int, keep_spare: bool,
                 adopting: bool) -> None:
        self.launcher = launcher
        self.mode = mode
        self.concurrency = concurrency
        self.keep_spare = keep_spare
        self.adopting = adopting
        self.busy: dict[str, WorkerProcess] = {}  # every job given to a worker, not reported
        self.working: dict[int, WorkerProcess] = {}  # pid -> a worker with jobs to report
        self.idle: list[WorkerProcess] = []
        self.retiring: list[WorkerProcess] = []
        self.unstarted: list[str] = []  # given to a worker that ended before running them
        self.reported: list[tuple[str, Outcome]] = []  # read early (by `kill`), not returned
        self.discarded: list[tuple[int, str]] = []  # killed running an abandoned job
        self.spare_at: float | None = None
        self.budget = LaunchBudget()  # the executor refills it each turn (`reap`)

    def pids(self) -> list[int]:
        """The pids of every live worker, working or idle."""
        return [p.pid for p in [*self.working.values(), *self.idle]]

    def sentinels(self) -> list[int]:
        """Working workers' pipes (an outcome arrived) and every worker's pidfd (it exited)."""
        fds = [proc.connection.fileno() for proc in self.working.values()]
        procs = [*self.working.values(), *self.idle, *self.retiring]
        return fds + [proc.pidfd for proc in procs if proc.pidfd >= 0]

    def heads(self) -> list[tuple[str, WorkerProcess]]:
        """The job each working worker runs now (the first of its list), unless abandoned."""
        return [(proc.jobs[0][0], proc) for proc in self.working.values()
                if proc.jobs and proc.jobs[0][1] is not None]

    def running(self, job_id: str) -> bool:
        """`job_id` is the job its worker runs now (not one waiting behind it)."""
        proc = self.busy.get(job_id)
        return proc is not None and proc.jobs[0][0] == job_id and proc.jobs[0][1] is not None

    # -- getting a worker --------------------------------------------------------------

    def free_worker(self) -> WorkerProcess | None:
        """An idle live worker, or a new one if there is room; None if all are working."""
        while self.idle:
            proc = self.idle.pop()
            if not has_exited(proc.pidfd):
                return proc
            self.bury(proc)
        if len(self.working) >= self.concurrency:
            return None
        return self._launch()

    def started(self, jobs: list[tuple[str, int]], proc: WorkerProcess, now: float) -> None:
        """`proc` took `jobs` (id, generation), to run in that order."""
        for job_id, _ in jobs:
            self.busy[job_id] = proc
        proc.jobs.extend(jobs)
        self.working[proc.pid] = proc
        if self.mode == "process" and self.spare_at is None:
            self.spare_at = now + SPARE_DELAY

    def fill(self, now: float) -> None:
        """Pool: keep `concurrency` workers alive. Process: one spare, SPARE_DELAY after a start."""
        if self.mode == "pool":
            while len(self.working) + len(self.idle) < self.concurrency:
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
        if len(self.working) >= self.concurrency:
            return None
        return self.spare_at

    def _launch(self) -> WorkerProcess | None:
        try:
            return self.launcher.launch(1 if self.mode == "process" else 0)
        except (OSError, EOFError) as error:
            log.warning("cannot start a worker: %s", error)
            return None

    # -- outcomes and deaths ---------------------------------------------------------------

    def receive(self, proc: WorkerProcess) -> list[tuple[str, Outcome]]:
        """The outcomes waiting on `proc`'s pipe, in its order; a worker that reported all
        its jobs is free again (idle, or retiring), one that retires leaves the rest
        `unstarted`. An abandoned job's outcome is dropped."""
        found: list[tuple[str, Outcome]] = []
        fd = proc.connection.fileno()
        while proc.jobs and _readable(fd):
            try:
                outcome = proc.connection.recv()
            except (EOFError, OSError):
                break
            if not isinstance(outcome, Outcome) or outcome.job_id != proc.jobs[0][0]:
                log.warning("worker %d sent %r out of turn; it is replaced", proc.pid, outcome)
                self._discard(proc)
                return found
            job_id, generation = proc.jobs.popleft()
            if generation is not None:  # else abandoned: dropped
                del self.busy[job_id]
                found.append((job_id, outcome))
            if outcome.retire or self.mode == "process":
                self._leave(proc)
                self.retiring.append(proc)
                return found
        if proc.jobs and proc.jobs[0][1] is None:  # it got to a job given up meanwhile
            self._discard(proc)
        elif not proc.jobs and self.working.pop(proc.pid, None) is not None:
            self.idle.append(proc)
        return found

    def catch_up(self, proc: WorkerProcess) -> None:
        """Read what `proc` reported (returned later by `outcomes`): its list is then current."""
        self.reported += self.receive(proc)

    def _discard(self, proc: WorkerProcess) -> None:
        """Kill a worker that runs (or is about to run) an abandoned job; the live jobs behind
        it are unstarted, and (pid, job) is kept for the executor to adopt its spool."""
        job_id = proc.jobs[0][0]
        self._leave(proc)
        self.bury(proc)  # kills its tree first
        self.discarded.append((proc.pid, job_id))

    def take_discarded(self) -> list[tuple[int, str]]:
        """The (pid, job) of workers killed for running an abandoned job, since the last call."""
        taken, self.discarded = self.discarded, []
        return taken

    def _leave(self, proc: WorkerProcess) -> None:
        """`proc` will run nothing more: what it was given and did not run is unstarted."""
        self.working.pop(proc.pid, None)
        while proc.jobs:
            job_id, generation = proc.jobs.popleft()
            if generation is not None:
                del self.busy[job_id]
                self.unstarted.append(job_id)

    def take_unstarted(self) -> list[str]:
        """Jobs given to a worker that ended before running them, oldest first: to queue again."""
        taken, self.unstarted = self.unstarted, []
        return taken

    def outcomes(self) -> list[tuple[str, Outcome]]:
        """Every outcome waiting on a working worker's pipe."""
        found, self.reported = self.reported, []
        for proc in list(self.working.values()):
            found += self.receive(proc)
        return found

    def deaths(self) -> list[tuple[str, int | Outcome, int]]:
        """Working workers that exited: (job, exit code, pid) for the job each ran, or
        (job, outcome, pid) for what it reported first; the jobs it had not run yet are
        `unstarted`. Idle and retiring workers that exited are buried on the way."""
        found: list[tuple[str, int | Outcome, int]] = []
        for proc in list(self.working.values()):
            if not has_exited(proc.pidfd):
                continue
            found += [(job_id, outcome, proc.pid) for job_id, outcome in self.receive(proc)]
            if proc.pid not in self.working:
                continue  # it reported everything (sent just before it exited, after we looked)
            head, generation = proc.jobs.popleft()
            dead = generation is not None
            if dead:
                del self.busy[head]
            self._leave(proc)
            code = self.bury(proc)
            if dead:
                found.append((head, code, proc.pid))
        for group in (self.idle, self.retiring):
            for proc in [p for p in group if has_exited(p.pidfd)]:
                group.remove(proc)
                self.bury(proc, sweep=group is self.idle)
        return found

    # -- killing -----------------------------------------------------------------------

    def abandon(self, job_id: str) -> None:
        """Forget `job_id`, which waits behind another job in its worker's list: should the
        worker get to it, it is killed (`receive`); an outcome it sent first is dropped."""
        proc = self.busy.pop(job_id)
        for index, (waiting, generation) in enumerate(proc.jobs):
            if waiting == job_id and generation is not None:
                proc.jobs[index] = (job_id, None)

    def kill(self, job_id: str) -> int | None:
        """Kill the tree of the worker running `job_id` and bury it: its exit code; None if
        it had reported (the worker is then free). The jobs behind it are unstarted."""
        proc = self.busy[job_id]
        self.reported += self.receive(proc)  # others' outcomes are returned by `outcomes`
        if job_id not in self.busy:  # it had just reported
            self.reported = [item for item in self.reported if item[0] != job_id]
            return None
        proc.jobs.popleft()
        del self.busy[job_id]
        self._leave(proc)
        descendants.kill_tree(proc.pid, proc.pidfd)
        has_exited(proc.pidfd, REAP_WAIT)
        return self.bury(proc)

    def shutdown(self) -> None:
        """Kill and bury every idle and retiring worker (working ones are killed per job)."""
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

"""The executor: runs the jobs a runner owns on worker processes it can kill.

The runner calls `start(record)` for a job it owns (RUNNING at
`record.generation`), waits on `sentinels()` with the rest of its loop, then
calls `reap(now)` and `check_timeouts(now)`; `kill(job_id)` when it loses
ownership; `shutdown()` when it stops; `room()` to claim no more jobs than it
has free workers and a short queue ahead (`lookahead`). See `worker` for the
worker's side, `attempt` for one attempt, `outcomes` for the rule of faults,
`pool` for the workers, `launcher` for their start, `recorder` for the group commit,
`lists` for the jobs held and the lists handed to workers.

Modes (docs/executor.md): `pool` (long-lived workers) or `process` (one per job).
Queued jobs count in `running()`: a takeover is never refused for want of a worker.

Invariants:
- Outcomes are recorded here, never by workers, in batches: freed workers get
  their next job first, then the attempts that ended go to the recorder's
  thread as one transaction (those that end meanwhile wait for the next); an
  attempt is reported ended only once its commit returned. Fenced means a
  newer owner has the job; a store error keeps the outcome for a later retry.
- A job's crash, timeout, lost ownership or cancel kills only its worker and
  that worker's descendants (workers and this process are child subreapers,
  so nothing escapes through setsid()); the worker is replaced.
- An infrastructure fault (see `outcomes`) records nothing: the attempt is
  re-run from its checkpoint after a short capped wait, attempts unchanged.
- A worker is signalled only through its pidfd. Timeouts use the monotonic
  `now` passed in; retry times the wall clock (`clock`), like `not_before`.
- New workers start within a turn's budget (`pool.LaunchBudget`): a big take-over never
  holds the loop (its beats) for long, even when a start takes tens of ms under load.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from harunner.config import store_config
from harunner.errors import FencedError, HarunnerError, StaleTransitionError, StoreError
from harunner.executor import descendants, outcomes, spool
from harunner.executor.attempt import Assignment, Outcome
from harunner.executor.batches import GroupCommit
from harunner.executor.exits import WorkerExit, label
from harunner.executor.launcher import Launcher, absolute_entry, signal_group
from harunner.executor.lists import HeldJob, held_behind, list_size
from harunner.executor.lookahead import RELEASE_AFTER, Lookahead
from harunner.executor.outcomes import Ended
from harunner.executor.pool import Pool
from harunner.store import JobRecord, JobState
from harunner.store.backends import open_store
from harunner.store.transitions import Claim

WORKER_MODES = ("pool", "process")
RECORD_RETRY = 0.2     # after a store error while recording, retry this much later
RECORD_BUSY = 0.2      # longest wait for SQLite's write lock per commit (then retried)
log = logging.getLogger("harunner.executor")


class Executor:
    """The jobs of one runner on its worker processes (see the module docstring)."""

    def __init__(self, state_dir: Path, job_entries: Sequence[str], lock_timeout: float,
                 start_method: str = "forkserver", grace: float = 1.0, *,
                 concurrency: int = 0, worker_mode: str = "pool", preload_jobs: bool = True,
                 spare: bool = True, adopt_orphans: bool = True, prefetch: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method {start_method!r}: use 'forkserver' or 'spawn'")
        if worker_mode not in WORKER_MODES:
            raise ValueError(f"worker_mode {worker_mode!r}: use 'pool' or 'process'")
        self.state_dir = Path(state_dir).resolve()
        self.grace = grace
        self.worker_mode = worker_mode
        self.concurrency = concurrency if concurrency > 0 else max(1, os.cpu_count() or 1)
        self._keep_spare = spare
        self.lookahead = Lookahead(prefetch)
        self._clock = clock
        self._store = open_store(store_config(self.state_dir), lock_timeout=lock_timeout,
                                 busy_timeout=RECORD_BUSY)
        self._launcher = Launcher(self.state_dir, tuple(map(absolute_entry, job_entries)),
                                  lock_timeout, start_method, preload_jobs=preload_jobs, owner=self)
        self._adopting = adopt_orphans and descendants.start_adopting()
        self._pool = Pool(self._launcher, worker_mode, self.concurrency, spare, self._adopting)
        self._jobs: dict[str, HeldJob] = {}
        self._queue: deque[str] = deque()
        self._waiting: dict[str, float] = {}  # job -> monotonic time to resume (infra fault)
        self._unrecorded: dict[str, Ended] = {}
        self._group = GroupCommit(self._store)
        self._launch_more = False  # the last dispatch stopped for want of that budget
        self._early: list[WorkerExit] = []  # settled outside `reap`, reported by the next
        self._record_retry_at: float | None = None

    def warm_up(self) -> None:
        """Start the forkserver and the workers now (pool: all of them; process: a spare)."""
        self._launcher.warm_up()
        self._pool.spare_at = time.monotonic()
        self._pool.fill(time.monotonic())

    def start(self, record: JobRecord, now: float | None = None, *,
              releasable: bool = False) -> None:
        """Run `record` (RUNNING, owned by this runner) at its generation, now or when a
        worker is free. `releasable`: it was claimed ahead (not taken over), so while it
        waits in the queue it may be given back (`overdue`)."""
        if record.job_id in self._jobs:
            raise HarunnerError(f"job {record.job_id} already has a worker in this runner")
        if record.state is not JobState.RUNNING:
            raise HarunnerError(f"job {record.job_id} is {record.state.value}, not running")
        now = time.monotonic() if now is None else now
        self._jobs[record.job_id] = HeldJob(record, releasable=releasable)
        if releasable:
            self.lookahead.claimed(record.job_id, now)
        self._queue.append(record.job_id)
        self._dispatch(now)

    def running(self) -> dict[str, int]:
        """Job id -> generation of every job not yet settled (running, queued, resuming)."""
        return {job_id: job.record.generation for job_id, job in self._jobs.items()}

    def free_slots(self) -> int:
        """`concurrency` minus the jobs that need a worker (running, queued, resuming)."""
        held = len(self._pool.busy) + len(self._queue) + len(self._waiting)
        return max(0, self.concurrency - held)

    def room(self) -> int:
        """How many jobs to claim: free workers, the queue ahead, less a claim in flight."""
        holding = (len(self._pool.busy) + len(self._queue) + len(self._waiting)
                   + self._group.claiming)
        return self.lookahead.room(self.concurrency, holding, len(self._queue))

    def saturated(self) -> bool:
        """Every worker busy, nothing queued nor being claimed: new work waits for an end."""
        return not self._queue and not self._group.claiming and self.room() <= 0

    def want(self, claim: Claim) -> None:
        """Claim due jobs in the recorder's next transaction (`take_claimed` gets them)."""
        self._group.wanted = claim
        self._early += self._commit(time.monotonic())

    def take_claimed(self) -> list[JobRecord]:
        """The jobs claimed since the last call (RUNNING, owned by this runner): to start."""
        return self._group.take_claimed()

    def has_news(self) -> bool:
        """`reap` has something to report even if no worker and no deadline woke the loop."""
        return bool(self._early) or self._group.has_claimed

    def overdue(self, now: float) -> list[JobRecord]:
        """Claimed-ahead jobs stuck in the queue, or in a worker's list behind a job that
        has run for longer than RELEASE_AFTER: to give back (then `forget` them)."""
        stuck = [job_id for head, behind in held_behind(self._pool.heads(), self._jobs)
                 if now - head >= RELEASE_AFTER for job_id in behind]
        return [self._jobs[job_id].record for job_id in [*self.lookahead.overdue(now), *stuck]]

    def release_due(self) -> float | None:
        """When the next claimed-ahead job (queued, or in a list behind a long one) becomes
        overdue, if there is one."""
        due = [head + RELEASE_AFTER for head, _ in held_behind(self._pool.heads(), self._jobs)]
        queued = self.lookahead.due()
        return min([*due, queued] if queued is not None else due, default=None)

    def forget(self, job_ids: Sequence[str]) -> None:
        """Drop jobs that were given back: queued ones, and ones in a worker's list (its
        worker is killed if it has got to one meanwhile: that attempt is no longer ours)."""
        for job_id in job_ids:
            if job_id in self._queue:
                self._queue.remove(job_id)
                self._jobs.pop(job_id, None)
                self.lookahead.started(job_id)
            elif job_id in self._pool.busy:
                self.kill(job_id)

    @property
    def spare_pid(self) -> int | None:  # an idle worker waiting for a job, if there is one
        return self._pool.idle[-1].pid if self._pool.idle else None

    def worker_pid(self, job_id: str) -> int | None:
        """The pid of the worker running `job_id` now (not one it waits in), if any."""
        return self._pool.busy[job_id].pid if self._pool.running(job_id) else None

    def worker_pids(self) -> list[int]:  # every live worker, busy or idle
        return self._pool.pids()

    def sentinels(self) -> list[int]:
        """File descriptors that become readable when an outcome arrives or a worker exits."""
        fds, recorder = self._pool.sentinels(), self._group.recorder
        return [*fds, recorder.fileno()] if recorder.busy else fds

    def next_deadline(self) -> float | None:
        """The earliest monotonic time at which `check_timeouts` or `reap` has work to do."""
        times = [job.deadline if job.terminated_at is None else job.terminated_at + self.grace
                 for job in (self._jobs[job_id] for job_id, _ in self._pool.heads())
                 if job.deadline is not None]
        times += [t for t in (*self._waiting.values(), self._record_retry_at,
                              self._pool.spare_due(), self._group.lingers_until())
                  if t is not None]
        return 0.0 if self._launch_more else min(times, default=None)  # more to start: now

    def reap(self, now: float) -> list[WorkerExit]:
        """Collect outcomes and deaths, record them in one batch, resume and start jobs."""
        self._pool.budget.refill()
        ended = self._collect_outcomes() + self._collect_deaths()
        self._requeue(now)
        if self._unrecorded and (self._record_retry_at is None or self._record_retry_at <= now):
            ended += [item for item in self._unrecorded.values() if item not in ended]
            self._record_retry_at = None
        self._pool.fill(now)
        self._dispatch(now)  # workers run the next jobs while the outcomes are committed
        exits = self._group_commit(ended, now)
        for job_id, at in list(self._waiting.items()):
            if at <= now:
                del self._waiting[job_id]
                self._queue.append(job_id)
        self._pool.fill(now)
        self._dispatch(now)
        early, self._early = self._early, []
        return early + exits

    def _group_commit(self, ended: list[Ended], now: float) -> list[WorkerExit]:
        """Group commit: attempts that end while a batch is being committed wait, and go
        together in the next batch (at most GROUP_MAX) as soon as the recorder is free."""
        returned = self._group.returned()
        exits = [] if returned is None else self._settled(returned, now)
        self._group.add(ended, now)
        return exits + self._commit(now)

    def _commit(self, now: float) -> list[WorkerExit]:
        """Send what waits (ended attempts, a claim) to the recorder, if it is free."""
        batch = self._group.next_batch(now)
        return [] if batch is None else self._settle(*batch, now=now)

    def check_timeouts(self, now: float) -> list[str]:
        """SIGTERM the worker group of each job past its timeout; SIGKILL the tree after grace."""
        signalled = []
        for job_id, proc in self._pool.heads():
            job = self._jobs[job_id]
            if job.deadline is None or now < job.deadline:
                continue
            if len(proc.jobs) > 1:  # it may have ended and its worker run the next one now
                self._pool.catch_up(proc)
                self._requeue(now)
                if not self._pool.running(job_id):
                    continue
            if job.terminated_at is None:
                job.terminated_at = now
                signal_group(proc.pid, proc.pidfd, signal.SIGTERM)
                signalled.append(job_id)
            elif now >= job.terminated_at + self.grace:
                descendants.kill_tree(proc.pid, proc.pidfd)
        return signalled

    def kill(self, job_id: str) -> WorkerExit | None:
        """Stop `job_id` now: SIGKILL its worker and all its descendants; records nothing."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            return None
        generation = job.record.generation
        self._unrecorded.pop(job_id, None)
        self.lookahead.started(job_id)
        self._group.drop(job_id)
        self._waiting.pop(job_id, None)
        if job_id in self._queue:
            self._queue.remove(job_id)
        proc = self._pool.busy.get(job_id)
        if proc is not None and not self._pool.running(job_id):
            self._pool.catch_up(proc)  # the jobs ahead of it may have ended: it may run now
            self._requeue(time.monotonic())
            proc = self._pool.busy.get(job_id)
        if proc is None:
            return WorkerExit(job_id, generation, None, "killed")
        if not self._pool.running(job_id):  # it waits behind another job of its worker
            self._pool.abandon(job_id)
            return WorkerExit(job_id, generation, None, "killed")
        code = self._pool.kill(job_id)
        self._requeue(time.monotonic())  # the jobs that waited behind it
        spool.adopt(self._store.layout, proc.pid, job_id)  # what the attempt wrote, into its log
        return WorkerExit(job_id, generation, code, "killed")

    def shutdown(self) -> list[WorkerExit]:
        """Record the attempts that ended, then kill every job's worker and every idle
        worker, and reap them."""
        self._group.wanted = None
        while True:  # what ended is recorded before the workers go
            returned = self._group.returned(None)
            if returned is not None:
                self._settled(returned, time.monotonic())
            batch = self._group.next_batch()
            if batch is None:
                break
            self._settle(*batch, now=time.monotonic())
        self._group.recorder.close()
        exits = [exit for exit in map(self.kill, list(self._jobs)) if exit is not None]
        self._pool.shutdown()
        if self._adopting:
            self._adopting = self._pool.adopting = False
            descendants.stop_adopting()
        return exits

    # -- starting and ending attempts --------------------------------------------------

    def _dispatch(self, now: float) -> None:
        """Hand queued jobs to free workers, oldest first, several to a worker when attempts
        are short (`lists.list_size`), starting no more new worker processes than this turn's
        budget (the rest at the next turns)."""
        failures = 0
        self._launch_more = False
        while self._queue and failures <= self.concurrency:
            if not self._pool.idle:  # the next one needs a worker started now
                if not self._pool.budget.take():
                    self._launch_more = len(self._pool.working) < self.concurrency
                    return
            count = 1 if self.worker_mode == "process" else list_size(
                len(self._queue), self.concurrency - len(self._pool.working),
                self.lookahead.attempt_time)
            proc = self._pool.free_worker()
            if proc is None:
                return
            jobs = [(job_id, self._jobs[job_id].record.generation)
                    for job_id in itertools.islice(self._queue, count)]
            message = tuple(itertools.starmap(Assignment, jobs))
            try:
                proc.connection.send(message[0] if count == 1 else message)
            except OSError as error:
                log.warning("worker %d unusable (%s); using another", proc.pid, error)
                self._pool.bury(proc)
                failures += 1
                continue
            for _ in range(count):
                self.lookahead.started(self._queue.popleft())
            self._pool.started(jobs, proc, now)
            self._jobs[jobs[0][0]].began(now)
            for job_id, _ in jobs[1:]:  # not started: no clock (a resumed job had one)
                self._jobs[job_id].waits()

    def _requeue(self, now: float) -> None:
        """Jobs a worker was given and never ran (it ended first) go back to the queue's front;
        the workers that now run the next job of their list start its clocks."""
        for job_id in reversed(self._pool.take_unstarted()):
            job = self._jobs.get(job_id)
            if job is None:  # killed meanwhile
                continue
            job.waits()
            self._queue.appendleft(job_id)
        for job_id, _ in self._pool.heads():
            job = self._jobs.get(job_id)  # (not there: being killed)
            if job is not None and job.started_at is None:
                job.began(now)
        for pid, job_id in self._pool.take_discarded():
            spool.adopt(self._store.layout, pid, job_id)

    def _collect_outcomes(self) -> list[Ended]:
        now = time.monotonic()
        found = []
        for job_id, outcome in self._pool.outcomes():
            job = self._jobs.get(job_id)
            if job is None or job.record.generation != outcome.generation:
                continue  # read early by a kill of the job behind it, then killed itself
            took = outcome.took  # the worker's own measure, else the runner's view
            if took is None and job.started_at is not None:
                took = now - job.started_at
            if took is not None:
                self.lookahead.measured(took)
            found.append(self._ended(job_id, outcome))
        return found

    def _ended(self, job_id: str, outcome: Outcome) -> Ended:
        return Ended(self._jobs[job_id].record, outcome.kind, outcome.result, outcome.error)

    def _collect_deaths(self) -> list[Ended]:
        ended = []
        for job_id, death, pid in self._pool.deaths():
            if isinstance(death, Outcome):
                ended.append(self._ended(job_id, death))
                continue
            spool.adopt(self._store.layout, pid, job_id)  # before log_infra's line
            job = self._jobs[job_id]
            ended.append(outcomes.from_death(job.record, death, job.terminated_at is not None,
                                             job.kills))
            if death == -signal.SIGKILL and job.terminated_at is None:
                job.kills += 1
        return ended

    def _settle(self, ended: list[Ended], claim: Claim | None, now: float
                ) -> list[WorkerExit]:
        """Settle every attempt in `ended`: resume infrastructure faults, drop fenced ones,
        and hand the finishes to the recorder as one batch (`_settled` takes the result)."""
        exits, pending = [], []
        for item in ended:
            self._unrecorded.pop(item.record.job_id, None)
            finish = outcomes.finish_of(item, self._clock())
            if item.kind == "infra":
                exits.append(self._resume(item, now))
            elif finish is None:
                exits.append(self._done(item, "fenced"))
            else:
                pending.append((item, finish))
        self._group.send(pending, claim)
        return exits

    def _settled(self, returned: list[tuple[Ended, JobRecord | StoreError]], now: float
                 ) -> list[WorkerExit]:
        """The batch in flight was committed (or refused): end, or keep for a retry."""
        exits = []
        for item, outcome in returned:
            if not self._current(item):
                continue  # killed while it was being recorded: the kill was reported
            if isinstance(outcome, FencedError | StaleTransitionError):
                exits.append(self._done(item, "fenced"))
            elif isinstance(outcome, StoreError):
                log.warning("could not record the end of job %s (%s); will retry",
                            item.record.job_id, outcome)
                self._unrecorded[item.record.job_id] = item
                self._record_retry_at = now + RECORD_RETRY
            else:
                exits.append(self._done(item, label(item.kind, outcome)))
        return exits

    def _current(self, item: Ended) -> bool:
        """`item` is the attempt this executor still runs for its job (not killed since)."""
        job = self._jobs.get(item.record.job_id)
        return job is not None and job.record.generation == item.record.generation

    def _done(self, item: Ended, outcome: str) -> WorkerExit:
        if self._current(item):
            del self._jobs[item.record.job_id]
        return WorkerExit(item.record.job_id, item.record.generation, item.exitcode, outcome)

    def _resume(self, item: Ended, now: float) -> WorkerExit:
        """Re-run the attempt from its checkpoint after a short wait; record nothing."""
        job = self._jobs[item.record.job_id]
        job.faults += 1
        delay = outcomes.resume_delay(job.faults, item.exitcode == -signal.SIGKILL)
        outcomes.log_infra(self._store.log_path(item.record.job_id), item, delay)
        log.warning("job %s: infrastructure fault (%s); resuming in %gs, not counted",
                    item.record.job_id, item.error, delay)
        job.waits()
        self._waiting[item.record.job_id] = now + delay
        return WorkerExit(item.record.job_id, item.record.generation, item.exitcode, "infra")

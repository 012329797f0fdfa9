"""A runner process: one slot of the cluster.

It heartbeats on the bus from its main loop, votes and proposes in Paxos, owns
jobs and runs each in a worker process (the executor). The runner that owns
the `__scheduler__` record is the primary and assigns pending jobs.

Invariants:
- one live process per slot: the slot lock is held for the whole life;
- beats come from the main loop only, so a stuck runner stops beating;
- Paxos state is persisted before any message of the same step is sent
  (`harunner.consensus.Consensus.apply`);
- a runner that learns it lost a job (a newer generation in the store or on
  the bus) kills its worker for that job at once;
- timeouts use the monotonic clock; the seeded `random.Random` lives here.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from pathlib import Path

import filelock
import zmq

from harunner import bus, cluster
from harunner.config import Config
from harunner.consensus import Consensus
from harunner.detector import Died, FailureDetector
from harunner.errors import (
    ClusterError,
    DurabilityError,
    HarunnerError,
    LockTimeoutError,
    StoreError,
    UnknownJobError,
)
from harunner.events import EventLog
from harunner.executor import Executor
from harunner.failpoints import failpoint
from harunner.paxos import InstanceKey, Value
from harunner.scheduler import Scheduler
from harunner.store import SCHEDULER_JOB, JobRecord, JobState, Owner, Store
from harunner.takeover import Takeover
from harunner.transport import SUPERVISOR, BindGuard, PeerLink, Publisher, Subscriber

log = logging.getLogger("harunner.runner")
EXIT_SLOT_BUSY = 3
RECONCILE_EVERY = 0.1
COMPACT_EVERY = 5.0
LOOP_LOCK_TIMEOUT = 0.02  # the main loop never waits long for a job lock: it retries later


class Runner:
    """The I/O shell around the detector, the Paxos node, the scheduler and the executor."""

    def __init__(self, config: Config, slot: int) -> None:
        self.config = config
        self.slot = slot
        self.layout = cluster.Layout(config.state_path)
        self.slot_lock = filelock.FileLock(str(self.layout.slot_lock(slot)), thread_local=False)
        try:
            self.slot_lock.acquire(timeout=config.stop_timeout_ms / 1000)
        except filelock.Timeout:
            raise ClusterError(f"slot {slot} is held by another live runner") from None
        self.incarnation = cluster.next_incarnation(self.layout, slot)
        self.me = Owner(slot, self.incarnation)
        cluster.write_meta(self.layout.slot_file(slot),
                           {"pid": os.getpid(), "incarnation": self.incarnation})
        self.cluster = cluster.cluster_id(self.layout)
        self.rng = random.Random(os.getpid() ^ time.monotonic_ns())
        self.store = Store(config.state_path, LOOP_LOCK_TIMEOUT)
        self.awaiting: dict[str, int] = {}  # decided for me, not yet taken over: job -> generation
        self.events = EventLog(self.layout.events, f"runner-{slot}")
        self.stopping = False
        self._open_sockets()
        started = time.monotonic()
        self.detector = FailureDetector(config.heartbeat_ms * config.suspect_after / 1000,
                                        config.hang_timeout_ms / 1000)
        self.takeover = Takeover(self.me, config.paxos_timeout_ms / 1000,
                                 config.hang_timeout_ms / 1000, started)
        self.scheduler = Scheduler(self.store, keep_alive=self._keep_beating)
        self.executor = Executor(config.state_path, config.jobs, config.lock_timeout_ms / 1000,
                                 config.start_method, config.worker_grace_ms / 1000)
        self.executor.warm_up()
        self.primary_generation = 0
        self.seq = 0
        self.next_beat = 0.0
        self.next_reconcile = 0.0
        self.next_compact = started + COMPACT_EVERY
        self.last_loop = started

    def _open_sockets(self) -> None:
        slots = tuple(range(self.config.slots))
        endpoints = self.layout.endpoints
        self.context = zmq.Context()
        self.guard = BindGuard()
        self.publisher = Publisher(self.context, self.guard, endpoints.bus(self.slot))
        self.subscriber = Subscriber(
            self.context, [endpoints.bus(s) for s in slots] + [endpoints.bus(SUPERVISOR)])
        self.link = PeerLink(self.context, self.guard, endpoints, self.slot, slots)
        self.consensus = Consensus(self.slot, slots, self.layout.paxos, self.cluster,
                                   self.link.send, self.config.paxos_timeout_ms / 1000)

    # -- the main loop -------------------------------------------------------------------

    def run(self) -> None:
        log.info("runner slot %d incarnation %d up (pid %d)", self.slot, self.incarnation,
                 os.getpid())
        self.events.emit("runner_started", slot=self.slot, incarnation=self.incarnation,
                         pid=os.getpid())
        self.last_loop = time.monotonic()
        while not self.stopping:
            self.step()

    def step(self) -> None:
        """One turn of the loop: beat, wait for input, handle it, run the duties."""
        now = time.monotonic()
        if now - self.last_loop > self.config.hang_timeout_ms / 2000:
            self._after_pause(now)
        self.last_loop = now
        if now >= self.next_beat:
            self._beat(now)
        self._wait(max(0.0, min(self.next_beat - now, 0.01)))
        now = time.monotonic()
        self._read_bus(now)
        for frame in self.link.drain():
            self._learn(self.consensus.receive(frame, now, self.rng))
        self._reap_workers(now)
        for event in self.detector.tick(now):
            self._on_death(event)
        self._learn(self.consensus.tick(now, self.rng))
        if now >= self.next_reconcile:
            self.next_reconcile = now + RECONCILE_EVERY
            self._reconcile(now)
        if now >= self.next_compact:
            self.next_compact = now + COMPACT_EVERY
            self._compact(now)
        if self.primary_generation:
            self.scheduler.tick(now, time.time(), self._live_owners(), self._load(), self.me,
                                self._assigned)

    def _wait(self, timeout: float) -> None:
        poller = zmq.Poller()
        poller.register(self.subscriber.socket, zmq.POLLIN)
        poller.register(self.link.inbound, zmq.POLLIN)
        for fd in self.executor.sentinels():
            poller.register(fd, zmq.POLLIN)
        poller.poll(timeout * 1000)

    def _after_pause(self, now: float) -> None:
        """This process was paused (SIGSTOP, swap): check ownership before anything else."""
        log.warning("runner slot %d was paused for %.0f ms", self.slot,
                    (now - self.last_loop) * 1000)
        self.detector.forgive(now)
        self.takeover.forgive(now)
        self._reconcile(now)

    def _keep_beating(self) -> None:
        """Beat if one is due: called between the items of a long batch of work."""
        now = time.monotonic()
        if now >= self.next_beat:
            self._beat(now)

    def _beat(self, now: float) -> None:
        self.seq += 1
        self.next_beat = now + self.config.heartbeat_ms / 1000
        role = "primary" if self.primary_generation else "standby"
        beat = bus.Beat(self.slot, self.incarnation, os.getpid(), role, self.seq,
                        len(self.executor.running()))
        self.publisher.publish(bus.encode(beat, self.cluster))

    def _read_bus(self, now: float) -> None:
        for frame in self.subscriber.drain():
            try:
                message = bus.decode(frame, self.cluster)
            except bus.BusFrameError:
                continue
            if isinstance(message, bus.Beat) and message.slot != self.slot:
                for event in self.detector.beat(message, now):
                    if isinstance(event, Died):
                        self._on_death(event)
            elif isinstance(message, bus.ExitNotice):
                self.events.emit("exit_notice", slot=message.slot, pid=message.pid)
                for event in self.detector.exit_notice(message.slot, message.pid):
                    self._on_death(event)
            elif isinstance(message, bus.OwnerChange):
                self._on_owner_change(message)
            elif isinstance(message, bus.Poke):
                self.scheduler.poke()

    # -- ownership -----------------------------------------------------------------------

    def _on_death(self, event: Died) -> None:
        log.warning("runner slot %d incarnation %d is dead: %s", event.slot, event.incarnation,
                    event.reason)
        self.events.emit("detected", slot=event.slot, incarnation=event.incarnation,
                         reason=event.reason)
        self._propose_orphans(time.monotonic())

    def _propose_orphans(self, now: float, records: list[JobRecord] | None = None) -> None:
        if records is None:
            records = self._running_records()
        values = self.takeover.proposals(records, self.detector, now)
        if values:
            self.events.emit("propose", count=len(values))
            self._learn(self.consensus.propose(values, now, self.rng))

    def _learn(self, decided: dict[InstanceKey, Value]) -> None:
        now = time.monotonic()
        mine = []
        for key, value in decided.items():
            self.takeover.learned(key, value, now)
            if value == Value(self.slot, self.incarnation):
                self.events.emit("decided", job=key[0], generation=key[1], slot=self.slot)
                self.awaiting[key[0]] = max(key[1], self.awaiting.get(key[0], 0))
                mine.append(key[0])
        for job_id in mine:
            self._keep_beating()
            if job_id in self.awaiting:
                self._take_over(job_id, self.awaiting[job_id])

    def _take_over(self, job_id: str, generation: int) -> None:
        """Raise the job's generation in the store; a busy lock is retried on reconcile."""
        try:
            record = self.store.take_over(job_id, generation, self.me)
        except LockTimeoutError:
            return
        except DurabilityError:
            raise
        except StoreError as error:
            log.info("no takeover of %s at generation %d: %s", job_id, generation, error)
            self.awaiting.pop(job_id, None)
            return
        self.awaiting.pop(job_id, None)
        self.events.emit("took_over", job=job_id, generation=generation, slot=self.slot)
        self._announce(record)
        self._start(record)

    def _announce(self, record: JobRecord) -> None:
        assert record.owner is not None
        change = bus.OwnerChange(record.job_id, record.generation, record.owner.slot,
                                 record.owner.incarnation)
        self.publisher.publish(bus.encode(change, self.cluster))

    def _start(self, record: JobRecord) -> None:
        """Run a job this runner owns (for `__scheduler__`: become primary)."""
        if record.state is not JobState.RUNNING or record.owner != self.me:
            return
        if record.job_id == SCHEDULER_JOB:
            if self.primary_generation != record.generation:
                log.info("slot %d is primary at generation %d", self.slot, record.generation)
                self.scheduler.poke()
            self.primary_generation = record.generation
            return
        if record.job_id in self.executor.running():
            return
        try:
            self.executor.start(record)
        except (HarunnerError, OSError) as error:
            log.warning("cannot start a worker for %s: %s", record.job_id, error)
            return
        self.events.emit("worker_started", job=record.job_id, generation=record.generation,
                         slot=self.slot)

    def _assigned(self, record: JobRecord) -> None:
        self._announce(record)
        if record.owner == self.me:
            self._start(record)

    def _on_owner_change(self, change: bus.OwnerChange) -> None:
        owner = Owner(change.slot, change.incarnation)
        running = self.executor.running()
        if owner == self.me:
            try:
                record = self.store.get(change.job_id)
            except StoreError as error:
                log.warning("cannot start %s: %s", change.job_id, error)
                return
            if record.generation == change.generation:
                self._start(record)
        elif change.job_id in running and running[change.job_id] < change.generation:
            self._lose(change.job_id, change.generation)
        elif change.job_id == SCHEDULER_JOB and change.generation > self.primary_generation:
            self.primary_generation = 0

    def _lose(self, job_id: str, generation: int) -> None:
        log.warning("slot %d lost %s to generation %d: killing its worker", self.slot, job_id,
                    generation)
        self.executor.kill(job_id)
        self.events.emit("lost", job=job_id, generation=generation, slot=self.slot)

    def _reconcile(self, now: float) -> None:
        """Make the executor match the store; take the scheduler duty if nobody holds it."""
        for job_id, generation in list(self.executor.running().items()):
            try:
                record = self.store.get(job_id)
            except StoreError:
                continue
            if record.generation != generation or record.owner != self.me:
                self._lose(job_id, record.generation)
        for job_id, generation in list(self.awaiting.items()):
            self._keep_beating()
            self._take_over(job_id, generation)
        records = self._running_records()
        mine = [record for record in records if record.owner == self.me]
        if not any(record.job_id == SCHEDULER_JOB for record in mine):
            self.primary_generation = 0
        for record in mine:
            self._keep_beating()
            self._start(record)
        self._claim_scheduler(now)
        self._propose_orphans(now, records)

    def _compact(self, now: float) -> None:
        """Drop Paxos votes that can never matter again: below a job's current generation."""
        for job_id in self.consensus.instances():
            try:
                record = self.store.get(job_id)
            except UnknownJobError:  # the job was removed: none of its instances matters
                below = 1 + max(g for j, g in self.consensus.node.acceptor_state.votes
                                if j == job_id)
                self.consensus.compact(job_id, below, now, self.rng)
                continue
            except StoreError:
                continue
            below = record.generation + 1 if record.state.finished else record.generation
            self.consensus.compact(job_id, below, now, self.rng)

    def _running_records(self) -> list[JobRecord]:
        try:
            return self.store.list_jobs({JobState.RUNNING})
        except StoreError as error:
            log.warning("cannot list jobs: %s", error)
            return []

    def _claim_scheduler(self, now: float) -> None:
        """The first runner up takes the scheduler duty of a new cluster by compare-and-set."""
        try:
            try:
                record = self.store.get(SCHEDULER_JOB)
            except UnknownJobError:
                record = self.store.submit(SCHEDULER_JOB, {}, job_id=SCHEDULER_JOB)
        except StoreError:
            return
        lowest = min([self.slot] + self.detector.live_slots())
        waited = now - self.takeover.started > self.config.hang_timeout_ms / 1000
        if record.state is JobState.PENDING and (lowest == self.slot or waited):
            try:
                self._assigned(self.store.assign(SCHEDULER_JOB, self.me, record.generation))
            except DurabilityError:
                raise
            except StoreError as error:
                log.info("scheduler duty not claimed: %s", error)

    def _reap_workers(self, now: float) -> None:
        self.executor.check_timeouts(now)
        ended = self.executor.reap(now)
        for exit_ in ended:
            self.events.emit("worker_exit", job=exit_.job_id, generation=exit_.generation,
                             outcome=exit_.outcome, code=exit_.exitcode)
        if ended:
            self.publisher.publish(bus.encode(bus.Poke("attempt ended"), self.cluster))
            self.scheduler.poke()

    def _live_owners(self) -> list[Owner]:
        others = [Owner(s, self.detector.peers[s].incarnation)
                  for s in self.detector.live_slots() if s != self.slot]
        return [self.me] + others

    def _load(self) -> dict[int, int]:
        load = {s: v.owned for s, v in self.detector.peers.items()}
        load[self.slot] = len(self.executor.running())
        return load

    def close(self) -> None:
        self.executor.shutdown()
        self.publisher.close()
        self.subscriber.close()
        self.link.close()
        self.guard.release()
        self.context.term()
        self.events.close()
        self.slot_lock.release()


def _request_stop(runner: Runner) -> None:
    def handler(signum: int, frame: object) -> None:
        runner.stopping = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def configure_logging(config: Config, name: str) -> None:
    layout = cluster.Layout(config.state_path)
    layout.logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(Path(layout.logs) / f"{name}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s "
                                           "%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())


def runner_main(config: Config, slot: int) -> None:
    """Process target of a runner slot (top level, picklable arguments)."""
    os.setsid()  # a runner must not die with the supervisor or its terminal
    configure_logging(config, f"runner-{slot}")
    try:
        runner = Runner(config, slot)
    except ClusterError as error:
        log.error("%s", error)
        os._exit(EXIT_SLOT_BUSY)
    _request_stop(runner)
    failpoint("runner.started")
    try:
        runner.run()
    except Exception:
        log.exception("runner slot %d crashed", slot)
        raise
    finally:
        runner.close()

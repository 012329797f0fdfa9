"""A runner process: one slot of the cluster, the I/O shell around its ownership core.

It heartbeats on the bus from its main loop, votes and proposes in Paxos, owns
jobs and runs them on its executor's workers. The pure `ownership.OwnershipCore`
decides what it owns: this shell feeds it beats, notices, records (`feed`),
decisions and `now`, and carries out the `actions` it returns. Each runner
claims due jobs for its own workers (`scheduler`); the owner of `__scheduler__`
is the primary.

Invariants: one live process per slot (the slot lock is held for life); beats
come from the main loop only, so a stuck runner stops beating; Paxos state is
persisted before any message of the same step is sent (`Consensus.apply`);
every input to the core carries a fresh `now`, so a pause of this process
anywhere in the loop is seen before a peer's silence is judged; timeouts use
the monotonic clock; the seeded `random.Random` lives here (config `seed`).
"""

from __future__ import annotations

import logging
import os
import time

import zmq

from harunner.config import Config
from harunner.errors import FrameError, HarunnerError, StoreError
from harunner.executor.executor import Executor
from harunner.net import bus
from harunner.net.sockets import BindGuard, PeerLink, Publisher, Subscriber
from harunner.paxos import InstanceKey, Value
from harunner.runner import actions as act
from harunner.runner import reports
from harunner.runner.compaction import compact
from harunner.runner.consensus import Consensus
from harunner.runner.cron import CronDuty
from harunner.runner.feed import Feed
from harunner.runner.ownership import OwnershipCore, Timing
from harunner.runner.peers import PeerWatch
from harunner.runner.scheduler import Scheduler
from harunner.runner.slot import make_rng, take_slot
from harunner.store import JobRecord, Owner, meta
from harunner.store.backends import open_store
from harunner.store.events import EventLog
from harunner.store.layout import SUPERVISOR, Layout
from harunner.store.wakeup import WakeSocket, pass_on, wake

log = logging.getLogger("harunner.runner")
STORE_BUSY = 0.2      # the most the loop waits for SQLite's write lock (then it retries)
TAKEOVER_RETRY = 0.01  # a take-over whose job lock was busy is tried again this much later
COMPACT_EVERY = 5.0
LOOP_LOCK_TIMEOUT = 0.02  # the main loop never waits long for a job lock: it retries later


class Runner:
    """The I/O shell around the ownership core, the Paxos node, the scheduler and the executor."""
    _take_slot = staticmethod(take_slot)  # etcd mode: `host_runner` takes its incarnation

    def __init__(self, config: Config, slot: int) -> None:
        self.config = config
        self.slot = slot
        self.layout = Layout(config.state_path)
        self.slot_lock, self.incarnation = self._take_slot(self.layout, slot,
                                                           config.stop_timeout_ms / 1000)
        self.me = Owner(slot, self.incarnation)
        self.cluster = meta.cluster_id(self.layout)
        self.rng = make_rng(config.seed, slot, self.incarnation)
        self.store = open_store(config, lock_timeout=LOOP_LOCK_TIMEOUT, busy_timeout=STORE_BUSY)
        self.events = EventLog(self.layout.events, f"runner-{slot}", buffered=True)
        self.stopping = False
        self._open_sockets()
        self.executor = Executor(config.state_path, config.jobs, config.lock_timeout_ms / 1000,
                                 config.start_method, config.worker_grace_ms / 1000,
                                 concurrency=config.concurrency,
                                 worker_mode=config.worker_mode, prefetch=config.prefetch)
        self.executor.warm_up()
        self.scheduler = Scheduler(self.store, self.me)
        self.cron = CronDuty(self.store, config.jobs, time.time(), self.scheduler.poke)
        started = time.monotonic()  # after the warm-up: its time is no pause of the loop
        timing = Timing(config.heartbeat_ms * config.suspect_after / 1000,
                        config.hang_timeout_ms / 1000, config.paxos_timeout_ms / 1000)
        self.core = OwnershipCore(self.me, timing, started)
        self.primary_generation, self.seq, self.next_beat = 0, 0, 0.0
        self.feed = Feed(self.store)
        self.next_compact = started + COMPACT_EVERY
        self.rescan = True  # the first turn reads every RUNNING record
        self.retry_at: float | None = None  # busy take-overs are tried again then
        self.peers = PeerWatch()
        self.claimed: set[str] = set()  # the jobs of the claim being started (may be given back)

    def _open_sockets(self) -> None:
        slots = tuple(range(self.config.slots))
        layout = self.layout
        self.context = zmq.Context()
        self.guard = BindGuard()
        self.publisher = Publisher(self.context, self.guard, layout.bus(self.slot))
        self.subscriber = Subscriber(
            self.context, [layout.bus(s) for s in slots] + [layout.bus(SUPERVISOR)],
            bus.topics(bus.Beat, bus.ExitNotice, bus.OwnerChange, bus.Poke))
        self.link = PeerLink(self.context, self.guard, self.slot,
                             {s: layout.peer(s) for s in slots})
        self.consensus = Consensus(self.slot, slots, self.layout, self.cluster,
                                   self.link.send, self.config.paxos_timeout_ms / 1000)
        self.doorbell = WakeSocket(layout.wake(self.slot))  # bound under the slot lock

    # -- the main loop -------------------------------------------------------------------

    def run(self) -> None:
        log.info("runner slot %d incarnation %d up (pid %d)", self.slot, self.incarnation,
                 os.getpid())
        self.events.emit("runner_started", slot=self.slot, incarnation=self.incarnation,
                         pid=os.getpid())
        while not self.stopping:
            self.step()

    def step(self) -> None:
        """One turn of the loop: beat, wait for input, feed it to the core, run the duties."""
        now = time.monotonic()
        self._feed(self.core.tick(now))
        if now >= self.next_beat:
            self._beat(now)
        workers = set(self.executor.sentinels())
        ready = self._wait(self._timeout(now), workers)
        now = time.monotonic()  # fresh after the wait: a pause in it is seen by the core
        if self.peers.due(ready):
            self._check_peer_exits()
        self._read_bus()
        self._feed(self.core.listened(time.monotonic()))
        if self.link.inbound in ready:
            for frame in self.link.drain():
                self._decided(self.consensus.receive(frame, time.monotonic(), self.rng))
        if self.doorbell.fileno() in ready and self.doorbell.drain(now):
            self.feed.ring()
            self.scheduler.rung(self.doorbell.hops)
        deadline = self.executor.next_deadline()
        if (ready & workers or self.executor.has_news()
                or (deadline is not None and now >= deadline)):
            self._reap_workers(now)
        self._give_back(time.monotonic())
        self._keep_beating()
        now = time.monotonic()
        self._feed(self.core.tick(now))
        self._decided(self.consensus.tick(now, self.rng))
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            self._take_over_many([act.TakeOver(job, generation)
                                  for job, generation in self.core.awaiting.items()])
        if self.rescan:
            self.rescan = False
            self._reconcile()
        elif self.feed.due(now):
            records = self.feed.look(now)
            if records:
                self._feed(self.core.observe(records, time.monotonic()))
        if now >= self.next_compact:
            self.next_compact = now + COMPACT_EVERY
            compact(self.consensus, self.store, now, self.rng)
        self.cron.tick(now, time.time(), self.primary_generation > 0)  # fire periodic jobs
        self._claim(now)
        self.events.flush()  # the turn's events in one write

    def _timeout(self, now: float) -> float:
        """How long the loop may wait: until the next beat or deadline. The periodic looks
        ride on a beat's turn; a look due now (rung, poked, finding work) waits for nothing."""
        if self.feed.next_look <= now or (self.executor.room()
                                          and self.scheduler.due_in(now) <= 0):
            return 0.0
        due = [self.next_beat]
        for deadline in (self.executor.next_deadline(), self.retry_at, self.cron.deadline,
                         self.executor.release_due(), self.doorbell.deadline(now)):
            if deadline is not None:
                due.append(deadline)
        return max(0.0, min(due) - now)

    def _claim(self, now: float) -> None:
        """Ask for due jobs for this runner's workers and the queue ahead of them."""
        if (claim := self.scheduler.request(now, time.time(), self.executor.room())) is not None:
            self.executor.want(claim)  # sent with the executor's next commit
        pass_on(self.layout, self.slot, self.config.slots,
                self.scheduler.to_pass(self.executor.saturated()))

    def _start_claimed(self, now: float) -> None:
        """Start the jobs a claim won (they may be given back while they wait)."""
        claimed = self.executor.take_claimed()
        if not claimed:
            return
        pass_on(self.layout, self.slot, self.config.slots, self.scheduler.won(now, claimed))
        self.claimed = {record.job_id for record in claimed}
        try:
            self._feed(self.core.observe(claimed, time.monotonic()))
        finally:
            self.claimed = set()

    def _give_back(self, now: float) -> None:
        """Claimed jobs stuck in the queue behind longer ones go back to PENDING, where a
        runner with a free worker takes them (the claim is not counted as an attempt)."""
        overdue = self.executor.overdue(now)
        if not overdue:
            return
        try:
            released = self.scheduler.give_back(overdue)
        except StoreError as error:
            log.info("queued jobs not given back this turn: %s", error)
            return
        self.executor.forget([record.job_id for record in released])
        for record in released:
            self.core.worker_ended(record.job_id, record.generation)
        if released:
            self.events.emit("gave_back", count=len(released), slot=self.slot)
            self._feed(self.core.observe(released, time.monotonic()))
            wake(self.layout.wake(s) for s in range(self.config.slots) if s != self.slot)

    def _wait(self, timeout: float, workers: set[int]) -> set[object]:
        """Sleep until Paxos traffic, the doorbell, a worker or a peer's exit, or `timeout`
        (not the bus: read every turn); what is ready, level-triggered."""
        poller = zmq.Poller()
        poller.register(self.link.inbound, zmq.POLLIN)
        for fd in [*workers, *self.peers.fds(), *self.doorbell.fds(time.monotonic())]:
            poller.register(fd, zmq.POLLIN)
        wait = int(timeout * 1000) + 1 if timeout > 0 else 0  # rounded up: never early
        return {source for source, _ in poller.poll(wait)}

    def _check_peer_exits(self) -> None:
        for slot, pid in self.peers.exited():
            self.events.emit("peer_exit", slot=slot, pid=pid)
            self._feed(self.core.exit_notice(slot, pid, time.monotonic()))

    def _keep_beating(self) -> None:
        """Beat if one is due: called between the items of a long batch of work."""
        if (now := time.monotonic()) >= self.next_beat:
            self._beat(now)

    def _beat(self, now: float) -> None:
        self.seq += 1
        self.next_beat = now + self.config.heartbeat_ms / 1000
        role = "primary" if self.primary_generation else "standby"
        beat = bus.Beat(self.slot, self.incarnation, os.getpid(), role, self.seq,
                        len(self.executor.running()))
        self.publisher.publish(bus.encode(beat, self.cluster))

    def _read_bus(self) -> None:
        for frame in self.subscriber.drain():
            try:
                message = bus.decode(frame, self.cluster)
            except FrameError:
                continue
            now = time.monotonic()
            if isinstance(message, bus.Beat) and message.slot != self.slot:
                self.peers.watch(message.slot, message.pid)
                self._feed(self.core.heard(message, now))
            elif isinstance(message, bus.ExitNotice):
                self.events.emit("exit_notice", slot=message.slot, pid=message.pid)
                self._feed(self.core.exit_notice(message.slot, message.pid, now))
            elif isinstance(message, bus.OwnerChange):
                self._feed(self.core.owner_changed(message, now))
            elif isinstance(message, bus.Poke):
                self.feed.ring()
                self.scheduler.poke()

    # -- carrying out the core's actions ---------------------------------------------------

    def _feed(self, actions: list[act.Action]) -> None:
        """Carry out the core's actions; its take-overs together, in one transaction."""
        takeovers = []
        for action in actions:
            if isinstance(action, act.TakeOver):
                takeovers.append(action)
            else:
                self._carry(action)
        if takeovers:
            self._take_over_many(takeovers)

    def _carry(self, action: act.Action) -> None:
        match action:
            case act.Propose(values):
                self.events.emit("propose", count=len(values))
                self._decided(self.consensus.propose(values, time.monotonic(), self.rng))
            case act.Start(record):
                self._keep_beating()
                self._start(record)
            case act.Kill(job_id, generation):
                self._lose(job_id, generation)
            case act.Announce(record):
                self._announce(record)
            case act.Read(job_id):
                self._read(job_id)
            case act.BecomePrimary(generation):
                log.info("slot %d is primary at generation %d", self.slot, generation)
                self.primary_generation = generation
                self.scheduler.poke()
            case act.LosePrimary():
                self.primary_generation = 0
            case act.ClaimScheduler():
                self._claim_scheduler()
            case act.Detected(slot, incarnation, reason):
                reports.detected(self.events, slot, incarnation, reason)
                self.peers.detected(slot, incarnation, reason, time.monotonic())
                self.rescan = True  # jobs it claimed since this runner's last look at the feed
            case act.Paused(seconds):
                reports.paused(self.events, self.slot, seconds)
                self.rescan = True

    def _decided(self, decisions: dict[InstanceKey, Value]) -> None:
        if decisions:
            for (job_id, generation), value in decisions.items():
                if value == self.core.value:
                    self.events.emit("decided", job=job_id, generation=generation,
                                     slot=self.slot)
            self._feed(self.core.decided(decisions, time.monotonic()))

    def _take_over_many(self, takeovers: list[act.TakeOver]) -> None:
        """Raise the generations of decided jobs in one transaction; busy locks are retried."""
        self._keep_beating()
        applied, busy, gone = self.scheduler.take_over([(t.job_id, t.generation)
                                                        for t in takeovers])
        for job_id, generation in busy:
            self.core.take_over_failed(job_id, generation, busy=True)
        if busy:
            self.retry_at = time.monotonic() + TAKEOVER_RETRY
        for job_id, generation in gone:
            log.info("no takeover of %s@%d: it no longer applies", job_id, generation)
            self.core.take_over_failed(job_id, generation, busy=False)
        now = time.monotonic()
        for record in applied:
            self.events.emit("took_over", job=record.job_id, generation=record.generation,
                             slot=self.slot)
            self.peers.took_over(self.core.records.get(record.job_id), record, now)
            self._feed(self.core.took_over(record, now))

    def _start(self, record: JobRecord) -> None:
        if record.job_id in self.executor.running():
            return
        try:
            self.executor.start(record, releasable=record.job_id in self.claimed)
        except (HarunnerError, OSError) as error:
            log.warning("cannot start a worker for %s: %s", record.job_id, error)
            self.core.worker_ended(record.job_id, record.generation)
            return
        self.events.emit("worker_started", job=record.job_id, generation=record.generation,
                         slot=self.slot)

    def _lose(self, job_id: str, generation: int) -> None:
        log.warning("slot %d lost %s to generation %d: killing its worker", self.slot, job_id,
                    generation)
        self.executor.kill(job_id)
        self.events.emit("lost", job=job_id, generation=generation, slot=self.slot)

    def _announce(self, record: JobRecord) -> None:
        owner = record.owner
        assert owner is not None
        change = bus.OwnerChange(record.job_id, record.generation, owner.slot, owner.incarnation)
        self.publisher.publish(bus.encode(change, self.cluster))

    def _read(self, job_id: str) -> None:
        try:
            record = self.store.get(job_id)
        except StoreError as error:
            log.warning("cannot read %s: %s", job_id, error)
            return
        self._feed(self.core.observe([record], time.monotonic()))

    def _reconcile(self) -> None:
        """A full pass: every RUNNING record, and the records of this runner's workers."""
        records = self.feed.full(self.executor.running())
        if records is not None:
            self._feed(self.core.reconcile(records, time.monotonic(), self.executor.running()))

    def _claim_scheduler(self) -> None:
        """The first runner up takes the scheduler duty of a new cluster by compare-and-set."""
        try:
            claimed = self.scheduler.claim_duty()
        except StoreError as error:
            log.info("scheduler duty not claimed: %s", error)
            return
        if claimed is not None:
            self._announce(claimed)
            self._feed(self.core.observe([claimed], time.monotonic()))

    def _reap_workers(self, now: float) -> None:  # and start what a claim won
        self.executor.check_timeouts(now)
        ended = self.executor.reap(now)
        for exit_ in ended:
            self.core.worker_ended(exit_.job_id, exit_.generation)
            self.events.emit("worker_exit", job=exit_.job_id, generation=exit_.generation,
                             outcome=exit_.outcome, code=exit_.exitcode)
        if ended:
            self.scheduler.attempt_ended()  # room for more: claim at once if more is due
        self._start_claimed(now)

    def close(self) -> None:
        self.peers.close()
        self.doorbell.close()
        self.executor.shutdown()
        self.publisher.close()
        self.subscriber.close()
        self.link.close()
        self.guard.release()
        self.context.term()
        self.events.close()
        self.slot_lock.release()

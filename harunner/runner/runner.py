"""A runner process: one slot of the meta.

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
import select
import signal
import time

import filelock
import zmq

from harunner.config import Config
from harunner.errors import (
    ClusterError,
)
from harunner.executor.executor import Executor
from harunner.failpoints import failpoint
from harunner.net import bus
from harunner.net.sockets import BindGuard, PeerLink, Publisher, Subscriber
from harunner.runner.consensus import Consensus
from harunner.runner.detector import Died, FailureDetector
from harunner.runner.ownership import OwnershipDuties
from harunner.runner.scheduler import Scheduler
from harunner.runner.takeover import Takeover
from harunner.store import Owner, Store, meta
from harunner.store.events import EventLog
from harunner.store.layout import SUPERVISOR, Layout

log = logging.getLogger("harunner.runner")
EXIT_SLOT_BUSY = 3
RECONCILE_EVERY = 0.1
COMPACT_EVERY = 5.0
LOOP_LOCK_TIMEOUT = 0.02  # the main loop never waits long for a job lock: it retries later


class Runner(OwnershipDuties):
    """The I/O shell around the detector, the Paxos node, the scheduler and the executor."""

    def __init__(self, config: Config, slot: int) -> None:
        self.config = config
        self.slot = slot
        self.layout = Layout(config.state_path)
        self.slot_lock = filelock.FileLock(str(self.layout.slot_lock(slot)), thread_local=False)
        try:
            self.slot_lock.acquire(timeout=config.stop_timeout_ms / 1000)
        except filelock.Timeout:
            raise ClusterError(f"slot {slot} is held by another live runner") from None
        self.incarnation = meta.next_incarnation(self.layout, slot)
        self.me = Owner(slot, self.incarnation)
        meta.write_meta(self.layout.slot_file(slot),
                           {"pid": os.getpid(), "incarnation": self.incarnation})
        self.cluster = meta.cluster_id(self.layout)
        self.rng = random.Random(os.getpid() ^ time.monotonic_ns())
        self.store = Store.from_config(config, LOOP_LOCK_TIMEOUT)
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
        self.peer_pidfds: dict[tuple[int, int], int] = {}  # (slot, pid) -> pidfd

    def _open_sockets(self) -> None:
        slots = tuple(range(self.config.slots))
        layout = self.layout
        self.context = zmq.Context()
        self.guard = BindGuard()
        self.publisher = Publisher(self.context, self.guard, layout.bus(self.slot))
        self.subscriber = Subscriber(
            self.context, [layout.bus(s) for s in slots] + [layout.bus(SUPERVISOR)])
        self.link = PeerLink(self.context, self.guard, self.slot,
                             {s: layout.peer(s) for s in slots})
        self.consensus = Consensus(self.slot, slots, self.layout, self.cluster,
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
        self._check_peer_exits()
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
        for fd in self.executor.sentinels() + list(self.peer_pidfds.values()):
            poller.register(fd, zmq.POLLIN)
        poller.poll(int(timeout * 1000))

    def _watch_peer(self, beat: bus.Beat) -> None:
        """Hold a pidfd on each peer runner: its death wakes this loop with no middleman."""
        key = (beat.slot, beat.pid)
        if key in self.peer_pidfds:
            return
        for old in [k for k in self.peer_pidfds if k[0] == beat.slot]:
            os.close(self.peer_pidfds.pop(old))
        try:
            self.peer_pidfds[key] = os.pidfd_open(beat.pid)
        except OSError:  # already gone (the exit is seen below), or not ours to watch
            pass

    def _check_peer_exits(self) -> None:
        if not self.peer_pidfds:
            return
        readable = set(select.select(list(self.peer_pidfds.values()), [], [], 0)[0])
        for (slot, pid), fd in list(self.peer_pidfds.items()):
            if fd in readable:
                os.close(self.peer_pidfds.pop((slot, pid)))
                self.events.emit("peer_exit", slot=slot, pid=pid)
                for event in self.detector.exit_notice(slot, pid):
                    self._on_death(event)

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
                self._watch_peer(message)
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
        for fd in self.peer_pidfds.values():
            os.close(fd)
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
    layout = Layout(config.state_path)
    layout.logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(layout.log_file(name))
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

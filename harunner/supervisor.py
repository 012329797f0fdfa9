"""The supervisor: starts the runner slots, respawns dead ones, reports exits at once.

It holds no job state. It learns of a runner's death from the OS (a pidfd of
the runner process) and publishes an `ExitNotice` on the bus at once, so that
no timeout is needed for a crash.

Invariants:
- one supervisor per state directory (run/supervisor.lock, held for life);
- runners are started with the `spawn` method, as direct children, and
  watched through pidfds: what the supervisor reports as an exit is an exit
  (the death of a forkserver in between cannot fake one);
- a slot is respawned only after its old process is gone (reaped, or its
  pidfd readable), after a back-off that doubles on quick crashes; a slot
  whose runner is alive is adopted, never spawned twice;
- a runner silent for `HUNG_KILL_FACTOR` hang timeouts (SIGSTOP, deadlock)
  is SIGKILLed so that its slot can be respawned: its jobs were already taken
  over after one hang timeout, this only returns the slot to service;
- signals to adopted runners go through their pidfd (immune to pid reuse);
- runners do not die with the supervisor (they call setsid); a new supervisor
  adopts live runners and starts only the missing slots;
- signal handlers only set a flag;
- with `metrics_port` set, it serves the Prometheus endpoint from a thread
  (`harunner.metrics.serve`): the runners' counters from their files, and
  levels computed at scrape time (runners up, role, incarnation from the
  beats it hears; jobs by state from the store's indexed counts).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

import filelock
import zmq

from harunner import metrics
from harunner.config import Config
from harunner.errors import ClusterError
from harunner.net import bus
from harunner.net.sockets import BindGuard, Publisher, Subscriber, check_ipc_paths
from harunner.pidfds import GONE, close, has_exited, open_pidfd, readable, send_signal
from harunner.runner.hosts import EXIT_FENCED
from harunner.runner.process import EXIT_SLOT_BUSY, configure_logging, runner_main
from harunner.store import Store, meta
from harunner.store.counts import JobCounts
from harunner.store.events import EventLog
from harunner.store.layout import SUPERVISOR, Layout

WAKE_SLACK = 0.002  # a deadline this close counts as reached
log = logging.getLogger("harunner.supervisor")
QUICK_CRASH = 10.0
HUNG_KILL_FACTOR = 4
FIRST_BEAT_GRACE = 30.0


@dataclass
class Slot:
    number: int
    pid: int | None = None
    process: BaseProcess | None = None
    pidfd: int | None = None
    started: float = 0.0
    last_beat: float | None = None
    respawn_at: float = 0.0
    backoff: float = 0.0
    incarnation: int = 0
    role: str = ""


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.layout = Layout(config.state_path)
        meta.prepare(self.layout)
        check_ipc_paths(self.layout.sockets(range(config.slots)))
        self.lock = filelock.FileLock(str(self.layout.supervisor_lock), mode=0o600,
                                      thread_local=False)
        try:
            self.lock.acquire(timeout=0)
        except filelock.Timeout:
            pid = meta.live_supervisor(self.layout)
            raise ClusterError(
                f"state directory {self.layout.root} is in use by a running supervisor "
                f"(pid {pid}); run `harunner stop` first, or set another state_dir") from None
        meta.write_meta(self.layout.supervisor_file, {"pid": os.getpid()})
        self.cluster = meta.cluster_id(self.layout, create=True)
        repaired = Store.from_config(config).rebuild_index() if config.backend == "local" else 0
        if repaired:
            log.warning("repaired %d entries of the index of unfinished jobs", repaired)
        self.spawner = multiprocessing.get_context("spawn")
        self.slots = [Slot(n) for n in range(config.slots)]
        self.stopping = False
        self.events = EventLog(self.layout.events, "supervisor")
        self.seq = 0
        self.hung_after = HUNG_KILL_FACTOR * config.hang_timeout_ms / 1000

    def run(self) -> None:
        """Start or adopt every slot, then watch them until asked to stop."""
        self.zmq = zmq.Context()
        self.guard = BindGuard()
        self.publisher = Publisher(self.zmq, self.guard, self.layout.bus(SUPERVISOR))
        self.beats = Subscriber(self.zmq, [self.layout.bus(s.number) for s in self.slots],
                                bus.topics(bus.Beat))
        stop_metrics = None
        try:
            stop_metrics = self._start_metrics()
            for slot in self.slots:
                self._adopt_or_spawn(slot, time.monotonic())
            self._loop()
            self._stop_all()
        finally:
            if stop_metrics is not None:
                stop_metrics()
            self.publisher.close()
            self.beats.close()
            self.guard.release()
            self.zmq.term()
            self.lock.release()

    def _loop(self) -> None:
        next_beat = 0.0
        while not self.stopping:
            now = time.monotonic()
            if now >= next_beat - WAKE_SLACK:  # a wait may end a little early: no extra turn
                next_beat = now + self.config.heartbeat_ms / 1000
                self._beat()
                self._read_beats(now)
                self._kill_hung(now)
            self._wait(max(0.0, min(next_beat - now, self._next_respawn(now) - now)))
            now = time.monotonic()
            self._check_exits(now)
            self._respawn_due(now)

    def _beat(self) -> None:
        self.seq += 1
        frame = bus.encode(bus.SupervisorBeat(os.getpid(), self.seq), self.cluster)
        self.publisher.publish(frame)

    def _read_beats(self, now: float) -> None:
        by_pid = {s.pid: s for s in self.slots if s.pid is not None}
        for frame in self.beats.drain():
            try:
                message = bus.decode(frame, self.cluster)
            except bus.BusFrameError:
                continue
            if isinstance(message, bus.Beat) and message.pid in by_pid:
                slot = by_pid[message.pid]
                slot.last_beat, slot.incarnation, slot.role = now, message.incarnation, message.role

    def _kill_hung(self, now: float) -> None:
        """SIGKILL a runner that stopped beating long ago, so that its slot comes back."""
        for slot in self.slots:
            if slot.pidfd is None:
                continue
            silent_since = slot.last_beat if slot.last_beat is not None else slot.started
            limit = self.hung_after if slot.last_beat is not None else FIRST_BEAT_GRACE
            if now - silent_since > limit:
                log.error("runner slot %d (pid %s) silent for %.1f s: killing it", slot.number,
                          slot.pid, now - silent_since)
                self.events.emit("killed_hung", slot=slot.number, pid=slot.pid)
                _signal(slot, signal.SIGKILL)
                slot.last_beat = now  # one kill; its exit comes through the pidfd

    def _adopt_or_spawn(self, slot: Slot, now: float) -> None:
        info = meta.live_slot(self.layout, slot.number)
        if info is not None and info.get("pid"):
            pidfd = open_pidfd(int(info["pid"]))
            if pidfd != GONE:
                slot.pidfd = pidfd
                slot.pid, slot.process, slot.started = int(info["pid"]), None, now
                slot.last_beat = None
                log.info("adopted runner slot %d (pid %d)", slot.number, slot.pid)
                self.events.emit("adopted", slot=slot.number, pid=slot.pid)
                return
        process = self.spawner.Process(target=runner_main, args=(self.config, slot.number),
                                       name=f"harunner-runner-{slot.number}")
        process.start()
        assert process.pid is not None
        slot.process, slot.pid, slot.started, slot.last_beat = process, process.pid, now, None
        slot.pidfd = open_pidfd(process.pid)  # GONE if it died at once: seen as an exit
        log.info("started runner slot %d (pid %s)", slot.number, process.pid)
        self.events.emit("spawned", slot=slot.number, pid=process.pid)

    def _wait(self, timeout: float) -> None:
        fds = [s.pidfd for s in self.slots if s.pidfd is not None]
        if fds:
            readable(fds, timeout)
        else:
            time.sleep(timeout)

    def _check_exits(self, now: float) -> None:
        for slot in self.slots:
            if slot.pidfd is not None and has_exited(slot.pidfd):
                self._on_exit(slot, now)

    def _on_exit(self, slot: Slot, now: float) -> None:
        """Announce the exit at once, reap, and schedule the respawn."""
        if slot.pid is not None and not self.stopping:
            notice = bus.ExitNotice(slot.number, slot.pid, -1)
            self.publisher.publish(bus.encode(notice, self.cluster))
        code = -1
        if slot.process is not None:
            slot.process.join()  # reaped: the old incarnation is gone before a respawn
            code = slot.process.exitcode if slot.process.exitcode is not None else -1
            slot.process.close()
        assert slot.pidfd is not None
        close(slot.pidfd)
        self.events.emit("runner_exit", slot=slot.number, pid=slot.pid, code=code)
        log.warning("runner slot %d (pid %s) exited with %s", slot.number, slot.pid, code)
        quick = now - slot.started < QUICK_CRASH and code not in (EXIT_SLOT_BUSY, EXIT_FENCED)
        base = self.config.respawn_backoff_ms / 1000
        slot.backoff = min(slot.backoff * 2 if quick and slot.backoff else base,
                           self.config.respawn_backoff_max_ms / 1000)
        slot.respawn_at = now + slot.backoff
        slot.process, slot.pidfd, slot.pid, slot.role = None, None, None, ""

    def _next_respawn(self, now: float) -> float:
        due = [s.respawn_at for s in self.slots if s.pidfd is None]
        return min(due, default=now + 1.0)

    def _respawn_due(self, now: float) -> None:
        for slot in self.slots:
            if slot.pidfd is None and now >= slot.respawn_at and not self.stopping:
                metrics.respawned(slot.number)
                self._adopt_or_spawn(slot, now)

    def _start_metrics(self) -> Callable[[], None] | None:
        """Serve the metrics endpoint if `metrics_port` is set; the function that stops it."""
        host, port = self.config.metrics_host, self.config.metrics_port
        if not port:
            return None
        folder = self.layout.metrics
        metrics.prepare_folder(folder)
        metrics.enable(folder)  # before the runners are spawned: they inherit it
        counts = JobCounts(self.layout.database)
        try:
            stop = metrics.serve(host, port, folder, lambda: self._levels(counts))
        except ImportError:
            raise ClusterError("metrics_port is set but prometheus_client is not installed; "
                               "pip install 'harunner[metrics]', or set metrics_port = 0") from None
        except OSError as error:
            raise ClusterError(f"metrics endpoint {host}:{port} cannot be bound "
                               f"({error.strerror}); choose a free metrics_port, or 0 to turn "
                               "metrics off") from None
        log.info("metrics on http://%s:%d/metrics", host, port)
        return stop

    def _levels(self, counts: JobCounts) -> list[metrics.Level]:
        """The gauges of a scrape: runners from the beats heard, jobs from the store."""
        levels, now = [], time.monotonic()
        for slot in list(self.slots):
            labels = {"slot": str(slot.number)}
            beat = slot.last_beat
            up = slot.pidfd is not None and beat is not None and (
                now - beat <= self.config.hang_timeout_ms / 1000)
            levels.append(metrics.Level("harunner_runner_up", "1 while the slot's runner "
                                        "beats (heard within the hang timeout)", float(up),
                                        labels))
            levels.append(metrics.Level("harunner_runner_incarnation", "The incarnation of the "
                                        "slot's runner (grows at each restart)",
                                        float(slot.incarnation), labels))
            for role in ("primary", "standby"):
                levels.append(metrics.Level("harunner_runner_role", "1 for the role the slot's "
                                            "runner last announced", float(up and slot.role
                                                                           == role),
                                            {**labels, "role": role}))
        for (state, name), count in counts.by_state_and_name().items():
            levels.append(metrics.Level("harunner_jobs", "Unfinished jobs by state and name",
                                        float(count), {"state": state, "name": name}))
        for state, count in counts.finished().items():
            levels.append(metrics.Level("harunner_jobs_finished", "Finished jobs kept in the "
                                        "store, by state", float(count), {"state": state}))
        return levels

    def _stop_all(self) -> None:
        """SIGTERM every runner, wait, SIGKILL what is left, reap everything."""
        self.events.emit("stopping")  # the deaths that follow are planned, not failovers
        deadline = time.monotonic() + max(0.5, self.config.stop_timeout_ms / 1000 - 1.0)
        for slot in self.slots:
            _signal(slot, signal.SIGTERM)
        for slot in self.slots:
            if slot.pidfd is None:
                continue
            if not has_exited(slot.pidfd, max(0.0, deadline - time.monotonic())):
                _signal(slot, signal.SIGKILL)
                has_exited(slot.pidfd, 1.0)
            if slot.process is not None:
                slot.process.join(timeout=1.0)
            close(slot.pidfd)
            slot.pidfd = None
        self.events.emit("stopped")


def _signal(slot: Slot, signum: int) -> None:
    """Signal a slot's runner through its pidfd, so a reused pid is never hit."""
    if slot.pidfd is not None:
        send_signal(slot.pidfd, signum)


def supervise(config: Config) -> None:
    """Run the supervisor in this process until SIGINT/SIGTERM; `harunner start`."""
    configure_logging(config, "supervisor")
    supervisor = Supervisor(config)

    def handler(signum: int, frame: object) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    supervisor.run()

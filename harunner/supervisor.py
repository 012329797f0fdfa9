"""The supervisor: starts the runner slots, respawns dead ones, reports exits at once.

It holds no job state. It learns of a runner's death from the OS (the
process sentinel, or a pidfd for runners it adopted) and publishes an
`ExitNotice` on the bus at once, so that no timeout is needed for a crash.

Invariants:
- one supervisor per state directory (run/supervisor.lock, held for life);
- a slot is respawned only after its old process is confirmed gone (reaped,
  or its pidfd readable), and after a back-off that doubles on quick crashes;
- runners do not die with the supervisor (they call setsid); a new supervisor
  adopts live runners and starts only the missing slots;
- signal handlers only set a flag.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

import filelock
import zmq

from harunner import bus, cluster
from harunner.config import Config
from harunner.errors import ClusterError
from harunner.events import EventLog
from harunner.runner import configure_logging, runner_main
from harunner.store import Store
from harunner.transport import SUPERVISOR, BindGuard, Publisher

log = logging.getLogger("harunner.supervisor")
QUICK_CRASH = 10.0


@dataclass
class Slot:
    number: int
    pid: int | None = None
    process: BaseProcess | None = None
    pidfd: int | None = None
    started: float = 0.0
    respawn_at: float = 0.0
    backoff: float = 0.0
    exits: int = field(default=0)

    def watch_fd(self) -> int | None:
        if self.process is not None:
            return self.process.sentinel
        return self.pidfd


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.layout = cluster.Layout(config.state_path)
        self.layout.prepare()
        self.layout.endpoints.check(range(config.slots))
        self.lock = filelock.FileLock(str(self.layout.run / "supervisor.lock"),
                                      thread_local=False)
        try:
            self.lock.acquire(timeout=0)
        except filelock.Timeout:
            pid = cluster.live_supervisor(self.layout)
            raise ClusterError(
                f"state directory {self.layout.root} is in use by a running supervisor "
                f"(pid {pid}); run `harunner stop` first, or set another state_dir") from None
        cluster.write_meta(self.layout.run / "supervisor.json", {"pid": os.getpid()})
        self.cluster = cluster.cluster_id(self.layout, create=True)
        repaired = Store(config.state_path, config.lock_timeout_ms / 1000).rebuild_index()
        if repaired:
            log.warning("repaired %d entries of the index of unfinished jobs", repaired)
        self.context_mp = multiprocessing.get_context(config.start_method)
        self.slots = [Slot(n) for n in range(config.slots)]
        self.stopping = False
        self.events = EventLog(self.layout.events, "supervisor")
        self.seq = 0

    def run(self) -> None:
        """Start or adopt every slot, then watch them until asked to stop."""
        self.zmq = zmq.Context()
        self.guard = BindGuard()
        self.publisher = Publisher(self.zmq, self.guard, self.layout.endpoints.bus(SUPERVISOR))
        try:
            for slot in self.slots:
                self._adopt_or_spawn(slot, time.monotonic())
            next_beat = 0.0
            while not self.stopping:
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + self.config.heartbeat_ms / 1000
                    self._beat()
                self._wait(max(0.0, min(next_beat - now, self._next_respawn(now) - now)))
                self._check_exits(time.monotonic())
                self._respawn_due(time.monotonic())
            self._stop_all()
        finally:
            self.publisher.close()
            self.guard.release()
            self.zmq.term()
            self.lock.release()

    def _beat(self) -> None:
        self.seq += 1
        frame = bus.encode(bus.SupervisorBeat(os.getpid(), self.seq), self.cluster)
        self.publisher.publish(frame)

    def _adopt_or_spawn(self, slot: Slot, now: float) -> None:
        info = cluster.live_slot(self.layout, slot.number)
        if info is not None and info.get("pid"):
            try:
                slot.pidfd = os.pidfd_open(int(info["pid"]))
                slot.pid = int(info["pid"])
                slot.started = now
                log.info("adopted runner slot %d (pid %d)", slot.number, slot.pid)
                self.events.emit("adopted", slot=slot.number, pid=slot.pid)
                return
            except ProcessLookupError:
                pass
        self._spawn(slot, now)

    def _spawn(self, slot: Slot, now: float) -> None:
        process = self.context_mp.Process(target=runner_main, args=(self.config, slot.number),
                                          name=f"harunner-runner-{slot.number}")
        process.start()
        slot.process, slot.pid, slot.pidfd, slot.started = process, process.pid, None, now
        log.info("started runner slot %d (pid %s)", slot.number, process.pid)
        self.events.emit("spawned", slot=slot.number, pid=process.pid)

    def _wait(self, timeout: float) -> None:
        fds = [fd for fd in (s.watch_fd() for s in self.slots) if fd is not None]
        if fds:
            multiprocessing.connection.wait(fds, timeout=timeout)
        else:
            time.sleep(timeout)

    def _check_exits(self, now: float) -> None:
        fds = {s.watch_fd(): s for s in self.slots if s.watch_fd() is not None}
        for fd in multiprocessing.connection.wait(list(fds), timeout=0):
            self._on_exit(fds[fd], now)  # type: ignore[index]

    def _on_exit(self, slot: Slot, now: float) -> None:
        """Announce the exit at once, reap, and schedule the respawn."""
        code = -1
        if slot.process is not None:
            slot.process.join(timeout=0)
            code = slot.process.exitcode if slot.process.exitcode is not None else -1
        if slot.pid is not None and not self.stopping:
            notice = bus.ExitNotice(slot.number, slot.pid, code)
            self.publisher.publish(bus.encode(notice, self.cluster))
        self.events.emit("runner_exit", slot=slot.number, pid=slot.pid, code=code)
        log.warning("runner slot %d (pid %s) exited with %s", slot.number, slot.pid, code)
        if slot.process is not None:
            slot.process.join()  # reaped: the old incarnation is gone before a respawn
            slot.process.close()
        if slot.pidfd is not None:
            os.close(slot.pidfd)
        quick = now - slot.started < QUICK_CRASH
        base = self.config.respawn_backoff_ms / 1000
        slot.backoff = min(slot.backoff * 2 if quick and slot.backoff else base,
                           self.config.respawn_backoff_max_ms / 1000)
        slot.respawn_at = now + slot.backoff
        slot.process, slot.pidfd, slot.pid = None, None, None
        slot.exits += 1

    def _next_respawn(self, now: float) -> float:
        due = [s.respawn_at for s in self.slots if s.pid is None]
        return min(due, default=now + 1.0)

    def _respawn_due(self, now: float) -> None:
        for slot in self.slots:
            if slot.pid is None and now >= slot.respawn_at and not self.stopping:
                self._spawn(slot, now)

    def _stop_all(self) -> None:
        """SIGTERM every runner, wait, SIGKILL what is left, reap everything."""
        deadline = time.monotonic() + max(0.5, self.config.stop_timeout_ms / 1000 - 1.0)
        for slot in self.slots:
            _signal(slot.pid, signal.SIGTERM)
        for slot in self.slots:
            fd = slot.watch_fd()
            if fd is not None:
                multiprocessing.connection.wait([fd], max(0.0, deadline - time.monotonic()))
                if not multiprocessing.connection.wait([fd], timeout=0):
                    _signal(slot.pid, signal.SIGKILL)
                    multiprocessing.connection.wait([fd], timeout=1.0)
            if slot.process is not None:
                slot.process.join(timeout=1.0)
        self.events.emit("stopped")


def _signal(pid: int | None, signum: int) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def supervise(config: Config) -> None:
    """Run the supervisor in this process until SIGINT/SIGTERM; `harunner start`."""
    configure_logging(config, "supervisor")
    supervisor = Supervisor(config)

    def handler(signum: int, frame: object) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    supervisor.run()

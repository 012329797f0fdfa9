"""Helpers for the executor tests: a real store, a real executor, real processes.

Every process a test learns of (pid files written by the jobs) is SIGKILLed
by pid at the end, and the executor is shut down, whatever the outcome.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from multiprocessing.connection import wait
from pathlib import Path

from harunner.executor.executor import Executor, WorkerExit
from harunner.store import JobRecord, Owner, Store

HERE = Path(__file__).resolve().parent
TEST_JOBS = str(HERE / "jobs_for_tests")
EXAMPLE_JOBS = str(HERE.parent.parent / "jobs")
OWNER = Owner(slot=0, incarnation=1)
OTHER = Owner(slot=1, incarnation=1)


class Harness:
    """A store and an executor in one temporary state directory."""

    def __init__(self, root: Path, start_method: str = "forkserver", *,
                 worker_mode: str = "pool", concurrency: int = 2,
                 adopt_orphans: bool = True) -> None:
        self.root = root
        self.store = Store(root / "state", lock_timeout=2.0)
        self.executor = Executor(root / "state", (TEST_JOBS, EXAMPLE_JOBS), 2.0,
                                 start_method=start_method, grace=0.3,
                                 worker_mode=worker_mode, concurrency=concurrency,
                                 adopt_orphans=adopt_orphans)
        self.pid_files: list[Path] = []
        self.exits: list[WorkerExit] = []

    def pid_file(self, name: str = "pids") -> str:
        path = self.root / f"{name}.{len(self.pid_files)}"
        self.pid_files.append(path)
        return str(path)

    def submit(self, name: str, args: dict | None = None, **policy) -> JobRecord:
        """Submit and assign a job to OWNER: a RUNNING record ready to start."""
        record = self.store.submit(name, args or {}, **policy)
        return self.store.assign(record.job_id, OWNER, record.generation)

    def reassign(self, job_id: str) -> JobRecord:
        """Assign a PENDING (retrying) job again, ignoring its not_before."""
        record = self.store.get(job_id)
        return self.store.assign(job_id, OWNER, record.generation)

    def run(self, record: JobRecord, timeout: float = 20.0) -> WorkerExit:
        """Start a worker for `record` and drive the executor until it settles."""
        self.executor.start(record)
        return self.drive(record.job_id, timeout)

    def drive(self, job_id: str, timeout: float = 20.0, until: tuple[str, ...] = ()) -> WorkerExit:
        """Wait, reap and check timeouts like a runner's loop, until `job_id` settles.

        An "infra" exit (not settled: the job is resumed) is returned only if
        it is named in `until`; every exit seen is kept in `self.exits`.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wait(self.executor.sentinels(), 0.05)
            now = time.monotonic()
            self.executor.check_timeouts(now)
            for settled in self.executor.reap(now):
                self.exits.append(settled)
                if settled.job_id == job_id and (settled.outcome != "infra" or
                                                 "infra" in until):
                    return settled
        raise AssertionError(f"job {job_id} did not settle within {timeout}s")

    def loop(self, condition, timeout: float = 10.0):
        """Run the loop (wait, timeouts, reap) until `condition()` is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            wait(self.executor.sentinels(), 0.02)
            now = time.monotonic()
            self.executor.check_timeouts(now)
            self.exits.extend(self.executor.reap(now))
        raise AssertionError(f"condition not met within {timeout}s")

    def spare_after_start(self, old: int | None, timeout: float = 10.0) -> int:
        """Run the loop (reap) until a new spare worker, other than `old`, is ready."""
        def new_spare() -> int | None:
            self.executor.reap(time.monotonic())
            pid = self.executor.spare_pid
            return pid if pid not in (None, old) else None
        return wait_for(new_spare, timeout)

    def pids(self, path: str, timeout: float = 10.0) -> list[int]:
        """The pids a job wrote to `path`, waiting for the file."""
        return [int(p) for p in wait_for(lambda: _read(path), timeout).split()]

    def close(self) -> None:
        self.executor.shutdown()
        for path in self.pid_files:
            for pid in (_read(str(path)) or "").split():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text() or None
    except FileNotFoundError:
        return None


def wait_for(condition, timeout: float = 10.0, interval: float = 0.01):
    """Poll `condition` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(b")") + 2:].split()[0] != b"Z"


def zombie_children() -> list[int]:
    """This process's children that are zombies."""
    zombies = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[1]) == os.getpid() and fields[0] == b"Z":
            zombies.append(int(entry.name))
    return zombies

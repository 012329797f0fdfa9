"""The soak's nemesis: seeded faults against one real cluster, by pid only.

Fault kinds: `kill_runner` (SIGKILL), `stop_runner` (SIGSTOP for a random
time, some past the hang timeout, then SIGCONT), `kill_worker` (SIGKILL of a
worker of a running job), `kill_supervisor` (SIGKILL, then a new
supervisor that adopts the runners), `fill_disk` (the state directory's
tmpfs filled with one big file, removed after a moment) and `restart_all`
(every process of the cluster SIGKILLed, then a new start on the same state
directory). Every pid it signals is a descendant of this test process (a
child subreaper), found from the cluster's own records: a runner's pid from
its slot file, a worker's from the job's trace lines, checked to descend
from a live runner. A process it stopped is always continued.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KINDS = {"kill_runner": 22, "stop_runner": 22, "kill_worker": 26, "kill_supervisor": 10,
         "fill_disk": 12, "restart_all": 8}


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid`, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _ppid(int(entry)) == pid:
            found.append(int(entry))
    return found


def descendants(pid: int) -> set[int]:
    """Every live descendant of `pid`."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children_of(todo.pop()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _ppid(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split(" ")
    return None if fields[0] == "Z" else int(fields[1])


class TraceTail:
    """Reads the trace file incrementally: the newest worker pid of each unfinished job."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.workers: dict[str, int] = {}

    def update(self) -> dict[str, int]:
        if not self.path.exists():
            return self.workers
        with open(self.path, "rb") as trace:
            trace.seek(self.offset)
            data = trace.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for raw in data[:end].splitlines():
            line = json.loads(raw)
            if line["kind"] == "return":
                self.workers.pop(line["job"], None)
            else:
                self.workers[line["job"]] = int(line["pid"])
        return self.workers


class Nemesis:
    """Injects one seeded fault at a time into `cluster` (see tests/integration/conftest)."""

    def __init__(self, cluster: Any, rng: random.Random, trace: Path, disk: Path | None,
                 kill_all: Callable[[], None], log: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.rng = rng
        self.tail = TraceTail(trace)
        self.disk = disk
        self.kill_all = kill_all
        self.log = log
        self.faults: list[str] = []
        self.times: list[tuple[float, str]] = []
        self.hang = cluster.config.hang_timeout_ms / 1000.0

    def step(self) -> str:
        """Inject one fault (a kind whose target exists); returns its kind."""
        kinds = [kind for kind in KINDS if kind != "fill_disk" or self.disk is not None]
        while True:
            kind = self.rng.choices(kinds, [KINDS[k] for k in kinds])[0]
            at = time.monotonic()
            if getattr(self, kind)():
                self.times.append((at, kind))
                self.faults.append(kind)
                return kind

    def pause(self, hurry: bool = False) -> None:
        """A random pause between two faults (shorter when behind schedule)."""
        time.sleep(self.rng.uniform(0.05, 0.2) if hurry else self.rng.uniform(0.1, 0.7))

    # -- targets ----------------------------------------------------------------------

    def runners(self) -> dict[int, int]:
        """slot -> pid of each live runner that descends from this test process."""
        from harunner.store import meta
        mine = descendants(os.getpid())
        found = {}
        for slot in range(self.cluster.config.slots):
            info = meta.live_slot(self.cluster.layout, slot)
            if info and info.get("pid") and int(info["pid"]) in mine:
                found[slot] = int(info["pid"])
        return found

    def workers(self) -> list[int]:
        """Pids of running jobs' workers that descend from a live runner."""
        under = set().union(*(descendants(pid) for pid in self.runners().values()))
        return sorted(set(self.tail.update().values()) & under)

    # -- faults: each returns whether it found a target ------------------------------

    def kill_runner(self) -> bool:
        runners = self.runners()
        if not runners:
            return False
        slot = self.rng.choice(sorted(runners))
        self.log(f"SIGKILL runner slot {slot} pid {runners[slot]}")
        _signal(runners[slot], signal.SIGKILL)
        return True

    def stop_runner(self) -> bool:
        runners = self.runners()
        if not runners:
            return False
        slot = self.rng.choice(sorted(runners))
        long = self.rng.random() < 0.4
        seconds = self.rng.uniform(2 * self.hang, 6 * self.hang) if long \
            else self.rng.uniform(0.05, 0.7 * self.hang)
        self.log(f"SIGSTOP runner slot {slot} pid {runners[slot]} for {seconds:.2f} s")
        _signal(runners[slot], signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            _signal(runners[slot], signal.SIGCONT)
        return True

    def kill_worker(self) -> bool:
        workers = self.workers()
        if not workers:
            return False
        pid = self.rng.choice(workers)
        self.log(f"SIGKILL worker pid {pid}")
        _signal(pid, signal.SIGKILL)
        return True

    def kill_supervisor(self) -> bool:
        supervisor = self.cluster.supervisor
        if supervisor is None or supervisor.poll() is not None:
            return False
        self.log(f"SIGKILL supervisor pid {supervisor.pid}")
        supervisor.kill()
        supervisor.wait()
        time.sleep(self.rng.uniform(0.0, 0.5))
        self.start()
        return True

    def fill_disk(self) -> bool:
        assert self.disk is not None
        filler = self.disk / "nemesis-filler"
        stats = os.statvfs(self.disk)
        free = stats.f_bavail * stats.f_frsize
        seconds = self.rng.uniform(0.1, 0.6)
        self.log(f"fill the state disk ({free >> 20} MiB free) for {seconds:.2f} s")
        try:
            with open(filler, "wb") as out:
                chunk = b"\0" * (1 << 20)
                try:
                    while True:
                        out.write(chunk)
                        out.flush()
                except OSError:
                    pass
            time.sleep(seconds)
        finally:
            filler.unlink(missing_ok=True)
        return True

    def restart_all(self) -> bool:
        self.log("SIGKILL every process of the cluster, then start again")
        self.kill_all()
        self.start()
        return True

    def start(self) -> None:
        """A new supervisor on the same state directory, up with one primary."""
        self.cluster.start(wait=False)
        try:
            self.cluster.wait_up(timeout=60)
        except TimeoutError:
            self.log("the cluster did not come back up with one primary within 60 s")
            raise


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


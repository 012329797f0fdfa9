"""Several harunner "hosts" on this machine sharing one etcd: for tests and the bench.

A host is a state directory, a config naming the shared etcd and its own
`host_name`, and a supervisor started with `harunner start`. Every process a
host starts is found from its supervisor's pid through /proc (the caller must
be a child subreaper, so that runners and workers stay its descendants when
a parent dies) and is stopped or killed by pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harunner import config
from harunner.polling import wait_until
from harunner.store.etcd.gateway import EtcdGateway
from harunner.store.etcd.members import Member, Membership

HERE = Path(__file__).resolve().parent
ROOT = b"/harunner/default/"


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split(" ")[1]) == pid:
                found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def membership(endpoints: list[str]) -> Membership:
    return Membership(EtcdGateway(endpoints), ROOT, 2, time.monotonic)


class Host:
    """One harunner host: its own state directory and supervisor, jobs in the shared etcd."""

    def __init__(self, root: Path, name: str, backend: str, **options: Any) -> None:
        self.root, self.name = root, name
        root.mkdir(parents=True, exist_ok=True)
        settings = {"state_dir": str(root / "state"), "jobs": [str(HERE / "hostjobs")],
                    "backend": backend, "host_name": name, **options}
        lines = []
        for key, value in settings.items():
            if isinstance(value, str):
                lines.append(f'{key} = "{value}"')
            elif isinstance(value, list):
                lines.append(f"{key} = [" + ", ".join(f'"{v}"' for v in value) + "]")
            else:
                lines.append(f"{key} = {value}")
        self.config_path = root / "harunner.toml"
        self.config_path.write_text("\n".join(lines) + "\n")
        self.config = config.load(str(self.config_path), env={})
        self.supervisor: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> None:
        out = open(self.root / "supervisor.out", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HARUNNER_")}
        env["HARUNNER_HOST_NAME"] = self.name  # the jobs read it to say where they ran
        env.update(extra_env)
        self.supervisor = subprocess.Popen(
            [sys.executable, "-m", "harunner", "start", "--config", str(self.config_path)],
            stdout=out, stderr=subprocess.STDOUT, env=env)
        out.close()

    def pids(self) -> list[int]:
        if self.supervisor is None or self.supervisor.poll() is not None:
            return []
        return [self.supervisor.pid] + descendants(self.supervisor.pid)

    def runners(self, members: dict[int, Member]) -> dict[int, Member]:
        return {i: m for i, m in members.items() if m.host == self.name}

    def wait_up(self, endpoints: list[str], timeout: float = 60.0) -> dict[int, Member]:
        watcher = membership(endpoints)
        return wait_until(lambda: len(r := self.runners(watcher.members()[0]))  # type: ignore[no-any-return]
                          == self.config.slots and r, timeout,
                          f"{self.config.slots} runners of {self.name} registered")

    def kill(self) -> float:
        """SIGKILL every process of this host at once (stopped first, so none respawns one);
        the time of the kill."""
        first = self.pids()
        signal_all(first, signal.SIGSTOP)
        every = sorted(set(first) | set(self.pids()))
        signal_all(every, signal.SIGKILL)
        killed = time.monotonic()
        if self.supervisor is not None:
            self.supervisor.wait(timeout=10)
        return killed

    def pause(self) -> list[int]:
        """SIGSTOP every process of this host; the pids stopped."""
        first = self.pids()
        signal_all(first, signal.SIGSTOP)
        every = sorted(set(first) | set(self.pids()))
        signal_all(every, signal.SIGSTOP)
        return every

    def stop(self) -> None:
        """SIGTERM the supervisor and wait; SIGKILL whatever is left (by pid)."""
        pids = self.pids()
        signal_all(pids, signal.SIGCONT)
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            try:
                self.supervisor.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        left = sorted(set(pids) | set(self.pids()))
        signal_all(left, signal.SIGKILL)
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.kill()
            self.supervisor.wait(timeout=10)


def poll(condition: Callable[[], Any], timeout: float, what: str,
         interval: float = 0.005) -> Any:
    return wait_until(condition, timeout, what, interval)

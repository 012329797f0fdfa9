"""Real clusters for integration tests: real processes, sockets, files and signals.

The test process makes itself a child subreaper, so every runner and worker
a test starts (they leave the supervisor's session) re-parents to it when its
parent dies: teardown finds each one by walking /proc from our own pid, kills
it by pid, and reaps it, and tests can assert that no zombie remains.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harunner import config
from harunner.api import client
from harunner.cli.status import listen
from harunner.polling import wait_until
from harunner.store import JobRecord, Store, meta

HERE = Path(__file__).parent
PR_SET_CHILD_SUBREAPER = 36


def poll(condition: Callable[[], Any], timeout: float, what: str,
         interval: float = 0.005) -> Any:
    """Call `condition` until truthy; the test fails with TimeoutError after `timeout` s."""
    return wait_until(condition, timeout, what, interval)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat and int(stat[3]) == pid:
                found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # fields after the command name: state is field 3, ppid field 4 of the whole line
    return ["", ""] + text[text.rindex(")") + 2:].split(" ")


def state_of(pid: int) -> str | None:
    stat = _stat(pid)
    return stat[2] if stat else None


def alive(pid: int) -> bool:
    state = state_of(pid)
    return state is not None and state != "Z"


def zombies() -> list[int]:
    return [p for p in children_of(os.getpid()) if state_of(p) == "Z"]


def reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@pytest.fixture(scope="session", autouse=True)
def subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


class Cluster:
    """One real harunner cluster in a short temporary directory."""

    def __init__(self, root: Path, **options: Any) -> None:
        self.root = root
        self.acks = root / "acks.txt"
        lines = [f'state_dir = "{root / "state"}"', f'jobs = ["{HERE / "itjobs"}"]']
        lines += [f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}"
                  for key, value in options.items()]
        self.config_path = root / "harunner.toml"
        self.config_path.write_text("\n".join(lines).replace("'", '"') + "\n")
        self.config = config.load(str(self.config_path), env={})
        self.layout = meta.Layout(self.config.state_path)
        self.store = Store.from_config(self.config)
        self.supervisor: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True, env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        log = open(self.root / "supervisor.out", "ab")
        self.supervisor = subprocess.Popen(
            [sys.executable, "-m", "harunner", "start", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        log.close()
        if wait:
            self.wait_up()
        return self.supervisor

    def wait_up(self, timeout: float = 30.0) -> list[Any]:
        def up() -> Any:
            runners, _ = listen(self.config)
            return (len(runners) == self.config.slots
                    and sum(r.role == "primary" for r in runners) == 1 and runners)
        return poll(up, timeout, "all runners beating with one primary")  # type: ignore[no-any-return]

    def runner_pid(self, slot: int) -> int:
        info = poll(lambda: meta.live_slot(self.layout, slot), 10, f"slot {slot} live")
        return int(info["pid"])

    def runner_pids(self) -> dict[int, int]:
        return {slot: self.runner_pid(slot) for slot in range(self.config.slots)}

    def submit(self, name: str, **args: Any) -> str:
        items = [f"{key}={value}" for key, value in args.items()]
        return client.submit_job(self.config, name, items).job_id

    def record(self, job_id: str) -> JobRecord:
        return self.store.get(job_id)

    def finished(self, job_id: str, timeout: float = 60.0) -> JobRecord:
        return poll(lambda: (r := self.store.get(job_id)).state.finished and r, timeout,  # type: ignore[no-any-return]
                    f"job {job_id} to finish", 0.02)

    def owner_pid(self, job_id: str) -> tuple[int, int]:
        owner = poll(lambda: self.store.get(job_id).owner, 10, "an owner")
        return owner.slot, self.runner_pid(owner.slot)

    def checkpoint_i(self, job_id: str) -> int:
        checkpoint = self.store.read_checkpoint(job_id)
        return 0 if checkpoint is None else int(checkpoint.state.get("i", 0))

    def stop(self) -> None:
        """SIGTERM the supervisor; then kill and reap everything this test started."""
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            try:
                self.supervisor.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        kill_descendants()


def kill_descendants() -> None:
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    poll(lambda: not [p for p in descendants(os.getpid()) if alive(p)], 10,
         "every started process to die")
    reap_all()


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []
    roots: list[Path] = []

    def make(**options: Any) -> Cluster:
        root = Path(tempfile.mkdtemp(prefix="hrt-", dir="/tmp"))
        roots.append(root)
        made.append(Cluster(root, **options))
        return made[-1]

    try:
        yield make
    finally:
        for each in made:
            each.stop()
        kill_descendants()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)

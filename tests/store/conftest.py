"""Fixtures of the store tests: a fresh store, a running job, and child processes that are
always killed and reaped by pid."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("store_child.py")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harunner.store import Owner, Store  # noqa: E402


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state", lock_timeout=5.0)


@pytest.fixture
def running(store: Store) -> str:
    """The id of a job RUNNING at generation 1, owned by slot 0."""
    job = store.submit("jobs.demo", {"n": 1}).job_id
    store.assign(job, Owner(0, 1), 0)
    return job


class Children:
    """Starts `store_child.py` processes; `close` kills and reaps every one of them by pid."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *args: object, failpoints: str = "") -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO), "HARUNNER_FAILPOINTS": failpoints}
        child = subprocess.Popen([sys.executable, str(CHILD), *map(str, args)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started.append(child)
        return child

    def read_line(self, child: subprocess.Popen[str], timeout: float) -> str:
        """The child's next stdout line, waiting at most `timeout` seconds."""
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], timeout)
        assert ready, f"child {child.pid} printed nothing within {timeout} s"
        return child.stdout.readline().strip()

    def close(self) -> None:
        for child in self.started:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGCONT)
                os.kill(child.pid, signal.SIGKILL)
            child.communicate(timeout=10)


@pytest.fixture
def children() -> Iterator[Children]:
    started = Children()
    try:
        yield started
    finally:
        started.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def poll() -> Callable[[Callable[[], bool], float, str], None]:
    return wait_until

"""A real cluster for the soak, its state directory on a small tmpfs, all cleaned up by pid.

The test process is a child subreaper while a soak runs, so every runner and
worker (they leave the supervisor's session) stays its descendant: teardown
continues and kills each one by pid (every descendant that was not there
before the fixture started), reaps it, unmounts the tmpfs and removes the
folder, whatever happened in the test. If mounting is refused (not root,
no tmpfs), the state directory is a plain folder and only the `fill_disk`
fault is skipped, with the reason printed.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from integration.conftest import Cluster, reap_all  # noqa: E402

from harunner import config as config_module  # noqa: E402
from harunner.polling import wait_until  # noqa: E402

from .nemesis import descendants  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
SOAKJOBS = Path(__file__).parent / "soakjobs"
# a finished job keeps ~16 KB of files: 64 MiB holds a CI soak, a long soak needs more
TMPFS_SIZE = os.environ.get("HARUNNER_SOAK_TMPFS",
                            "512m" if os.environ.get("HARUNNER_SOAK") == "1" else "64m")


@dataclass
class SoakSite:
    """A cluster with its trace file and (if mounted) the tmpfs of its state directory."""

    cluster: Cluster
    trace: Path
    disk: Path | None
    skip_reason: str
    keep: frozenset[int]

    def kill_all(self) -> None:
        """SIGKILL the supervisor and every process it left, by pid, and reap them."""
        kill_descendants(self.keep)
        if self.cluster.supervisor is not None:
            self.cluster.supervisor.wait()


def kill_descendants(keep: frozenset[int]) -> None:
    """Continue and SIGKILL every descendant not in `keep` (there before), until none is left.

    Killing goes on until the tree is empty: a process not yet killed may
    fork (a forkserver's spare worker) after the tree was read.
    """
    def all_gone() -> bool:
        left = descendants(os.getpid()) - keep
        for pid in left:
            for signum in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
        return not left
    try:
        wait_until(all_gone, 20, "every started process to die", 0.01)
    except TimeoutError as error:
        left = {pid: _describe(pid) for pid in descendants(os.getpid()) - keep}
        raise TimeoutError(f"{error}; still there: {left}") from None
    reap_all()


def _describe(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    return f"state {stat[stat.rindex(')') + 2]} {command[:80]}"


def _subreaper(on: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


def _mount(folder: Path) -> str:
    """Mount a tmpfs on `folder`; returns "" or why it could not be mounted."""
    if os.geteuid() != 0:
        return "not root: cannot mount a tmpfs for the state directory"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700",
                           "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        return f"mount -t tmpfs refused: {done.stderr.strip() or done.returncode}"
    if not os.path.ismount(folder):
        return "mount -t tmpfs reported success but nothing is mounted"
    return ""


def _unmount(folder: Path) -> None:
    if os.path.ismount(folder):
        done = subprocess.run(["umount", str(folder)], capture_output=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def soak_site() -> Iterator[Callable[..., SoakSite]]:
    """Make one soak cluster (options go to harunner.toml); all of it is gone afterwards."""
    roots: list[Path] = []
    made: list[SoakSite] = []
    keep = frozenset(descendants(os.getpid()))  # processes of other fixtures: not ours
    _subreaper(True)

    def make(**options: Any) -> SoakSite:
        root = Path(tempfile.mkdtemp(prefix="hrs-", dir="/tmp"))
        roots.append(root)
        (root / "state").mkdir(mode=0o700)
        reason = _mount(root / "state")
        cluster = Cluster(root, **options)
        lines = [f'jobs = ["{SOAKJOBS}"]' if line.startswith("jobs") else line
                 for line in cluster.config_path.read_text().splitlines()]
        cluster.config_path.write_text("\n".join(lines) + "\n")
        cluster.config = config_module.load(str(cluster.config_path), env={})
        made.append(SoakSite(cluster, root / "trace.jsonl", None if reason else root / "state",
                             reason, keep))
        return made[-1]

    try:
        yield make
    finally:
        kill_descendants(keep)
        _subreaper(False)
        for root in roots:
            _unmount(root / "state")
            shutil.rmtree(root, ignore_errors=True)

"""`harunner stop`: SIGTERM the supervisor (or, without one, the live runners) and wait.

It reports "stopped" only once the supervisor and every runner it found are
gone: their locks released and their processes exited. With nothing running
it raises `NotRunning` (exit 5); if they outlive `stop_timeout_ms`, it says
which are still stopping (exit 1).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from harunner.api.errors import NotRunning
from harunner.api.statedir import check_state_dir
from harunner.config import Config
from harunner.errors import ClusterError
from harunner.store import meta
from harunner.store.layout import Layout


def stop_cluster(config: Config) -> str:
    """SIGTERM the supervisor (or the live runners) and wait until every one is gone."""
    check_state_dir(config.state_path)
    layout = Layout(config.state_path)
    supervisor = meta.live_supervisor(layout)
    runners = [int(info["pid"]) for slot in range(config.slots)
               if (info := meta.live_slot(layout, slot)) and info.get("pid")]
    if supervisor is None and not runners:
        raise NotRunning(f"no cluster is running on {layout.root}; nothing to stop")
    targets = [supervisor] if supervisor and supervisor > 0 else runners
    for pid in targets:
        _signal(pid, signal.SIGTERM)
    watched = set(runners) | ({supervisor} if supervisor and supervisor > 0 else set())
    deadline = time.monotonic() + config.stop_timeout_ms / 1000 + 1.0
    while time.monotonic() < deadline:
        if not _left(layout, config.slots, watched):
            return f"stopped the cluster on {layout.root}"
        time.sleep(0.05)
    left = ", ".join(_left(layout, config.slots, watched))
    raise ClusterError(f"the cluster on {layout.root} is still stopping after "
                       f"{config.stop_timeout_ms} ms: {left}; run `harunner stop` again, or "
                       "kill those pids")


def _left(layout: Layout, slots: int, pids: set[int]) -> list[str]:
    """What is still up: held locks, and processes of `pids` that have not exited."""
    left = [f"pid {pid}" for pid in sorted(pids) if _running(pid)]
    if meta.live_supervisor(layout) is not None:
        left.append("the supervisor's lock")
    left += [f"slot {slot}'s lock" for slot in range(slots) if meta.live_slot(layout, slot)]
    return left


def _running(pid: int) -> bool:
    """Whether `pid` is a process that has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split(" ")[0] not in ("Z", "X")


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass

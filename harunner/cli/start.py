"""`harunner start`: check the state directory, say what starts, run the supervisor.

Everything is refused before anything is printed or started: an unusable
state directory, or one in use by a live supervisor. Ctrl-C (SIGINT) stops the
cluster like SIGTERM does, and the command then exits 130, like any
interrupted command; the signal number is read from a wakeup pipe, since the
supervisor's own handler only sets its stopping flag.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from harunner.api import exit_codes
from harunner.api.statedir import check_state_dir
from harunner.config import LOCAL_BACKEND, Config
from harunner.errors import ClusterError
from harunner.store import meta
from harunner.store.layout import Layout


def plan(config: Config) -> list[str]:
    """The lines `start` prints before it starts; `ClusterError` if the directory is in use."""
    check_state_dir(config.state_path)
    pid = meta.live_supervisor(Layout(config.state_path))
    if pid is not None:
        raise ClusterError(f"state directory {config.state_path} is in use by a running "
                           f"supervisor (pid {pid}); run `harunner stop` first, or set "
                           "another state_dir")
    slots = "1 runner slot" if config.slots == 1 else f"{config.slots} runner slots"
    lines = [f"starting {slots} on {config.state_path} (Ctrl-C stops)"]
    if config.backend != LOCAL_BACKEND:
        lines.append(f"jobs in {config.backend} as host {config.host!r} "
                     f"(lease {config.lease_ttl} s)")
    if config.slots == 1:
        lines.append("warning: with 1 slot there is no standby: if the runner dies, its jobs "
                     "wait until the supervisor respawns it; use slots = 3 for failover")
    return lines


def run(config: Config, say: Callable[[str], None]) -> int:
    """Run the cluster in the foreground until stopped; the exit code (130 after Ctrl-C)."""
    from harunner.supervisor import supervise

    for line in plan(config):
        say(line)
    with signals_seen() as seen:
        supervise(config)
        interrupted = signal.SIGINT in seen()
    return exit_codes.INTERRUPTED if interrupted else exit_codes.OK


@contextmanager
def signals_seen() -> Iterator[Callable[[], set[int]]]:
    """Record which signals arrive meanwhile (through `signal.set_wakeup_fd`)."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end)

    def seen() -> set[int]:
        try:
            return set(os.read(read_end, 1024))
        except BlockingIOError:
            return set()

    try:
        yield seen
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read_end)
        os.close(write_end)

"""Waiting for a job from the CLI (`submit --wait`, `result --wait`): a bar, and a notice.

While it waits it shows the job's progress bar on stderr when stderr is a
terminal, and says so on stderr, once each time it happens, when no runner
is up to run the job. The outcome is the client's: the result, or
`JobFailed`, `Cancelled` or `Timeout` (exit 1, 3, 4).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harunner.api.client import JobHandle, outcome, runners_up
from harunner.store import JobRecord

RUNNER_CHECK_S = 1.0


class NoRunnerNotice:
    """Calls `say` when no runner is up (at first, and again after runners went away)."""

    def __init__(self, handle: JobHandle, say: Callable[[str], None]) -> None:
        self.handle = handle
        self.say = say
        self.next_check = 0.0
        self.up: bool | None = None

    def __call__(self, record: JobRecord) -> None:
        now = time.monotonic()
        if now < self.next_check or record.state.finished:
            return
        self.next_check = now + RUNNER_CHECK_S
        up = runners_up(self.handle.client.config)
        if not up and self.up is not False:
            self.say(f"harunner: no runner is up on {self.handle.client.config.state_path}; "
                     f"job {record.job_id} stays {record.state.value} until `harunner start` "
                     "(Ctrl-C or --timeout stops waiting; the job stays submitted)")
        self.up = up


def wait_for_result(handle: JobHandle, timeout: float | None, say: Callable[[str], None],
                    bar: bool) -> Any:
    """The job's result once it is finished; the client's errors otherwise."""
    notice = NoRunnerNotice(handle, say)
    if not bar:
        return outcome(handle.wait(timeout, tick=notice))
    from rich.console import Console

    from harunner.cli.bars import Bars, make_progress

    progress = make_progress(Console(stderr=True))
    bars = Bars(progress)

    def tick(record: JobRecord) -> None:
        notice(record)
        bars.show(record.job_id, record.name, record.state.value, handle.progress())
        progress.refresh()

    with progress:
        record = handle.wait(timeout, tick=tick)
    return outcome(record)

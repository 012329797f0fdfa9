"""Jobs for the tests of checkpoint limits, unreadable checkpoints and repeated kills."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from harunner import job


@job
def big_checkpoint(ctx, size: int):
    """Checkpoint a small state, then one whose JSON text is about `size` bytes."""
    ctx.checkpoint({"step": 1})
    ctx.checkpoint({"step": 2, "blob": "x" * size})
    return "unreachable when the second checkpoint is refused"


@job
def report_state(ctx):
    """Return the state the attempt started from."""
    return {"state": ctx.state, "resumed": ctx.resumed}


@job
def killed_many_times(ctx, pid_file: str, kills: int):
    """Run `kills` + 1 times: each run checkpoints its number, writes 'pid run', waits."""
    run = ctx.state.get("run", 0) + 1
    if run > kills:
        return {"runs": run, "attempt": ctx.attempt}
    ctx.checkpoint({"run": run})
    temp = Path(f"{pid_file}.tmp")
    temp.write_text(f"{os.getpid()} {run}")
    temp.replace(pid_file)
    while True:
        signal.pause()

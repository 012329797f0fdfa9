"""The job the failover benchmark runs."""

from __future__ import annotations

import os
import time

from harunner import Context, job


@job
def spin(ctx: Context, delay: float = 0.005, acks: str = "") -> int:
    """Checkpoint forever; after each acknowledged checkpoint append 'generation wall_time'."""
    i = ctx.state.get("i", 0)
    fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    while True:
        i += 1
        ctx.checkpoint({"i": i})
        os.write(fd, f"{ctx.generation} {time.time():.6f}\n".encode())
        time.sleep(delay)


@job
def noop(ctx: Context) -> int:
    """Nothing: the cost of the job path itself."""
    return 1

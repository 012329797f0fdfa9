"""Small jobs for the crash-test kit's own tests (imported by name from the forkserver)."""

from __future__ import annotations

import time

from harunner import Context, job


@job(name="crash_jobs.slow_steps")
def slow_steps(ctx: Context, steps: int = 4, delay: float = 0.2) -> dict:
    """Sleep `delay` before each of `steps` checkpoints; deterministic result."""
    done = ctx.state.get("done", 0)
    for step in range(done + 1, steps + 1):
        time.sleep(delay)
        ctx.checkpoint({"done": step})
    return {"steps": steps}


@job(name="crash_jobs.fails")
def fails(ctx: Context) -> None:
    """Raise at once: the run without faults fails."""
    raise ValueError("this job always fails")


@job(name="crash_jobs.counts_owners")
def counts_owners(ctx: Context, steps: int = 3) -> dict:
    """A result that tells how many owners ran the job: differs after any kill."""
    owners = list(ctx.state.get("owners", []))
    if ctx.generation not in owners:
        owners.append(ctx.generation)
    for step in range(ctx.state.get("done", 0) + 1, steps + 1):
        ctx.checkpoint({"done": step, "owners": owners})
    return {"owners": owners}

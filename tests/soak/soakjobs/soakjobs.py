"""The nemesis soak's job: a hash chain whose trace proves exactly-once state transitions.

Step i computes h_i = sha256(h_{i-1} ":" i) from h_0 = sha256(job id) and
checkpoints {"i": i, "h": h_i} through the real `Context.checkpoint`. Each
step appends, with O_APPEND and one write(2) per line, a `write` line to the
trace file BEFORE the checkpoint call (so an unacknowledged write shows too)
and an `ack` line after it returned (or `refused`/`failed` if it raised).
A run also writes a `start` line (which checkpoint it resumed from) and a
`return` line. Every line carries the job id, the generation and attempt the
job sees in its Context, the worker's pid and monotonic and wall times.

HARUNNER_SOAK_MUTANT (in the cluster's environment) breaks the job on purpose
so that the soak's checker can be shown to catch it:
- `nofence`: the worker disables the store's generation check for its writes;
- `older`: a resumed run starts from the checkpoint before the last one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

from harunner import Context, job

MUTANT_ENV = "HARUNNER_SOAK_MUTANT"


def first_hash(job_id: str) -> str:
    """h_0 of a job's chain."""
    return hashlib.sha256(job_id.encode()).hexdigest()


def step_hash(previous: str, step: int) -> str:
    """h_step from h_(step-1)."""
    return hashlib.sha256(f"{previous}:{step}".encode()).hexdigest()


def _trace(path: str, ctx: Context, kind: str, **fields: Any) -> None:
    line = {"kind": kind, "job": ctx.job_id, "gen": ctx.generation, "attempt": ctx.attempt,
            "pid": os.getpid(), "mono": time.monotonic(), "wall": time.time(), **fields}
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())
    finally:
        os.close(fd)


def _switch_fencing_off() -> None:
    """Mutant `nofence`: this worker's checkpoint writes skip the store's generation check."""
    from harunner.store import jobs as store_jobs
    assert hasattr(store_jobs, "check_writer"), "the store's generation check moved"
    store_jobs.check_writer = lambda record, generation: None  # type: ignore[assignment]


def _resume_point(ctx: Context, mutant: str) -> tuple[int, str]:
    state = ctx.state
    if mutant == "older" and state.get("i", 0) >= 1:
        return int(state["i"]) - 1, str(state["ph"])
    return int(state.get("i", 0)), str(state.get("h", first_hash(ctx.job_id)))


@job(retries=100_000, backoff="1ms")
def chain(ctx: Context, steps: int, trace: str, delay: float = 0.005) -> str:
    """Run the chain to `steps`, one checkpoint per step; the result is the final hash."""
    mutant = os.environ.get(MUTANT_ENV, "")
    if mutant == "nofence":
        _switch_fencing_off()
    done, current = _resume_point(ctx, mutant)
    _trace(trace, ctx, "start", step=done, h=current)
    for step in range(done + 1, steps + 1):
        time.sleep(delay)
        new = step_hash(current, step)
        _trace(trace, ctx, "write", step=step, prev=current, new=new)
        try:
            seq = ctx.checkpoint({"i": step, "h": new, "ph": current})
        except BaseException as error:
            _trace(trace, ctx, "refused" if ctx.fenced else "failed", step=step,
                   error=f"{type(error).__name__}: {error}"[:300])
            raise
        _trace(trace, ctx, "ack", step=step, seq=seq)
        current = new
    _trace(trace, ctx, "return", step=steps, h=current)
    return current

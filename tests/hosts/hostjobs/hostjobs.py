"""Jobs of the multi-host tests and bench."""

from __future__ import annotations

import os
import time

from harunner import Context, job


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@job(retries=3, backoff="10ms")
def ticker(ctx: Context, to: int = 100, delay: float = 0.02, log: str = "") -> dict:
    """Count to `to`, one checkpoint a step. Each try of a checkpoint is appended to `log`
    as 'try <job> <host> <gen> <i> <time>' before it and 'ok ...' once acknowledged."""
    host = os.environ.get("HARUNNER_HOST_NAME", "?")
    i = ctx.state.get("i", 0)
    resumes = list(ctx.state.get("resumes", []))
    resumes.append([ctx.generation, i, host])
    while i < to:
        time.sleep(delay)
        if log:
            _append(log, f"try {ctx.job_id} {host} {ctx.generation} {i + 1} {time.time():.6f}")
        ctx.checkpoint({"i": i + 1, "resumes": resumes})
        i += 1
        if log:
            _append(log, f"ok {ctx.job_id} {host} {ctx.generation} {i} {time.time():.6f}")
    return {"count": i, "resumes": resumes}


@job
def noop(ctx: Context) -> int:
    return 0

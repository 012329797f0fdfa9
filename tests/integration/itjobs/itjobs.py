"""Jobs used by the real-process cluster tests."""

from __future__ import annotations

import os
import signal
import time

from harunner import Context, job


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@job(retries=3, backoff="10ms")
def ticker(ctx: Context, to: int = 100, delay: float = 0.01, acks: str = "") -> dict:
    """Count to `to`; every acknowledged checkpoint is appended to `acks` as 'gen seq i pid'."""
    i = ctx.state.get("i", 0)
    resumes = list(ctx.state.get("resumes", []))
    resumes.append([ctx.generation, i])
    while i < to:
        time.sleep(delay)
        i += 1
        seq = ctx.checkpoint({"i": i, "resumes": resumes})
        if acks:
            _append(acks, f"{ctx.generation} {seq} {i} {os.getpid()}")
    return {"count": i, "resumes": resumes}


@job(retries=1, backoff="10ms")
def die_once(ctx: Context, how: str = "exit") -> str:
    """Die on the first attempt (os._exit or SIGKILL of itself), succeed on the second."""
    if ctx.attempt <= 1:
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)
    return f"ok on attempt {ctx.attempt}"


@job
def sleeper(ctx: Context, seconds: float = 60.0) -> str:
    """Sleep, checkpointing once a second-tenth, so that a test can watch its worker."""
    ctx.checkpoint({"pid": os.getpid()})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "slept"

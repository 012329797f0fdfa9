"""Jobs that misbehave on purpose, for the executor's tests (not examples for users)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harunner import job

GRANDCHILD = [sys.executable, "-c", "import time; time.sleep(1000)"]


def _write_pids(pid_file: str, *pids: int) -> None:
    temp = Path(pid_file + ".tmp")
    temp.write_text(" ".join(map(str, pids)))
    temp.replace(pid_file)


@job
def succeed(ctx, value: int = 1):
    """Return at once."""
    return {"value": value, "attempt": ctx.attempt}


@job
def boom(ctx):
    """Raise on every attempt."""
    raise ValueError(f"boom on attempt {ctx.attempt}")


@job
def crash(ctx, code: int = 13):
    """Exit the worker without recording anything, like a crash in C code."""
    os._exit(code)


@job
def abort(ctx):
    """Die by SIGABRT, like a crash in C code."""
    os.abort()


@job
def sleeper(ctx, pid_file: str, ignore_term: bool = False, seconds: float = 1000):
    """Start a grandchild, write both pids, then sleep (for timeouts, kills, orphans)."""
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(GRANDCHILD)
    _write_pids(pid_file, os.getpid(), child.pid)
    time.sleep(seconds)
    return {"slept": seconds}


@job
def checkpoint_forever(ctx, pid_file: str):
    """Checkpoint an increasing counter until fenced."""
    _write_pids(pid_file, os.getpid())
    i = ctx.state.get("i", 0)
    while True:
        i += 1
        ctx.checkpoint({"i": i})
        time.sleep(0.005)


@job
def swallow_fence(ctx, pid_file: str):
    """Catch the FencedError and return normally: must still count as fenced."""
    _write_pids(pid_file, os.getpid())
    try:
        while True:
            ctx.checkpoint({"x": 1})
            time.sleep(0.005)
    except Exception:
        return {"swallowed": True}


@job
def print_and_return(ctx):
    """Write to stdout and stderr (they go to the job log)."""
    print("to stdout", flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    return None


@job
def exit_zero(ctx):
    """Exit 0 without recording: the executor must not believe it succeeded."""
    os._exit(0)


@job
def whoami(ctx, value: int = 0):
    """Return the worker's pid (to tell pool workers apart)."""
    return {"pid": os.getpid(), "value": value}

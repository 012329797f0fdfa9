"""Jobs that misbehave on purpose, for the executor's tests (not examples for users)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harunner import job
from harunner.store.layout import Layout

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


SLEEP_IN_NEW_SESSION = [sys.executable, "-c", "import os, time; os.setsid(); time.sleep(1000)"]
DAEMON = [sys.executable, "-c",
          "import os, sys, time\n"
          "if os.fork(): os._exit(0)\n"
          "os.setsid()\n"
          "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n"
          "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
          "time.sleep(1000)\n"]


@job
def setsid_child(ctx, pid_file: str, then: str = "return"):
    """Start a child that calls setsid() and sleeps; then return, sleep, or exit the worker."""
    child = subprocess.Popen(SLEEP_IN_NEW_SESSION, start_new_session=False)
    wait_for_session(child.pid)
    _write_pids(pid_file, os.getpid(), child.pid)
    if then == "sleep":
        time.sleep(1000)
    if then == "exit":
        os._exit(3)
    return {"child": child.pid, "child_sid": os.getsid(child.pid)}


@job
def daemonize(ctx, pid_file: str):
    """Double-fork a daemon in its own session (its parent exits at once), then return."""
    subprocess.run([*DAEMON, pid_file + ".daemon"], check=True)
    while not os.path.exists(pid_file + ".daemon"):
        time.sleep(0.005)
    daemon = int(Path(pid_file + ".daemon").read_text())
    _write_pids(pid_file, os.getpid(), daemon)
    return {"daemon": daemon}


def wait_for_session(pid: int) -> None:
    """Wait until `pid` leads its own session (it called setsid())."""
    for _ in range(2000):
        try:
            if os.getsid(pid) == pid:
                return
        except ProcessLookupError:
            return
        time.sleep(0.005)


@job
def resumable(ctx, pid_file: str):
    """Checkpoint, then wait to be killed; when resumed, return what it resumed from."""
    if ctx.resumed:
        return {"resumed_from": ctx.state, "attempt": ctx.attempt}
    ctx.checkpoint({"step": 1})
    _write_pids(pid_file, os.getpid())
    time.sleep(1000)
    return None


@job
def disk_full_once(ctx, marker: str):
    """Checkpoint once; the next checkpoint is refused as the disk being full (first run only)."""
    from harunner.errors import DiskFullError

    if ctx.resumed:
        return {"resumed_from": ctx.state, "attempt": ctx.attempt}
    ctx.checkpoint({"step": 1})
    if not os.path.exists(marker):
        Path(marker).write_text("x")
        store = ctx._store
        real = store.write_checkpoint

        def full(*args, **kwargs):
            store.write_checkpoint = real
            raise DiskFullError("disk full while writing a checkpoint (simulated); free space")
        store.write_checkpoint = full
    ctx.checkpoint({"step": 2})
    return {"fresh": True}


@job
def raise_after_checkpoint(ctx):
    """Checkpoint, then raise: the job's own failure, even with a checkpoint to resume from."""
    ctx.checkpoint({"step": 1})
    raise RuntimeError("the job's own bug")


@job
def kill_self_after_checkpoint(ctx):
    """Checkpoint, then SIGKILL its own worker (indistinguishable from an OOM kill)."""
    ctx.checkpoint({"n": ctx.state.get("n", 0) + 1})
    os.kill(os.getpid(), signal.SIGKILL)


@job
def pollute(ctx, folder: str, thread: bool = False):
    """Change what a worker process carries from job to job: the next job must not see it."""
    import logging
    import threading

    os.chdir(folder)
    os.environ["POLLUTED"] = "yes"
    os.umask(0o007)
    sys.path.insert(0, "/polluted")
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    logging.getLogger().addHandler(logging.StreamHandler())
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    if thread:
        threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()
    return {"pid": os.getpid()}


@job
def inspect_worker(ctx):
    """What the worker looks like now (after a polluting job)."""
    import logging

    return {"pid": os.getpid(), "cwd": os.getcwd(), "polluted": os.environ.get("POLLUTED"),
            "path0": sys.path[0], "usr1": signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL,
            "root_handlers": len(logging.getLogger().handlers),
            "stdout_is_real": sys.stdout is sys.__stdout__, "umask": _umask()}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@job
def say_then_die(ctx, how: str, state: str, seen: str, marker: str = ""):
    """Write four lines four ways (print, os.write, a child process, stderr), then end the
    worker `how`: "exit" (os._exit), "segv" (SIGSEGV), "kill" (SIGKILL, once if `marker`).
    Appends to `seen` whether the job's log (in state folder `state`) existed just before."""
    log_path = Layout(Path(state)).job_log(ctx.job_id)
    print("one: print", flush=True)
    os.write(1, b"two: os.write\n")
    subprocess.run(["echo", "three: a child process"], check=True)
    sys.stderr.write("four: stderr\n")
    sys.stderr.flush()
    with open(seen, "a") as handle:
        handle.write(f"{os.path.exists(log_path)}\n")
    if marker and os.path.exists(marker):
        return "second time"
    if marker:
        Path(marker).write_text("x")
    signum = {"segv": signal.SIGSEGV, "kill": signal.SIGKILL}.get(how)
    if signum is None:
        os._exit(3)
    os.kill(os.getpid(), signum)
    time.sleep(10)


@job
def talk_long(ctx, state: str, pid_file: str):
    """Print, start a child that writes only once the job's log exists (the attempt has run
    past the spool's delay), wait for it, print again, return."""
    log_path = str(Layout(Path(state)).job_log(ctx.job_id))
    print("early", flush=True)
    child = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time\n"
        f"while not os.path.exists({log_path!r}): time.sleep(0.005)\n"
        "print('from the child, after the log appeared', flush=True)\n")])
    _write_pids(pid_file, os.getpid(), child.pid)
    child.wait(timeout=10)
    print("late", flush=True)
    return "talked"


@job
def say_and_sleep(ctx, pid_file: str):
    """Print one line, then sleep until killed (a cancel or a dead runner within the spool's
    delay)."""
    print("said before the end", flush=True)
    _write_pids(pid_file, os.getpid())
    time.sleep(1000)


@job
def log_appears_meanwhile(ctx, state: str):
    """Print, then create the job's log itself (as another owner's worker might), print again."""
    print("first", flush=True)
    log_path = Layout(Path(state)).job_log(ctx.job_id)
    log_path.parent.mkdir(mode=0o700, exist_ok=True)
    with open(log_path, "a") as handle:
        handle.write("a line someone else wrote\n")
    print("second", flush=True)
    return "done"

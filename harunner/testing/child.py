"""The child side of a crash test: one process that runs one attempt of the job.

The parent (`harunner.testing.kit`) starts `run_child(request, events)` in a
fresh process from a forkserver. Like a real worker, the child
1. reads the job's record and checks that it is RUNNING at the child's
   generation (a stale child writes nothing and exits with EXIT_FENCED);
2. reads the last acknowledged checkpoint (only now: the parent raised the
   generation with `Store.take_over` before it started this child);
3. calls the job with a real `Context` on the real store, and records the
   outcome with `Store.finish`.

The `KillingContext` it hands the job is a `Context` whose `checkpoint`
SIGKILLs the process (a real SIGKILL to itself, no clean-up) just before or
just after the k-th checkpoint of this process, if the request says so, and
reports each acknowledged checkpoint on the events pipe, so that the parent
can kill at a timed point between two checkpoints.

Invariants: nothing is imported from the job before the process starts; the
job's stdout and stderr go to the run's log file; the child dies with its
parent (PR_SET_PDEATHSIG), so a crashed test leaves no job running.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

from harunner.api import Context, JobSpec, job_logger, registered
from harunner.errors import FencedError, StaleTransitionError
from harunner.store import JobState, Store

EXIT_FINISHED = 0     # the job's outcome (result or error) was recorded
EXIT_FENCED = 75      # the record was not RUNNING at this generation; nothing written
EXIT_BROKEN = 70      # the child itself failed (import, store error); see the run's log
PR_SET_PDEATHSIG = 1

BEFORE = "before"     # SIGKILL when the k-th checkpoint is asked for, before it is written
AFTER = "after"       # SIGKILL right after the k-th checkpoint is acknowledged


@dataclass(frozen=True)
class JobRef:
    """Where to find a job in a fresh process: its module, the module's file, its name."""

    module: str
    file: str
    name: str


@dataclass(frozen=True)
class ChildRequest:
    """One attempt to run, picklable: which job, where, at which generation, killed where."""

    job: JobRef
    state_dir: str
    job_id: str
    generation: int
    log_file: str
    kill: str | None = None     # BEFORE, AFTER or None
    kill_at: int = 0            # the k of "the k-th checkpoint of this process"


class KillingContext(Context):
    """A `Context` that reports checkpoints and SIGKILLs its process at the planned one."""

    def __init__(self, *args: Any, request: ChildRequest, events: Connection,
                 started: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request = request
        self._events = events
        self._started = started
        self._calls = 0

    def checkpoint(self, state: dict[str, Any]) -> int:
        """Save `state` as `Context.checkpoint` does, dying before or after it if planned."""
        self._calls += 1
        planned = self._calls == self._request.kill_at
        if planned and self._request.kill == BEFORE:
            kill_self()
        seq = super().checkpoint(state)
        self._events.send(("checkpoint", seq, time.monotonic() - self._started))
        if planned and self._request.kill == AFTER:
            kill_self()
        return seq


def kill_self() -> NoReturn:
    """A real crash: SIGKILL to this very process (no handler, no flush, no clean-up)."""
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL returned")


def run_child(request: ChildRequest, events: Connection) -> None:
    """The child process's target: run the attempt, report, exit with its code."""
    _die_with_parent()
    _redirect_output(Path(request.log_file))
    try:
        code = _attempt(request, events)
    except Exception:
        traceback.print_exc()
        code = EXIT_BROKEN
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _attempt(request: ChildRequest, events: Connection) -> int:
    store = Store(Path(request.state_dir))
    record = store.get(request.job_id)
    if record.state is not JobState.RUNNING or record.generation != request.generation:
        return EXIT_FENCED
    checkpoint = store.read_checkpoint(request.job_id)
    spec = load_job(request.job)
    logger = job_logger(store, record)
    started = time.monotonic()
    context = KillingContext(store, record, checkpoint, logger, request=request,
                             events=events, started=started)
    events.send(("started", checkpoint.seq if checkpoint else 0, 0.0))
    try:
        result = spec.function(context, **record.args)
    except (FencedError, StaleTransitionError):
        return EXIT_FENCED
    except (Exception, SystemExit) as error:
        traceback.print_exc()
        store.finish(request.job_id, request.generation, error=f"{type(error).__name__}: {error}")
    else:
        store.finish(request.job_id, request.generation, result=result)
    events.send(("finished", 0, time.monotonic() - started))
    return EXIT_FINISHED


def load_job(ref: JobRef) -> JobSpec:
    """The `JobSpec` named by `ref`: import its module (by name, else from its file)."""
    module = sys.modules.get(ref.module)
    if module is None:
        try:
            module = importlib.import_module(ref.module)
        except ImportError:
            module = _import_file(ref)
    spec = registered(ref.module).get(ref.name)
    if spec is None:
        raise LookupError(f"module {ref.module} ({ref.file}) defines no job named {ref.name!r}")
    return spec


def _import_file(ref: JobRef) -> Any:
    spec = importlib.util.spec_from_file_location(ref.module, ref.file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load job module {ref.module} from {ref.file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[ref.module] = module
    spec.loader.exec_module(module)
    return module


def warm_up() -> None:
    """A no-op target that starts the forkserver before the first timed run."""


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(EXIT_BROKEN)


def _redirect_output(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)

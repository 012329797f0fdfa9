"""One attempt of one job inside a worker, and the clean-up that lets the worker run the next.

`run_attempt(store, assignment, entries, spool)` checks that the record is
RUNNING at the assignment's generation, reads the last checkpoint, calls the
job with its `Context`, and returns an `Outcome` for the executor to record.
It never finishes the job itself: the executor records outcomes in batches.
The job's own writes (checkpoints, progress) stay fenced writes through its
Context. Its output goes to the job's log if there is one, else to the
worker's spool (`joblog`, `spool`): a quiet success leaves no job folder.

What is reset after every attempt (`Baseline.restore`), so that the next job
finds the worker as the previous one found it:
- every descendant process of the worker, whatever its session (the worker
  is a child subreaper), is killed and reaped before the outcome is sent;
- file descriptors 1 and 2 (the job's log redirection), `sys.stdout` and
  `sys.stderr`, the job's logger (handlers closed, logger forgotten), the
  root logger's handlers and level (the logger is closed by `AttemptLog.end`,
  after the spool is settled);
- the working directory, `os.environ`, the umask, `sys.path`, signal
  handlers and the signal mask.
What is not reset: imported modules and their globals, open files the job did
not close, resource limits, threads. A job that leaves a thread running
makes the worker retire after reporting (the executor starts a fresh one),
and so does a `DurabilityError` (the worker crash-stops) and a job fenced
while it ran (it was stopped at an arbitrary point, by an exception). Jobs that need
a pristine process use `worker_mode = "process"`.

Infrastructure faults: an exception that is, or was caused by, a
`DiskFullError` or `DurabilityError` of the store is reported as kind
"infra", which the executor does not count against the job.

Unreadable checkpoints are never passed over in silence: each one the read
skips (corrupt, unreadable, too big) is a WARNING in the job's log and a
`checkpoint_unreadable` event in the event log, naming the file, the error
and the older checkpoint the attempt resumes from. When none is readable the
attempt fails (kind "failed") with the error naming the files and what to do;
it is not re-run as an infrastructure fault, which would loop for ever.
"""

from __future__ import annotations

import _signal
import contextlib
import logging
import operator
import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harunner.api import Context, JobSpec, to_json
from harunner.api.discovery import find, on_path
from harunner.config import CHECKPOINT_ENV, checkpoint_limit
from harunner.errors import (
    CorruptFileError,
    DiskFullError,
    DurabilityError,
    FencedError,
    HarunnerError,
    StaleTransitionError,
    StoreError,
    UnknownJobError,
)
from harunner.executor.descendants import kill_own_descendants
from harunner.executor.joblog import AttemptLog, open_log
from harunner.executor.spool import Spool
from harunner.store import Checkpoint, JobRecord, JobState, JobStore, Store, job_files
from harunner.store.etcd.gateway import EtcdError, EtcdUnavailable
from harunner.store.events import EventLog

KINDS = ("succeeded", "failed", "fenced", "infra")
_SIGNALS = [int(s) for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]


@dataclass(frozen=True)
class Assignment:
    """Executor -> worker: run this job at this generation."""

    job_id: str
    generation: int


@dataclass(frozen=True)
class Outcome:
    """Worker -> executor: how the attempt ended. `kind` is one of KINDS.

    `result` is the job's JSON-checked return value (succeeded); `error` a
    one-line summary (failed, infra); `retire` asks the executor to let this
    worker go (it exits right after sending); `took` the attempt's own time in
    seconds, measured by the worker (None: not measured).
    """

    job_id: str
    generation: int
    kind: str
    result: Any = None
    error: str | None = None
    retire: bool = False
    took: float | None = None


def run_attempt(store: JobStore, assignment: Assignment, entries: tuple[str, ...],
                spool: Spool | None = None) -> Outcome:
    """Run the attempt and clean up after it; never raises for anything the job does.
    `spool`: the worker's (the job's log is then made only if the attempt needs one)."""
    baseline = Baseline()
    log: AttemptLog | None = None
    outcome: Outcome | None = None
    try:
        record = store.get(assignment.job_id)
        if record.state is not JobState.RUNNING or record.generation != assignment.generation:
            return _outcome(assignment, "fenced")
        log = open_log(store, record, spool)
        outcome = _resume(store, record, log, entries)
    except (FencedError, StaleTransitionError, UnknownJobError):
        outcome = _outcome(assignment, "fenced")
    except (StoreError, DurabilityError, OSError) as error:
        outcome = _outcome(assignment, "infra", error=summarize(error),
                           retire=isinstance(error, DurabilityError))
    finally:
        left_threads = baseline.restore()
        if log is not None:
            log.end(outcome is not None and outcome.kind == "succeeded")
    assert outcome is not None
    if left_threads or (outcome.kind == "fenced" and log is not None):
        return _outcome(assignment, outcome.kind, outcome.result, outcome.error, retire=True)
    return outcome


def _resume(store: JobStore, record: JobRecord, log: AttemptLog,
            entries: tuple[str, ...]) -> Outcome:
    """Read the last checkpoint (loudly), then call the job; no readable one fails the attempt."""
    try:
        checkpoint = read_checkpoint(store, record, log.logger)
    except CorruptFileError as error:
        log.logger.error("attempt %d cannot start: %s", record.attempts, error)
        return _outcome(Assignment(record.job_id, record.generation), "failed",
                        error=summarize(error))
    return _call(store, record, checkpoint, log, entries)


def read_checkpoint(store: JobStore, record: JobRecord,
                    logger: logging.Logger) -> Checkpoint | None:
    """The newest readable checkpoint; each one skipped is logged and recorded as an event."""
    if not isinstance(store, Store):  # a store that keeps checkpoints itself (etcd)
        return store.read_checkpoint(record.job_id)
    folder_text = store.layout.job_folder_text(record.job_id)
    if not os.path.isdir(folder_text):  # no folder, no checkpoint (one stat, no pathlib)
        return None
    skipped: list[tuple[Path, CorruptFileError]] = []
    folder = Path(folder_text)
    try:
        found = job_files.read_job_checkpoint(folder, record.job_id,
                                              lambda path, error: skipped.append((path, error)))
    except CorruptFileError:
        _report_unreadable(store, record, logger, skipped, None)
        raise
    if skipped:
        _report_unreadable(store, record, logger, skipped, found)
    return found


def _report_unreadable(store: JobStore, record: JobRecord, logger: logging.Logger,
                       skipped: list[tuple[Path, CorruptFileError]],
                       found: Checkpoint | None) -> None:
    """A WARNING in the job's log and an event per skipped checkpoint."""
    instead = f"resumes from the older checkpoint {found.seq}" if found else "has none to use"
    events = EventLog(store.layout.events, f"worker-{os.getpid()}")
    try:
        for path, error in skipped:
            logger.warning("checkpoint %s is unreadable and was skipped (%s); attempt %d %s",
                           path.name, error, record.attempts, instead)
            events.emit("checkpoint_unreadable", job=record.job_id, generation=record.generation,
                        file=str(path), error=str(error),
                        resumes_from=found.seq if found else None)
    finally:
        events.close()


def _call(store: JobStore, record: Any, checkpoint: Any, log: AttemptLog,
          entries: tuple[str, ...]) -> Outcome:
    """Call the job function; its result, error, fence or infrastructure fault. The
    "attempt N returned" line is written by `AttemptLog.end`, and only if the log is kept."""
    assignment = Assignment(record.job_id, record.generation)
    logger = log.logger
    context = None
    try:
        spec = _find(entries, record.name)
        context = Context(store, record, checkpoint, logger,
                          max_checkpoint_bytes=_checkpoint_limit())
        log.header(f"attempt {record.attempts} of {record.name} starts"
                   + (f" from checkpoint {checkpoint.seq}" if checkpoint else ""))
        result = spec.function(context, **record.args)
    except FencedError:
        return _fenced(logger, assignment)
    except (Exception, SystemExit) as error:
        if context is not None and context.fenced:
            return _fenced(logger, assignment)
        fault = infrastructure_fault(error)
        if fault is not None:
            logger.warning("attempt %d stopped by an infrastructure fault, not counted "
                           "against the job: %s", record.attempts, summarize(fault))
            return _outcome(assignment, "infra", error=summarize(fault),
                            retire=isinstance(fault, DurabilityError))
        logger.error("attempt %d failed:\n%s", record.attempts, traceback.format_exc())
        return _outcome(assignment, "failed", error=summarize(error))
    if context.fenced:
        return _fenced(logger, assignment)
    try:
        result = to_json(result, f"result of job {record.name}")
    except TypeError as bad:
        logger.error("attempt %d failed: %s", record.attempts, bad)
        return _outcome(assignment, "failed", error=str(bad))
    return _outcome(assignment, "succeeded", result=result)


ETCD_TRANSIENT = (4, 14)  # gRPC DEADLINE_EXCEEDED, UNAVAILABLE ("leader changed")


def infrastructure_fault(error: BaseException) -> BaseException | None:
    """The DiskFullError or DurabilityError that `error` is or was caused by, if any, or an
    etcd that did not answer or was electing a leader (the write was not acknowledged)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, DiskFullError | DurabilityError | EtcdUnavailable) or (
                isinstance(current, EtcdError) and current.code in ETCD_TRANSIENT):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _outcome(assignment: Assignment, kind: str, result: Any = None, error: str | None = None,
             retire: bool = False) -> Outcome:
    return Outcome(assignment.job_id, assignment.generation, kind, result, error, retire)


def _fenced(logger: logging.Logger, assignment: Assignment) -> Outcome:
    logger.warning("fenced: a newer owner has this job; this worker stops, writing nothing")
    return _outcome(assignment, "fenced")


def summarize(error: BaseException) -> str:
    """One line: the exception and where the job raised it."""
    text = f"{type(error).__name__}: {error}".strip()
    frames = traceback.extract_tb(error.__traceback__)
    if frames and not isinstance(error, HarunnerError):
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text


class Baseline:
    """What the worker looked like before the attempt; `restore` puts it back."""

    def __init__(self) -> None:
        _flush_streams()
        self.fds = (os.dup(1), os.dup(2))
        self.streams = (sys.stdout, sys.stderr)
        self.cwd = os.getcwd()
        self.environ = _environ_snapshot()
        self.umask = os.umask(0o077)
        os.umask(self.umask)
        self.path = list(sys.path)
        self.handlers = list(map(_signal.getsignal, _SIGNALS))  # (C: no enum per signal)
        self.mask = _signal.pthread_sigmask(signal.SIG_BLOCK, [])
        self.root_handlers = list(logging.root.handlers)
        self.root_level = logging.root.level
        self.threads = set(threading.enumerate())

    def restore(self) -> bool:
        """Undo what the attempt changed; True if it left a thread running."""
        kill_own_descendants()
        _flush_streams()
        sys.stdout, sys.stderr = self.streams
        for saved, target in zip(self.fds, (1, 2), strict=True):
            os.dup2(saved, target)
            os.close(saved)
        for handler in logging.root.handlers:
            if handler not in self.root_handlers:
                with contextlib.suppress(Exception):
                    handler.close()
        logging.root.handlers[:] = self.root_handlers
        logging.root.setLevel(self.root_level)
        with contextlib.suppress(OSError):
            os.chdir(self.cwd)
        if _environ_snapshot() != self.environ:
            os.environ.clear()
            os.environ.update({os.fsdecode(k): os.fsdecode(v) for k, v in self.environ.items()})
        os.umask(self.umask)
        sys.path[:] = self.path
        now = list(map(_signal.getsignal, _SIGNALS))
        if any(map(operator.is_not, now, self.handlers)):  # the job changed one: put it back
            for signum, action, current in zip(_SIGNALS, self.handlers, now, strict=True):
                if action is not None and current is not action:
                    with contextlib.suppress(OSError, ValueError, TypeError):
                        signal.signal(signum, action)
        _signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
        return any(t.is_alive() for t in threading.enumerate() if t not in self.threads)


def _environ_snapshot() -> dict[bytes, bytes]:
    """`os.environ` as the bytes it holds (copied and compared at C speed, once per attempt)."""
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        return dict(data)
    return {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}


_SPECS: dict[tuple[tuple[str, ...], str], JobSpec] = {}
# (entries, sys.path at the start of an attempt) -> sys.path once `on_path` ran on it. The
# baseline puts sys.path back after every attempt, so each attempt starts from the same one
# and replaying the result spares `on_path`'s resolve() of every entry (two realpath walks).
_PATHS: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
_LIMITS: dict[str | None, int] = {}  # the raw CHECKPOINT_ENV value -> the limit it gives
_REMEMBER = 64  # at most this many sys.path and limit variants remembered


def _find(entries: tuple[str, ...], name: str) -> JobSpec:
    """`discovery.find`, remembered for the worker's life (a job module runs once per
    process anyway); a name not seen yet is looked up afresh."""
    spec = _SPECS.get((entries, name))
    if spec is None:
        spec = _SPECS[(entries, name)] = find(entries, name)
    else:
        _on_path(entries)
    return spec


def _on_path(entries: tuple[str, ...]) -> None:
    """`discovery.on_path(entries)`, replayed when sys.path is as it was last time."""
    key = (entries, tuple(sys.path))
    found = _PATHS.get(key)
    if found is not None:
        sys.path[:] = found
        return
    on_path(entries)
    if len(_PATHS) >= _REMEMBER:
        _PATHS.clear()
    _PATHS[key] = list(sys.path)


def _checkpoint_limit() -> int:
    """`config.checkpoint_limit()`, parsed once per value of the variable (a bad one raises
    each time: it is never remembered)."""
    raw = os.environ.get(CHECKPOINT_ENV)
    limit = _LIMITS.get(raw)
    if limit is None:
        limit = checkpoint_limit()
        if len(_LIMITS) >= _REMEMBER:
            _LIMITS.clear()
        _LIMITS[raw] = limit
    return limit


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()

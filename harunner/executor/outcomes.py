"""Turning how an attempt ended into what the store records (sans I/O, but for the log line).

The executor hands every attempt that ended in one turn to `plan(...)`,
which says, for each, what to write: a `Finish` (result, or error with the
retry time of the record's policy), nothing (fenced, killed), or a resume
(an infrastructure fault). The rule of faults (docs/executor.md):

- The job's fault, a failed attempt that counts against `retries` and grows
  the back-off: the job raised (kind "failed"); the worker exited by itself
  with any code or died by any signal but SIGKILL (the job called os._exit,
  crashed in C code, was killed by its own SIGTERM or SIGSEGV): "crashed"; the
  attempt ran past its timeout: "timeout".
- An infrastructure fault, not counted: the store refused a write for want of
  space or could not make it durable (`DiskFullError`, `DurabilityError`,
  reported by the worker as kind "infra"), or the worker died by SIGKILL that
  the executor did not send (an operator, the OOM killer, a dead forkserver).
  The record stays RUNNING at its generation with the attempt counter
  unchanged; the executor re-runs the attempt from its last checkpoint after
  `resume_delay(n, killed)`, and writes one line saying so in the job's log.

Caps: the wait before a re-run doubles from RESUME_FIRST with each fault of
the attempt, up to KILLED_RESUME_MAX after an outside SIGKILL (nothing to
wait for: re-run promptly) and RESUME_MAX after a full disk or a failed fsync
(give the operator time to free space). After KILL_LIMIT SIGKILLs in a row
of one attempt, the next counts as "crashed", so a job that the OOM killer
always stops does not loop for ever; a job re-run after a kill therefore waits
at most KILLED_RESUME_MAX, and KILL_LIMIT outside kills of one attempt cost it
no retry.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harunner import metrics
from harunner.api import retry_at
from harunner.executor import joblog
from harunner.executor.worker import describe_exit
from harunner.store import JobRecord

KILL_LIMIT = 10
RESUME_FIRST = 0.05
RESUME_MAX = 2.0
KILLED_RESUME_MAX = 0.4


@dataclass(frozen=True)
class Finish:
    """One end of an attempt to record: `Store.finish(job_id, generation, **...)`."""

    job_id: str
    generation: int
    result: Any = None
    error: str | None = None
    retry_at: float | None = None


@dataclass(frozen=True)
class Ended:
    """How one attempt ended, before recording: kind, details, the worker's exit code."""

    record: JobRecord
    kind: str  # succeeded | failed | crashed | timeout | fenced | infra
    result: Any = None
    error: str | None = None
    exitcode: int | None = None


def from_death(record: JobRecord, exitcode: int, timed_out: bool, kills: int) -> Ended:
    """An attempt whose worker died before reporting; `kills`: SIGKILLs of it so far."""
    if timed_out:
        return Ended(record, "timeout", error=f"timed out after {record.timeout:g}s",
                     exitcode=exitcode)
    if exitcode == -signal.SIGKILL and kills < KILL_LIMIT:
        return Ended(record, "infra", error="worker killed by SIGKILL from outside the job "
                     "(an operator, the OOM killer or a dead forkserver)", exitcode=exitcode)
    return Ended(record, "crashed", error=f"worker {describe_exit(exitcode)}", exitcode=exitcode)


def finish_of(ended: Ended, now: float) -> Finish | None:
    """What to write for `ended` (wall-clock `now` for the retry time); None: write nothing.

    Also measures the attempt: from its record's last change (claimed or
    taken over) to `now`, by kind.
    """
    record = ended.record
    metrics.attempt_ended(record.name, ended.kind, now - record.updated_at)
    if ended.kind == "succeeded":
        return Finish(record.job_id, record.generation, result=ended.result)
    if ended.kind in ("failed", "crashed", "timeout"):
        return Finish(record.job_id, record.generation, error=ended.error,
                      retry_at=retry_at(record, now))
    return None


def resume_delay(faults: int, killed: bool = False) -> float:
    """Seconds to wait before re-running an attempt after its `faults`-th infrastructure fault
    (`killed`: the worker was SIGKILLed from outside, a smaller cap)."""
    cap = KILLED_RESUME_MAX if killed else RESUME_MAX
    return float(min(cap, RESUME_FIRST * 2 ** max(0, min(faults, 64) - 1)))


def log_infra(path: Path, ended: Ended, delay: float, wall: float | None = None) -> None:
    """One line in the job's log: the fault, and that the attempt resumes, not counted."""
    record = ended.record
    data = joblog.line(record, "WARNING", f"infrastructure fault: {ended.error}; not counted "
                       f"against the job: attempt {record.attempts} resumes from its last "
                       f"checkpoint in {delay:g}s", wall)
    try:
        with open(path, "ab") as handle:
            handle.write(data)
    except OSError:
        pass  # the disk may be full: the record still says RUNNING, nothing is lost

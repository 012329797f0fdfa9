"""How an attempt ended, as the executor reports it to its runner (`WorkerExit`)."""

from __future__ import annotations

from dataclasses import dataclass

from harunner.store import JobRecord, JobState

OUTCOMES = ("succeeded", "failed", "retrying", "crashed", "timeout", "fenced", "killed", "infra")


@dataclass(frozen=True)
class WorkerExit:
    """How an attempt ended: `outcome` is one of OUTCOMES.

    `exitcode` is the worker's exit code (< 0: a signal) when the worker died
    or was killed, None when the worker reported the outcome itself. "infra":
    not recorded; the job stays in `running()` and is re-run from its checkpoint.
    """

    job_id: str
    generation: int
    exitcode: int | None
    outcome: str


def label(kind: str, record: JobRecord) -> str:
    """The WorkerExit outcome for a recorded attempt of `kind` that left `record`."""
    if kind == "succeeded":
        return "succeeded" if record.state is JobState.SUCCEEDED else "failed"
    if kind == "failed":
        return "retrying" if record.state is JobState.PENDING else "failed"
    return kind

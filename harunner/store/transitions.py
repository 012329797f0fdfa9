"""Each operation on a job as a pure function: the record before, the record after (no I/O).

The store reads a record, calls one of these and writes the result with a
compare-and-set on the old generation and state. Each function raises
`StaleTransitionError` (or `FencedError`, via `check_writer`) when the
operation does not apply, with a message naming the job, what it found and
what was expected; returning the record unchanged means "nothing to write".
Batches and single calls share these functions, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harunner.errors import JobArgumentError, StaleTransitionError
from harunner.store.model import (
    JobRecord,
    JobState,
    Owner,
    advance,
    check_writer,
    owner_name,
    stamp,
    to_json,
)


@dataclass(frozen=True)
class Submission:
    """One job to submit (`Store.submit_many`); an explicit `job_id` makes it idempotent."""

    name: str
    args: dict[str, Any]
    retries: int = 0
    backoff: float = 1.0
    timeout: float | None = None
    job_id: str | None = None


@dataclass(frozen=True)
class Assignment:
    """PENDING@`expected_generation` → RUNNING@`expected_generation`+1 owned by `owner`."""

    job_id: str
    owner: Owner
    expected_generation: int


@dataclass(frozen=True)
class TakeOver:
    """Raise a RUNNING job to `generation` with `owner` (a decided Paxos instance)."""

    job_id: str
    generation: int
    owner: Owner


@dataclass(frozen=True)
class Outcome:
    """The end of an attempt at `generation`: a result, an error, or an error with a retry."""

    job_id: str
    generation: int
    result: Any = None
    error: str | None = None
    retry_at: float | None = None
    # The record the owner holds (RUNNING at `generation`, as its claim or take-over wrote
    # it): the local store then writes without reading the row first. Safe because a row
    # is RUNNING at a given generation exactly once (every transition changes the state or
    # the generation), and the UPDATE still compares both; a miss reads the row.
    held: JobRecord | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Claim:
    """Assign up to `room` due PENDING jobs (earliest `not_before` first) to `owner`."""

    owner: Owner
    room: int
    wall: float  # due means not_before <= wall
    skip: tuple[str, ...] = ("__scheduler__",)


@dataclass(frozen=True)
class Release:
    """Give back a job `owner` claimed at `generation` and never started: PENDING again."""

    job_id: str
    generation: int
    owner: Owner


def job_of(item: Any) -> str:
    """The job an item of a batch is about (an item is a job id or has `job_id`)."""
    return item if isinstance(item, str) else str(item.job_id)


def checked(item: Submission) -> Submission:
    """`item` if its arguments are a JSON object; `JobArgumentError` otherwise."""
    encoded_args(item)
    return item


def encoded_args(item: Submission) -> str:
    """The JSON text of `item`'s arguments (the `args` column) if they are a JSON object;
    `JobArgumentError` otherwise (the check and the encoding a row needs, done once)."""
    try:
        text = to_json(item.args)
    except (TypeError, ValueError) as error:
        raise JobArgumentError(f"arguments of {item.name} are not JSON: {error}") from None
    if not isinstance(item.args, dict):
        raise JobArgumentError(f"arguments of {item.name} must be a dict of names to values")
    return text


def created(job_id: str, item: Submission, now: float) -> JobRecord:
    return JobRecord(job_id=job_id, name=item.name, args=item.args, state=JobState.PENDING,
                     retries=item.retries, backoff=item.backoff, timeout=item.timeout,
                     created_at=now, updated_at=now,
                     history=(f"{stamp(now)} pending@0 submitted",))


def assigned(record: JobRecord, item: Assignment, now: float) -> JobRecord:
    expected = item.expected_generation
    if record.state is not JobState.PENDING or record.generation != expected:
        raise StaleTransitionError(
            f"job {record.job_id}: assign expected pending@{expected}, found "
            f"{record.state.value}@{record.generation}")
    return advance(record, JobState.RUNNING, now=now, note=f"assigned to {owner_name(item.owner)}",
                   generation=expected + 1, owner=item.owner, attempts=record.attempts + 1)


def taken_over(record: JobRecord, item: TakeOver, now: float) -> JobRecord:
    running = record.state is JobState.RUNNING
    if running and (record.generation, record.owner) == (item.generation, item.owner):
        return record
    if not running or record.generation >= item.generation:
        raise StaleTransitionError(
            f"job {record.job_id} is {record.state.value}@{record.generation} owned by "
            f"{owner_name(record.owner)}; {owner_name(item.owner)} cannot take it over at "
            f"generation {item.generation} (needs a running job below that generation)")
    return advance(record, JobState.RUNNING, now=now,
                   note=f"taken over by {owner_name(item.owner)}",
                   generation=item.generation, owner=item.owner)


def released(record: JobRecord, item: Release, now: float) -> JobRecord:
    """RUNNING@g owned by `item.owner` -> PENDING@g, the claim not counted as an attempt
    (its worker never started: there is no writer at g to fence)."""
    if (record.state is not JobState.RUNNING or record.generation != item.generation
            or record.owner != item.owner):
        raise StaleTransitionError(
            f"job {record.job_id}: release expected running@{item.generation} owned by "
            f"{owner_name(item.owner)}, found {record.state.value}@{record.generation} owned "
            f"by {owner_name(record.owner)}")
    return advance(record, JobState.PENDING, now=now,
                   note=f"given back by {owner_name(item.owner)} before it started",
                   owner=None, attempts=max(0, record.attempts - 1))


def finished(record: JobRecord, item: Outcome, now: float) -> JobRecord:
    check_writer(record, item.generation)
    error = item.error
    if error is not None and item.retry_at is not None:
        return advance(record, JobState.PENDING, now=now, note=f"retry: {error}"[:200],
                       owner=None, not_before=item.retry_at, error=error)
    if error is not None:
        return advance(record, JobState.FAILED, now=now, note="failed", error=error)
    try:
        to_json(item.result)
    except (TypeError, ValueError) as bad:
        message = f"result is not JSON-serialisable: {bad}"
        return advance(record, JobState.FAILED, now=now, note="failed", error=message)
    return advance(record, JobState.SUCCEEDED, now=now, note="succeeded",
                   result=item.result, error=None)


def cancelled(record: JobRecord, _item: object, now: float) -> JobRecord:
    if record.state.finished:
        raise StaleTransitionError(f"job {record.job_id} is already {record.state.value}; "
                                   "there is nothing to cancel")
    return advance(record, JobState.CANCELLED, now=now, note="cancelled",
                   generation=record.generation + 1)


def retried(record: JobRecord, _item: object, now: float) -> JobRecord:
    if record.state not in (JobState.FAILED, JobState.CANCELLED):
        raise StaleTransitionError(f"job {record.job_id} is {record.state.value}; only a failed "
                                   "or cancelled job can be retried")
    return advance(record, JobState.PENDING, now=now, note="retried by the user",
                   generation=record.generation + 1, owner=None, attempts=0, not_before=0.0,
                   result=None)

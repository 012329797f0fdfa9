"""The job lifecycle as plain data: states, legal transitions, records, fencing rule, codec.

No I/O here (no files, locks or clocks): `harunner.store` is the shell that
reads and writes these values under the job's lock. Invariants: a state
changes only through `advance`, which follows `TRANSITIONS`; a mutation is
allowed only by `check_writer` (the writer's generation equals the record's and
the job is RUNNING); a payload is turned into a value only after its shape and
its job id were checked, otherwise `CorruptFileError`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from harunner.errors import CorruptFileError, FencedError, StaleTransitionError, StoreError

HISTORY_LIMIT = 50

SCHEDULER_JOB = "__scheduler__"


class JobState(str, Enum):
    """Where a job is in its life. Transitions are in `TRANSITIONS`."""

    PENDING = "pending"      # waiting for the scheduler (new, or a retry waiting for not_before)
    RUNNING = "running"      # owned by a runner at `generation`
    SUCCEEDED = "succeeded"  # finished with a result
    FAILED = "failed"        # finished with an error, retries exhausted
    CANCELLED = "cancelled"  # cancelled by the user

    @property
    def finished(self) -> bool:
        """No runner acts on the job any more (a user's `retry` may make it pending again)."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.RUNNING, JobState.PENDING, JobState.SUCCEEDED,
                                 JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset({JobState.PENDING}),      # only by an explicit user retry
    JobState.CANCELLED: frozenset({JobState.PENDING}),   # only by an explicit user retry
}


@dataclass(frozen=True)
class Owner:
    """A runner incarnation: slot number and the incarnation counter of that slot."""

    slot: int
    incarnation: int


@dataclass(frozen=True)
class Progress:
    done: float
    total: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class JobRecord:
    """A job's durable record."""

    job_id: str
    name: str
    args: dict[str, Any]
    state: JobState
    generation: int = 0
    owner: Owner | None = None
    attempts: int = 0
    retries: int = 0
    backoff: float = 1.0
    timeout: float | None = None
    not_before: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0
    result: Any = None
    error: str | None = None
    history: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Checkpoint:
    job_id: str
    generation: int
    seq: int
    state: dict[str, Any]


def advance(record: JobRecord, to: JobState, *, now: float, note: str,
            **changes: Any) -> JobRecord:
    """`record` moved to state `to` with `changes`; `StaleTransitionError` on an illegal edge."""
    if to not in TRANSITIONS[record.state]:
        raise StaleTransitionError(f"job {record.job_id} is {record.state.value}; it cannot "
                                   f"become {to.value}")
    generation = changes.get("generation", record.generation)
    entry = f"{stamp(now)} {to.value}@{generation} {note}"
    return _replaced(record, state=to, updated_at=now, **changes,
                     history=(*record.history, entry)[-HISTORY_LIMIT:])


def _replaced(record: JobRecord, **changes: Any) -> JobRecord:
    """`dataclasses.replace` for a JobRecord, at a quarter of its cost: the record has no
    `__post_init__` and its fields are plain, so a copy of its fields with `changes` is
    what `replace` would build (a field name that does not exist raises the same way)."""
    unknown = changes.keys() - _FIELDS
    if unknown:
        raise TypeError(f"JobRecord has no field {sorted(unknown)[0]!r}")
    new = object.__new__(JobRecord)
    new.__dict__.update(record.__dict__, **changes)
    return new


_FIELDS = frozenset(f.name for f in dataclasses.fields(JobRecord))
if hasattr(JobRecord, "__post_init__") or hasattr(JobRecord, "__slots__"):
    raise TypeError("JobRecord gained __post_init__ or __slots__: `_replaced` must call it")


def stamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def check_writer(record: JobRecord, generation: int) -> None:
    """Refuse a mutation at `generation` unless it is the RUNNING job's current generation."""
    job, current = record.job_id, record.generation
    if generation < current:
        raise FencedError(f"job {job}: write at generation {generation} refused, the job is at "
                          f"generation {current}: a newer owner has taken this job over")
    if generation > current:
        raise StaleTransitionError(f"job {job}: write at generation {generation} refused, the "
                                   f"job is at generation {current}; generation {generation} "
                                   "was never granted")
    if record.state is not JobState.RUNNING:
        raise StaleTransitionError(f"job {job} is {record.state.value}, not running; write at "
                                   f"generation {generation} refused")


# One encoder for the process: `json.dumps` with options builds a new one per call, and
# every row written encodes three values (3.8 -> 2.0 us each here).
_ENCODER = json.JSONEncoder(sort_keys=True, allow_nan=False, separators=(",", ":"))


def to_json(value: Any) -> str:
    return "null" if value is None else _ENCODER.encode(value)


def owner_name(owner: Owner | None) -> str:
    return "nobody" if owner is None else f"slot {owner.slot}/incarnation {owner.incarnation}"


def record_to_dict(record: JobRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data["state"] = record.state.value
    data["history"] = list(record.history)
    return data


_NUMBER = (int, float)
_RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "job_id": (str,), "name": (str,), "args": (dict,), "state": (str,), "generation": (int,),
    "owner": (dict, type(None)), "attempts": (int,), "retries": (int,), "backoff": _NUMBER,
    "timeout": (*_NUMBER, type(None)), "not_before": _NUMBER, "created_at": _NUMBER,
    "updated_at": _NUMBER, "error": (str, type(None)), "history": (list,),
}


def _shape_error(data: Any, job_id: str, fields: dict[str, tuple[type, ...]]) -> str | None:
    """Why `data` is not a payload of job `job_id` with `fields`, or None if it is."""
    if not isinstance(data, dict):
        return f"payload is a {type(data).__name__}, not an object"
    for key, types in fields.items():
        if key not in data:
            return f"field {key!r} is missing"
        value = data[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"field {key!r} is {value!r}"
    if data["job_id"] != job_id:
        return f"names job {data['job_id']!r}, not {job_id!r} (misdirected write?)"
    return None


def record_from(data: Any, job_id: str) -> JobRecord:
    """The JobRecord in a record payload; `CorruptFileError` if it does not fit."""
    problem = _shape_error(data, job_id, _RECORD_FIELDS)
    if problem is None and data["state"] not in {state.value for state in JobState}:
        problem = f"unknown state {data['state']!r}"
    owner = data.get("owner") if problem is None else None
    if owner is not None and not (set(owner) == {"slot", "incarnation"} and all(
            type(value) is int for value in owner.values())):
        problem = f"bad owner {owner!r}"
    if problem is None and not all(isinstance(entry, str) for entry in data["history"]):
        problem = "history holds a non-string"
    if problem is not None:
        raise CorruptFileError(f"record of job {job_id}: {problem}")
    known = {f.name for f in dataclasses.fields(JobRecord)}
    values = {key: value for key, value in data.items() if key in known}
    return JobRecord(**{**values, "state": JobState(data["state"]),
                        "owner": None if owner is None else Owner(**owner),
                        "history": tuple(data["history"])})


_CHECKPOINT_FIELDS: dict[str, tuple[type, ...]] = {
    "job_id": (str,), "generation": (int,), "seq": (int,), "state": (dict,)}


def checkpoint_from(data: Any, job_id: str, seq: int) -> Checkpoint:
    """The Checkpoint in the payload of file ckpt.<seq>; `CorruptFileError` if it does not fit."""
    problem = _shape_error(data, job_id, _CHECKPOINT_FIELDS)
    if problem is None and data["seq"] != seq:
        problem = f"holds seq {data['seq']} in the file of seq {seq} (misdirected write?)"
    if problem is not None:
        raise CorruptFileError(f"checkpoint {seq} of job {job_id}: {problem}")
    return Checkpoint(job_id=job_id, generation=data["generation"], seq=seq, state=data["state"])


_PROGRESS_FIELDS: dict[str, tuple[type, ...]] = {
    "job_id": (str,), "generation": (int,), "done": _NUMBER,
    "total": (*_NUMBER, type(None)), "message": (str, type(None))}


def progress_from(data: Any, job_id: str) -> Progress:
    problem = _shape_error(data, job_id, _PROGRESS_FIELDS)
    if problem is not None:
        raise CorruptFileError(f"progress of job {job_id}: {problem}")
    return Progress(done=data["done"], total=data["total"], message=data["message"])


def state_json(job_id: str, state: dict[str, Any]) -> str:
    """`state` as JSON text; `StoreError` if it is not a JSON object."""
    if not isinstance(state, dict):
        raise StoreError(f"checkpoint of job {job_id} must be a dict, not {type(state).__name__}")
    try:
        return to_json(state)
    except (TypeError, ValueError) as error:
        raise StoreError(f"checkpoint of job {job_id} is not JSON-serialisable: {error}") from None

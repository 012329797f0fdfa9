"""Job records as rows of table `jobs`, and back: the codec of the database, no I/O.

Invariant: a row becomes a `JobRecord` only after its state, owner and JSON
columns were checked; anything else is `CorruptFileError` naming the job, so a
damaged row is reported and skipped by listings, never half-read.
"""

from __future__ import annotations

import json
from typing import Any

from harunner.errors import CorruptFileError
from harunner.store.model import JobRecord, JobState, Owner, to_json

COLUMNS = ("job_id", "name", "state", "generation", "owner_slot", "owner_incarnation",
           "attempts", "retries", "backoff", "timeout", "not_before", "created_at",
           "updated_at", "args", "result", "error", "history", "seq")
SELECT = f"SELECT {', '.join(COLUMNS)} FROM jobs"
# A brief record (the change feed): every column but the JSON ones (args, result, history).
BRIEF_COLUMNS = tuple(c for c in COLUMNS if c not in ("args", "result", "history"))
SELECT_BRIEF = f"SELECT {', '.join(BRIEF_COLUMNS)} FROM jobs"
INSERT = (f"INSERT INTO jobs ({', '.join(COLUMNS)}) "
          f"VALUES ({', '.join('?' for _ in COLUMNS)})")
# The compare-and-set of every transition: the row changes only if it is still in the
# generation and state the new record was computed from.
UPDATE = (f"UPDATE jobs SET {', '.join(f'{c}=?' for c in COLUMNS[1:])} "
          "WHERE job_id=? AND generation=? AND state=?")
# The columns a transition (`model.advance`) changes; the others are the submission's.
MOVING = ("state", "generation", "owner_slot", "owner_incarnation", "attempts", "not_before",
          "updated_at", "result", "error", "history", "seq")
UPDATE_MOVING = (f"UPDATE jobs SET {', '.join(f'{c}=?' for c in MOVING)} "
                 "WHERE job_id=? AND generation=? AND state=?")
_STATES = {state.value for state in JobState}
_SEQ_MOVING, _SEQ_ALL = MOVING.index("seq"), COLUMNS.index("seq") - 1  # in `update`'s parameters


def to_row(record: JobRecord, seq: int, args_json: str | None = None) -> tuple[Any, ...]:
    """The column values of `record`, stamped with change number `seq` (`args_json`:
    `record.args` already encoded by `to_json`, if the caller has it)."""
    (state, generation, slot, incarnation, attempts, not_before, updated_at, result, error,
     history, seq) = _moving(record, seq)
    return (record.job_id, record.name, state, generation, slot, incarnation, attempts,
            record.retries, float(record.backoff), record.timeout, not_before,
            float(record.created_at), updated_at,
            to_json(record.args) if args_json is None else args_json, result, error, history,
            seq)


def _moving(record: JobRecord, seq: int) -> tuple[Any, ...]:
    """The values of the MOVING columns of `record`, in that order."""
    owner = record.owner
    return (record.state.value, record.generation, None if owner is None else owner.slot,
            None if owner is None else owner.incarnation, record.attempts,
            float(record.not_before), float(record.updated_at), to_json(record.result),
            record.error, to_json(list(record.history)), seq)


def update_parameters(new: JobRecord, old: JobRecord, seq: int) -> tuple[Any, ...]:
    """Parameters of `UPDATE`: the new values, then the fence (id, old generation, old state)."""
    return (*to_row(new, seq)[1:], old.job_id, old.generation, old.state.value)


def update(new: JobRecord, old: JobRecord, seq: int) -> tuple[str, tuple[Any, ...]]:
    """The compare-and-set `UPDATE` of `old` to `new` and its parameters: only the moving
    columns when the submission's own are unchanged (a transition keeps them: its args
    are the same object, so they are not encoded again), else every column."""
    if (new.args is not old.args or new.name != old.name or new.retries != old.retries
            or new.backoff != old.backoff or new.timeout != old.timeout
            or new.created_at != old.created_at):
        return UPDATE, update_parameters(new, old, seq)
    return UPDATE_MOVING, (*_moving(new, seq), old.job_id, old.generation, old.state.value)


def prepared_update(new: JobRecord, old: JobRecord) -> tuple[str, list[Any], int]:
    """`update(new, old, seq)` made before the change number is known: (the statement, its
    parameters, the index of the change number in them, to be set in the transaction)."""
    sql, parameters = update(new, old, 0)
    return sql, list(parameters), (_SEQ_MOVING if sql is UPDATE_MOVING else _SEQ_ALL)


def from_row(row: Any) -> tuple[JobRecord, int]:
    """(the record, its change number) of one `SELECT` row; `CorruptFileError` if it is bad."""
    try:
        return _decode(row), int(row[17])
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise CorruptFileError(f"record of job {row[0]} in the job database: {error}; "
                               "cancel or prune the job") from None


def from_brief_row(row: Any) -> tuple[JobRecord, int]:
    """(a brief record, its change number) of one `SELECT_BRIEF` row: args {}, result None,
    history () (never decoded); `CorruptFileError` if a column it has is bad."""
    (job_id, name, state, generation, slot, incarnation, attempts, retries, backoff, timeout,
     not_before, created_at, updated_at, error, seq) = row
    try:
        if state not in _STATES:
            raise ValueError(f"unknown state {state!r}")
        owner = None if slot is None else Owner(_integer(slot), _integer(incarnation))
        return JobRecord(
            job_id=job_id, name=name, args={}, state=JobState(state),
            generation=_integer(generation), owner=owner, attempts=_integer(attempts),
            retries=_integer(retries), backoff=float(backoff),
            timeout=None if timeout is None else float(timeout), not_before=float(not_before),
            created_at=float(created_at), updated_at=float(updated_at), result=None,
            error=error, history=()), int(seq)
    except (ValueError, TypeError) as bad:
        raise CorruptFileError(f"record of job {job_id} in the job database: {bad}; "
                               "cancel or prune the job") from None


def never_owned(row: Any) -> bool:
    """A `SELECT_BRIEF` row of a job submitted and never claimed (PENDING at generation 0):
    nothing any runner owns, so the change feed leaves it out."""
    return row[2] == "pending" and row[3] == 0


def _decode(row: Any) -> JobRecord:
    (job_id, name, state, generation, slot, incarnation, attempts, retries, backoff, timeout,
     not_before, created_at, updated_at, args, result, error, history, _) = row
    if state not in _STATES:
        raise ValueError(f"unknown state {state!r}")
    owner = None if slot is None else Owner(_integer(slot), _integer(incarnation))
    args, history = json.loads(args), json.loads(history)
    if not isinstance(args, dict):
        raise ValueError(f"args is {args!r}, not an object")
    if not isinstance(history, list) or not all(isinstance(e, str) for e in history):
        raise ValueError("history is not a list of strings")
    return JobRecord(
        job_id=job_id, name=name, args=args, state=JobState(state),
        generation=_integer(generation), owner=owner, attempts=_integer(attempts),
        retries=_integer(retries), backoff=float(backoff),
        timeout=None if timeout is None else float(timeout), not_before=float(not_before),
        created_at=float(created_at), updated_at=float(updated_at),
        result=None if result is None else json.loads(result), error=error,
        history=tuple(history))


def _integer(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"{value!r} is not an integer")
    return value

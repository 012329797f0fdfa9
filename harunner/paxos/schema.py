"""Strict readers from parsed JSON to Paxos types, shared by the codec and storage.

Every reader takes an untrusted object (whatever `json.loads` produced) and
returns a typed value or raises `SchemaError` with a short reason; nothing
else can escape. Numbers must be real ints (not bools, not floats) within
bounds; strings and lists have length limits.
"""

from __future__ import annotations

import re
from typing import Any

from harunner.paxos.ballot import Ballot, InstanceKey, Value

# The one set of bounds for every number a peer can send. The codec, the node
# and the loader of the Paxos files (harunner.store.paxos_files) all use these,
# so whatever the codec accepts and the node may persist, the loader loads.
MAX_ROUND = 2**62
"""Highest round on the wire, in a vote and in a proposer file."""
ROUND_STEP = 2**24
"""Most one message may raise a round above what its receiver already knows.

An acceptor refuses a ballot more than ROUND_STEP above the highest round in
its state, and a proposer takes at most ROUND_STEP from a Nack above the
ballot the Nack answers. So a forged frame moves rounds by at most this much,
and using up the rounds takes MAX_ROUND / ROUND_STEP = 2**38 durable steps;
an honest proposer gets that far ahead of every acceptor only after 2**24
ballots that reached none of them (years of retries)."""
MAX_MIN_ROUND = MAX_ROUND + 1
"""An acceptor's `min_round` is one above a round (see `repaired`)."""
MAX_SLOT = 1023
MAX_GENERATION = 2**53
MAX_FLOOR = MAX_GENERATION + 1
"""A compaction floor is one above the last generation of a job."""
MAX_INCARNATION = 2**53
MAX_JOB_ID = 200
MAX_ITEMS = 1024
"""Most instances in one message (proposers split larger batches: BATCH_LIMIT)."""
MAX_ITEM_BYTES = 320
"""Most bytes one instance takes in a frame (a Promise report with every field at its bound
and a 200-character job id is 273)."""


class SchemaError(ValueError):
    """An object does not have the expected shape; `reason` is a short category."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def integer(obj: Any, low: int, high: int, what: str) -> int:
    """An int in [low, high]."""
    if type(obj) is not int:
        raise SchemaError("wrong-type", f"{what} must be an integer, got {type(obj).__name__}")
    if not low <= obj <= high:
        raise SchemaError("out-of-range", f"{what}={obj} not in [{low}, {high}]")
    return obj


def text(obj: Any, max_length: int, what: str) -> str:
    """A non-empty str of at most `max_length` characters."""
    if type(obj) is not str:
        raise SchemaError("wrong-type", f"{what} must be a string")
    if not 0 < len(obj) <= max_length:
        raise SchemaError("out-of-range", f"{what} length {len(obj)} not in [1, {max_length}]")
    return obj


def array(obj: Any, length: int | None, what: str, max_items: int = MAX_ITEMS) -> list[Any]:
    """A list of exactly `length` items, or of at most `max_items` if `length` is None."""
    if type(obj) is not list:
        raise SchemaError("wrong-type", f"{what} must be a list")
    if length is not None and len(obj) != length:
        raise SchemaError("wrong-shape", f"{what} must have {length} items, has {len(obj)}")
    if len(obj) > max_items:
        raise SchemaError("too-many", f"{what} has {len(obj)} items, limit {max_items}")
    return obj


def record(obj: Any, fields: set[str], what: str) -> dict[str, Any]:
    """A dict with exactly the keys `fields`."""
    if type(obj) is not dict:
        raise SchemaError("wrong-type", f"{what} must be an object")
    if set(obj) != fields:
        raise SchemaError("wrong-fields", f"{what} has fields {sorted(obj)}, "
                          f"expected {sorted(fields)}")
    return obj


def slot(obj: Any, what: str = "slot") -> int:
    return integer(obj, 0, MAX_SLOT, what)


def ballot(obj: Any) -> Ballot:
    """`[round, slot]`."""
    round_, owner = array(obj, 2, "ballot")
    return Ballot(integer(round_, 0, MAX_ROUND, "round"), slot(owner, "ballot slot"))


def value(obj: Any) -> Value:
    """`[slot, incarnation]`."""
    owner, incarnation = array(obj, 2, "value")
    return Value(slot(owner, "value slot"), integer(incarnation, 0, MAX_INCARNATION,
                                                    "incarnation"))


def optional_value(obj: Any) -> Value | None:
    return None if obj is None else value(obj)


JOB_ID = re.compile(r"[A-Za-z0-9_-]+")


def key(job_id: Any, generation: Any) -> InstanceKey:
    """An instance key whose job id could name a job in the store (letters, digits, - and _)."""
    job_id = text(job_id, MAX_JOB_ID, "job_id")
    if JOB_ID.fullmatch(job_id) is None:
        raise SchemaError("bad-job-id", "job_id has characters a job id never has")
    return job_id, integer(generation, 0, MAX_GENERATION, "generation")


def keys(obj: Any) -> tuple[InstanceKey, ...]:
    """`[[job_id, generation], ...]` without repeats."""
    found = tuple(key(*array(item, 2, "key")) for item in array(obj, None, "keys"))
    return unique(found)


def unique(found: tuple[InstanceKey, ...]) -> tuple[InstanceKey, ...]:
    """`found`, if no key repeats."""
    if len(set(found)) != len(found):
        raise SchemaError("duplicate-key", "an instance appears twice")
    return found


def dump_ballot(b: Ballot) -> list[int]:
    return [b.round, b.slot]


def dump_value(v: Value | None) -> list[int] | None:
    return None if v is None else [v.slot, v.incarnation]

"""Compare-and-set transactions on job records in etcd: plan, chunk, commit, decide.

A change of job records is computed by the pure functions of
`harunner.store.transitions` from records read in etcd, then written by one txn
that compares every written job key's mod_revision with the one it was computed
from (0: the key must be absent). The same txn rewrites the job's fence key and
its index keys, and the feed's `head` key, so indexes and fences never disagree
with the record. A txn that fails its compare returns the fresh records in its
failure branch; the change is computed again from them (bounded attempts).

Invariants:
- one txn per chunk; a chunk is all or nothing; chunks hold at most
  `(max_txn_ops - 1) // ops_per_item` items (etcd's `--max-txn-ops`, default 128),
  and a chunk whose records exceed `budget` bytes is halved until it fits (or
  is one job);
- a stale writer's txn fails inside etcd: its compare names a revision that a
  newer change has replaced;
- `EtcdUnavailable` after sending (outcome unknown) is never answered by a blind
  retry: the written job keys are read again; if one holds the value this txn
  wrote, it was applied; otherwise the change is computed again from what is
  there, and its compare keeps a second application impossible.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from harunner.errors import (
    CorruptFileError,
    FencedError,
    StaleTransitionError,
    StoreError,
    UnknownJobError,
)
from harunner.failpoints import failpoint
from harunner.store.etcd.gateway import EtcdUnavailable, KeyValue, compare_mod, op_put
from harunner.store.etcd.keys import Keys, fence_value
from harunner.store.etcd.kv import EtcdKV, range_body, txn_ranges
from harunner.store.model import JobRecord, record_from, to_json
from harunner.store.transitions import job_of

FIELDS = tuple(field.name for field in dataclasses.fields(JobRecord))
ATTEMPTS = 20  # compare failures in a row before giving up (each one means another writer won)
CHUNK_FAILPOINTS = ("store.etcd.between_chunks",)
OPS_TRANSITION = 4  # put record, put fence, delete the old state index key, put the new one
REFUSALS = (StaleTransitionError, FencedError, CorruptFileError, UnknownJobError)

Change = Callable[[JobRecord | None, Any], JobRecord | None]
Refused = tuple[Any, Exception]


def record_value(record: JobRecord) -> bytes:
    """The record as etcd keeps it: the JSON of `model.record_to_dict` (built without the
    deep copy of `dataclasses.asdict`, the largest cost of a batch on the client's side)."""
    data = {name: getattr(record, name) for name in FIELDS}
    owner = record.owner
    data.update(state=record.state.value, history=list(record.history),
                owner=None if owner is None else {"slot": owner.slot,
                                                  "incarnation": owner.incarnation})
    return to_json(data).encode()


def decode(kv: KeyValue, job_id: str) -> JobRecord:
    """The record in a job key's value; `CorruptFileError` naming the job if it is bad."""
    try:
        data = json.loads(kv.value)
    except ValueError as error:
        raise CorruptFileError(f"record of job {job_id} in etcd: {error}; cancel or prune "
                               "the job") from None
    return record_from(data, job_id)


def op_delete(key: bytes) -> dict:
    return {"request_delete_range": {"key": range_body(key)["key"]}}


@dataclass
class Write:
    """One job key to change: its mod_revision when read (0: absent) and the records."""

    job_id: str
    mod_revision: int
    old: JobRecord | None
    new: JobRecord | None  # None: delete the job and every key of it


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        if start:
            failpoint("store.etcd.between_chunks")
        yield items[start:start + size]


class Transactions:
    """Job-record txns of one cluster (`keys`) over `kv`."""

    def __init__(self, kv: EtcdKV, keys: Keys, budget: int = 1024 * 1024) -> None:
        self.kv = kv
        self.keys = keys
        self.budget = budget  # bytes of records per txn (etcd refuses requests over 1.5 MiB)

    def chunk_size(self, ops_per_item: int) -> int:
        return max(1, (self.kv.max_txn_ops - 1) // ops_per_item)

    def ops(self, write: Write) -> list[dict]:
        """The puts and deletes that turn `write.old` into `write.new` (indexes included)."""
        keys, old, new, job_id = self.keys, write.old, write.new, write.job_id
        ops: list[dict] = []
        if new is not None:
            ops.append(op_put(keys.job(job_id), record_value(new)))
            if old is None or (old.state, old.generation) != (new.state, new.generation):
                ops.append(op_put(keys.fence(job_id), fence_value(new.state, new.generation)))
        before = keys.index_keys(old) if old is not None else set()
        after = keys.index_keys(new) if new is not None else set()
        ops += [op_delete(key) for key in sorted(before - after)]
        ops += [op_put(key, job_id.encode()) for key in sorted(after - before)]
        if new is None:
            ops += [op_delete(key) for key in keys.per_job(job_id)]
        return ops

    def commit(self, writes: Sequence[Write]) -> dict[bytes, KeyValue | None] | None:
        """Write `writes` in one txn: None if applied, else the fresh job keys (None: absent)."""
        job_keys = [self.keys.job(write.job_id) for write in writes]
        compare = [compare_mod(key, write.mod_revision) for key, write in zip(job_keys, writes,
                                                                              strict=True)]
        success = [op for write in writes for op in self.ops(write)]
        success.append(op_put(self.keys.head, b""))
        failure = [{"request_range": range_body(key)} for key in job_keys]
        try:
            result = self.kv.txn(compare, success, failure)
        except EtcdUnavailable as error:
            return self._decide(writes, job_keys, error)
        if result.succeeded:
            return None
        fresh: dict[bytes, KeyValue | None] = dict.fromkeys(job_keys)
        for kvs in txn_ranges(result.responses):
            fresh.update((kv.key, kv) for kv in kvs)
        return fresh

    def _decide(self, writes: Sequence[Write], job_keys: list[bytes],
                error: EtcdUnavailable) -> dict[bytes, KeyValue | None] | None:
        """After an unknown outcome: None if the txn was applied, else the fresh job keys."""
        try:
            found = self.kv.get_many(job_keys)
        except EtcdUnavailable as again:
            raise EtcdUnavailable(f"{error}; the outcome of a write of {len(writes)} job(s) is "
                                  f"unknown and etcd cannot be read to decide: {again}") from again
        for key, write in zip(job_keys, writes, strict=True):
            now = found.get(key)
            if write.new is None and now is None and write.mod_revision:
                return None  # a delete of ours (or a later one) happened
            if write.new is not None and now is not None and now.value == record_value(write.new):
                return None
        return {key: found.get(key) for key in job_keys}

    def apply(self, items: Sequence[Any], change: Change,
              ops_per_item: int = OPS_TRANSITION) -> tuple[list[JobRecord], list[Refused]]:
        """`change` each item's record, chunk by chunk: (applied records, refused items)."""
        applied: list[JobRecord] = []
        refused: list[Refused] = []
        for chunk in chunks(items, self.chunk_size(ops_per_item)):
            done, bad = self._apply_chunk(chunk, change)
            applied += done
            refused += bad
        return applied, refused

    def _apply_chunk(self, chunk: Sequence[Any], change: Change
                     ) -> tuple[list[JobRecord], list[Refused]]:
        job_keys = [self.keys.job(job_id) for job_id in dict.fromkeys(map(job_of, chunk))]
        found: dict[bytes, KeyValue | None] = dict.fromkeys(job_keys)
        found.update(self.kv.get_many(job_keys))
        for _ in range(ATTEMPTS):
            applied, refused, writes = self._plan(chunk, change, found)
            if not writes:
                return applied, refused
            size = sum(len(record_value(write.new)) for write in writes if write.new is not None)
            if size > self.budget and len(chunk) > 1:
                return self._halves(chunk, change)
            fresh = self.commit(writes)
            if fresh is None:
                return applied, refused
            found.update(fresh)
        raise StoreError(f"{len(chunk)} job change(s) lost {ATTEMPTS} compare-and-set races "
                         "in a row in etcd; other writers keep changing these jobs; try again")

    def _halves(self, chunk: Sequence[Any], change: Change
                ) -> tuple[list[JobRecord], list[Refused]]:
        """A chunk whose records are too many bytes for one txn, as two txns (each whole)."""
        half = len(chunk) // 2
        applied, refused = self._apply_chunk(chunk[:half], change)
        failpoint("store.etcd.between_chunks")
        more, bad = self._apply_chunk(chunk[half:], change)
        return applied + more, refused + bad

    def _plan(self, chunk: Sequence[Any], change: Change, found: dict[bytes, KeyValue | None]
              ) -> tuple[list[JobRecord], list[Refused], list[Write]]:
        """Each item's change computed on `found`, in order (an item sees the ones before it)."""
        current: dict[str, JobRecord | None] = {}
        writes: dict[str, Write] = {}
        applied: list[JobRecord] = []
        refused: list[Refused] = []
        for item in chunk:
            job_id = job_of(item)
            kv = found.get(self.keys.job(job_id))
            try:
                if job_id not in current:
                    current[job_id] = None if kv is None else decode(kv, job_id)
                old = current[job_id]
                new = change(old, item)
            except REFUSALS as error:
                refused.append((item, error))
                continue
            if new is not old:
                first = writes.get(job_id)
                writes[job_id] = Write(job_id, 0 if kv is None else kv.mod_revision,
                                       old if first is None else first.old, new)
                current[job_id] = new
            if new is not None:
                applied.append(new)
        return applied, refused, list(writes.values())

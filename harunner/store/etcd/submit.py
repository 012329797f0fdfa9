"""Submitting jobs to etcd: create-only txns, in chunks of whole jobs.

Each new job key is compared with mod_revision 0 (absent), so a job is created
once: an explicit id that exists already is answered with its record (submit is
idempotent with an explicit id), a generated id that exists gets a new one.

Invariants: a chunk is one txn, all of its jobs or none; a chunk holds at most
`(max_txn_ops - 1) // OPS_SUBMIT` jobs and about `max_value_bytes` of records;
a record larger than `max_value_bytes` is refused before anything is sent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from harunner.errors import JobArgumentError, StoreError
from harunner.failpoints import failpoint
from harunner.store import job_files
from harunner.store import transitions as t
from harunner.store.etcd.txns import ATTEMPTS, Transactions, Write, decode, record_value
from harunner.store.model import JobRecord

OPS_SUBMIT = 5  # put record, put fence, put the due, created and newest index keys


def new_id(now: float, token: bytes, index: int, count: int, attempt: int) -> str:
    if count == 1 and attempt == 0:
        return job_files.new_job_id(now, token)
    return job_files.new_batch_id(now, os.urandom(2) if attempt else token, index)


def submit_records(txns: Transactions, items: Sequence[t.Submission], now: float,
                   max_value_bytes: int) -> list[JobRecord]:
    """Create `items` as PENDING jobs; their records (or the existing ones), in order."""
    token = os.urandom(2)
    records = [t.created(item.job_id or new_id(now, token, index, len(items), 0), item, now)
               for index, item in enumerate(items)]
    for record in records:
        size = len(record_value(record))
        if size > max_value_bytes:
            raise JobArgumentError(f"job {record.name}: its record is {size} bytes, above "
                                   f"etcd_max_value_bytes ({max_value_bytes}); pass smaller "
                                   "arguments (for example a path to the data)")
    result: list[JobRecord | None] = [None] * len(records)
    for chunk in _chunks(records, txns.chunk_size(OPS_SUBMIT), max_value_bytes):
        _submit_chunk(txns, items, records, chunk, result, now)
    return [record for record in result if record is not None]


def _chunks(records: list[JobRecord], size: int, budget: int) -> Iterator[list[int]]:
    """Indexes of `records` in chunks of at most `size` records and about `budget` bytes."""
    chunk: list[int] = []
    used = 0
    for index, record in enumerate(records):
        cost = len(record_value(record))
        if chunk and (len(chunk) >= size or used + cost > budget):
            yield chunk
            failpoint("store.etcd.between_chunks")
            chunk, used = [], 0
        chunk.append(index)
        used += cost
    if chunk:
        yield chunk


def _submit_chunk(txns: Transactions, items: Sequence[t.Submission], records: list[JobRecord],
                  chunk: list[int], result: list[JobRecord | None], now: float) -> None:
    """Create the records of `chunk` in one txn, retrying around ids that exist."""
    first: dict[str, int] = {}
    repeats = []  # the same explicit id twice in one batch: one job, the first item's
    for index in chunk:
        if records[index].job_id in first:
            repeats.append(index)
        else:
            first[records[index].job_id] = index
    for attempt in range(1, ATTEMPTS + 1):
        todo = [index for index in first.values() if result[index] is None]
        if not todo:
            break
        fresh = txns.commit([Write(records[i].job_id, 0, None, records[i]) for i in todo])
        if fresh is None:
            for index in todo:
                result[index] = records[index]
            break
        for index in todo:
            job_id = records[index].job_id
            existing = fresh.get(txns.keys.job(job_id))
            if existing is None:
                continue
            if items[index].job_id is not None:
                result[index] = decode(existing, job_id)  # idempotent: the job as it is
            else:
                records[index] = t.created(new_id(now, b"", index, len(items), attempt),
                                           items[index], now)
    else:
        raise StoreError(f"could not create {len(chunk)} job(s) in etcd after {ATTEMPTS} "
                         "tries; try again")
    for index in repeats:
        result[index] = result[first[records[index].job_id]]

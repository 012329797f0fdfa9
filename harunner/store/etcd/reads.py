"""Bounded reads of the etcd backend: records through the index keys, never a scan.

Each query ranges over one index (`due/`, `owned/`, `finished/`, `created/`,
`newest/`) with a limit, then reads the records it names in txns of
`max_txn_ops` ranges. An index key and its record are written in one txn, but
read in two: a record that moved on between the two reads is left out (it no
longer belongs to the answer), so every answer holds records that fit it.

Invariant: a call costs what it returns (plus, for a filtered listing, the
records it skips); no read touches every job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harunner.errors import CorruptFileError
from harunner.store.etcd.keys import Keys, end_of
from harunner.store.etcd.kv import EtcdKV, range_body, txn_ranges
from harunner.store.etcd.txns import decode
from harunner.store.model import SCHEDULER_JOB, JobRecord, JobState, Owner

PAGE = 256  # index keys read per range of a listing

Report = Callable[[CorruptFileError], None]


class Reads:
    """Queries of one cluster's jobs; damaged records are reported and skipped."""

    def __init__(self, kv: EtcdKV, keys: Keys, report: Report) -> None:
        self.kv = kv
        self.keys = keys
        self.report = report

    def records(self, job_ids: Sequence[str]) -> list[JobRecord]:
        """The records of `job_ids` that exist, in that order."""
        found = self.kv.get_many([self.keys.job(job_id) for job_id in job_ids])
        records = []
        for job_id in job_ids:
            kv = found.get(self.keys.job(job_id))
            if kv is None:
                continue
            try:
                records.append(decode(kv, job_id))
            except CorruptFileError as error:
                self.report(error)
        return records

    def _ids(self, start: bytes, end: bytes, limit: int) -> list[str]:
        """The job ids held by the index keys in `[start, end)`, at most `limit` (0: all)."""
        found = self.kv.range(start, end, limit=limit)[0]
        return [kv.value.decode() for kv in found]

    def due_ids(self, wall: float, limit: int) -> list[str]:
        """Ids of PENDING jobs with `not_before <= wall`, earliest first (the due index)."""
        return self._ids(self.keys.prefix("due"), self.keys.due_until(wall), limit)

    def due(self, wall: float, limit: int) -> list[JobRecord]:
        return [record for record in self.records(self.due_ids(wall, limit))
                if record.state is JobState.PENDING and record.not_before <= wall]

    def running(self, owner: Owner | None, limit: int) -> list[JobRecord]:
        """RUNNING jobs (of `owner`, if given), at most `limit` (0: all of them)."""
        prefix = self.keys.prefix("owned") if owner is None else self.keys.owned(owner)
        found = self.records(self._ids(prefix, end_of(prefix), limit))
        return [record for record in found if record.state is JobState.RUNNING
                and (owner is None or record.owner == owner)]

    def finished_ids(self, older_than_wall: float, limit: int) -> list[str]:
        return self._ids(self.keys.prefix("finished"), self.keys.finished_until(older_than_wall),
                         limit)

    def count_unfinished(self) -> int:
        """PENDING plus RUNNING jobs, counted on their indexes, the scheduler duty left out."""
        due, owned = self.keys.prefix("due"), self.keys.prefix("owned")
        ops = [{"request_range": range_body(due, end_of(due), count_only=True)},
               {"request_range": range_body(owned, end_of(owned), count_only=True)},
               {"request_range": range_body(self.keys.fence(SCHEDULER_JOB))}]
        body = {"compare": [], "success": ops, "failure": []}
        responses = self.kv.request("/v3/kv/txn", body).get("responses", [])
        counts = [int(item.get("response_range", {}).get("count", 0)) for item in responses[:2]]
        scheduler = txn_ranges(responses)[2]
        unfinished = bool(scheduler) and scheduler[0].value.split(b"@")[0] in (b"pending",
                                                                                b"running")
        return sum(counts) - int(unfinished)

    def listing(self, states: set[JobState] | None, name: str | None, limit: int | None,
                newest_first: bool, cursors: dict[str, JobRecord]) -> list[JobRecord]:
        """Records in creation order (or newest first), filtered, after/before the cursors."""
        if states is not None and not states:
            return []
        kind = "newest" if newest_first else "created"
        key_of = self.keys.newest_of if newest_first else self.keys.created_of
        start, end = self.keys.prefix(kind), end_of(self.keys.prefix(kind))
        # oldest first: "after" is the lower bound; newest first, "before" is
        lower, upper = ("before", "after") if newest_first else ("after", "before")
        if lower in cursors:
            start = key_of(cursors[lower]) + b"\x00"
        if upper in cursors:
            end = key_of(cursors[upper])
        chosen: list[JobRecord] = []
        while limit is None or len(chosen) < limit:
            found = self.kv.range(start, end, limit=PAGE)[0]
            chosen += [record for record in self.records([kv.value.decode() for kv in found])
                       if _fits(record, states, name)]
            if len(found) < PAGE:
                break
            start = found[-1].key + b"\x00"
        return chosen if limit is None else chosen[:limit]


def _fits(record: JobRecord, states: Any, name: str | None) -> bool:
    return (states is None or record.state in states) and (name is None or record.name == name)

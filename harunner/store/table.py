"""The jobs table: queries through its indexes and batched compare-and-set transitions.

Every query is bounded by an index (`job_id`, `seq`, `(state, not_before)`,
`(created_at, job_id)`, `(state, updated_at)`) and a `LIMIT`, so no call reads
all jobs and none costs more as finished jobs pile up.

Invariants:
- `transition` reads each row and writes its successor inside one write
  transaction; the `UPDATE` still compares job id, generation and state, so
  the statement itself is the fence. An outcome that carries the record its
  owner holds (`Outcome.held`, RUNNING at the outcome's generation) is written
  without the read: a row is RUNNING at one generation exactly once, and a
  row that moved on fails the compare and is then read as usual. A refused
  item is reported, never written; the applied ones commit together with one
  fsync.
- Every written row gets the next change number of its transaction
  (`Writer.next_seq`), so `changes` returns each mutation once, in order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from harunner.errors import (
    CorruptFileError,
    FencedError,
    StaleTransitionError,
    StoreError,
    UnknownJobError,
)
from harunner.failpoints import failpoint
from harunner.store import job_files, rows
from harunner.store.db import Database, Writer
from harunner.store.model import JobRecord, JobState
from harunner.store.transitions import Assignment, Claim, Submission, assigned, created

log = logging.getLogger("harunner.store")

BATCH_FAILPOINTS = ("store.db.batch_item",)
FINISHED = tuple(state.value for state in JobState if state.finished)
# The due PENDING jobs, earliest first, through index jobs_by_state_due: (now_wall, limit).
DUE = ("WHERE state='pending' AND not_before<=? ORDER BY not_before, created_at, job_id "
       "LIMIT ?")
INSERT_NEW = f"{rows.INSERT} ON CONFLICT (job_id) DO NOTHING"  # an existing id is kept

Item = TypeVar("Item")
Refused = tuple[Any, Exception]


class JobTable:
    """The rows of table `jobs` in `database`; `report` is told of every damaged row."""

    def __init__(self, database: Database, report: Callable[[CorruptFileError], None]) -> None:
        self.db = database
        self.report = report

    # -- reads ----------------------------------------------------------------------------

    def fetch(self, job_id: str) -> JobRecord | None:
        found = self.db.read(f"{rows.SELECT} WHERE job_id=?", (job_id,))
        return rows.from_row(found[0])[0] if found else None

    def head(self) -> int:
        """The change number of the newest mutation (0 if none yet)."""
        found = self.db.read("SELECT value FROM meta WHERE key='sequence'")
        return int(found[0][0]) if found else 0

    def count_unfinished(self, leave_out: str) -> int:
        found = self.db.read("SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running') "
                             "AND job_id != ?", (leave_out,))
        return int(found[0][0])

    def changes(self, after_seq: int, limit: int, brief: bool = False
                ) -> tuple[list[JobRecord], int]:
        select = rows.SELECT_BRIEF if brief else rows.SELECT
        found = self.db.read(f"{select} WHERE seq>? ORDER BY seq LIMIT ?", (after_seq, limit))
        last = int(found[-1][-1]) if found else after_seq
        if brief:  # the cursor still passes the rows left out
            found = [row for row in found if not rows.never_owned(row)]
        return self._decoded(found, rows.from_brief_row if brief else rows.from_row), last

    def due_pending(self, now_wall: float, limit: int) -> list[JobRecord]:
        return self._decoded(self.db.read(f"{rows.SELECT} {DUE}", (now_wall, limit)))

    def owned_by(self, slot: int, incarnation: int, limit: int) -> list[JobRecord]:
        """RUNNING rows of one owner, through the `state` prefix of jobs_by_state_due (so
        bounded by the RUNNING rows, never all jobs)."""
        return self._decoded(self.db.read(
            f"{rows.SELECT} WHERE state='running' AND owner_slot=? AND owner_incarnation=? "
            "ORDER BY job_id LIMIT ?", (slot, incarnation, limit)))

    def query(self, states: Iterable[JobState] | None, name: str | None, limit: int | None,
              newest_first: bool, before: str | None, after: str | None) -> list[JobRecord]:
        where, parameters = [], []  # type: tuple[list[str], list[Any]]
        if states is not None:
            chosen = sorted({state.value for state in states})
            if not chosen:
                return []
            where.append(f"state IN ({', '.join('?' for _ in chosen)})")
            parameters.extend(chosen)
        if name is not None:
            where.append("name=?")
            parameters.append(name)
        for cursor, sign in ((before, "<"), (after, ">")):
            if cursor is not None:
                where.append(f"(created_at, job_id) {sign} (SELECT created_at, job_id FROM "
                             "jobs WHERE job_id=?)")
                parameters.append(cursor)
        order = "DESC" if newest_first else "ASC"
        sql = (f"{rows.SELECT}{' WHERE ' + ' AND '.join(where) if where else ''} "
               f"ORDER BY created_at {order}, job_id {order}")
        if limit is not None:
            sql += " LIMIT ?"
            parameters.append(int(limit))
        return self._decoded(self.db.read(sql, tuple(parameters)))

    def finished_before(self, older_than_wall: float, limit: int) -> list[str]:
        found = self.db.read("SELECT job_id FROM jobs WHERE state IN (?, ?, ?) AND "
                             "updated_at<? LIMIT ?",
                             (*FINISHED, older_than_wall, limit))
        return [str(row[0]) for row in found]

    def _decoded(self, found: Sequence[Any],
                 decode: Callable[[Any], tuple[JobRecord, int]] = rows.from_row
                 ) -> list[JobRecord]:
        records = []
        for row in found:
            try:
                records.append(decode(row)[0])
            except CorruptFileError as error:
                self.report(error)
        return records

    # -- writes ---------------------------------------------------------------------------

    def insert(self, writer: Writer, record: JobRecord, args_json: str | None = None) -> bool:
        """Insert `record` unless its job id exists; whether it was inserted. `args_json`:
        `record.args` already encoded (`to_json`), if the caller has it."""
        seq = writer.next_seq()
        done = writer.execute(INSERT_NEW, rows.to_row(record, seq, args_json))
        if done.rowcount != 1:
            writer.sequence -= 1
            return False
        failpoint("store.db.batch_item")
        return True

    def create(self, writer: Writer, item: Submission, now: float, token: bytes, index: int,
               count: int, args_json: str | None = None) -> JobRecord:
        """Insert item `index` of a submission of `count`; an explicit id that exists is kept.
        `args_json`: `item.args` already encoded, if the caller has it."""
        if item.job_id is not None:
            record = created(item.job_id, item, now)
            if self.insert(writer, record, args_json):
                return record
            existing = self.fetch_in(writer, item.job_id)
            assert existing is not None
            return existing
        for attempt in range(10):
            job_id = (job_files.new_job_id(now, token) if count == 1 and attempt == 0 else
                      job_files.new_batch_id(now, os.urandom(2) if attempt else token, index))
            record = created(job_id, item, now)
            if self.insert(writer, record, args_json):
                return record
        raise StoreError(f"could not find a free job id in {self.db.path}")

    def any_due(self, claim: Claim) -> bool:
        """Whether a job `claim` could take is due (a read: no write lock)."""
        found = self.db.read(f"SELECT job_id FROM jobs {DUE}", (claim.wall, len(claim.skip) + 1))
        return any(row[0] not in claim.skip for row in found)

    def claim(self, writer: Writer, claim: Claim, now: float) -> list[JobRecord]:
        """Assign up to `claim.room` due PENDING jobs to `claim.owner` in this transaction
        (which holds the write lock: no other claimer can take the same job meanwhile)."""
        found = writer.execute(f"{rows.SELECT} {DUE}",
                               (claim.wall, claim.room + len(claim.skip))).fetchall()
        due = [r for r in self._decoded(found) if r.job_id not in claim.skip][:claim.room]
        won = []
        for record in due:  # read in this transaction: current, so not read a second time
            new = assigned(record, Assignment(record.job_id, claim.owner, record.generation), now)
            self.write(writer, record, new)  # still the compare-and-set on (generation, state)
            won.append(new)
        return won

    def fetch_in(self, writer: Writer, job_id: str) -> JobRecord | None:
        found = writer.execute(f"{rows.SELECT} WHERE job_id=?", (job_id,)).fetchone()
        return None if found is None else rows.from_row(found)[0]

    def transition(self, writer: Writer, items: Iterable[Item], job_of: Callable[[Item], str],
                   change: Callable[[JobRecord, Item], JobRecord]
                   ) -> tuple[list[JobRecord], list[Refused]]:
        """Apply `change` to each item's row in this transaction: (applied, refused)."""
        applied: list[JobRecord] = []
        refused: list[Refused] = []
        for item in items:
            job_id = job_of(item)
            try:
                new = self._from_held(writer, item, job_id, change)
                if new is not None:  # the owner's record, written without reading the row
                    applied.append(new)
                    continue
                old = self.fetch_in(writer, job_id)
                if old is None:
                    raise UnknownJobError(f"no job with id {job_id}; `harunner status` "
                                          "lists jobs")
                new = change(old, item)
            except (StaleTransitionError, FencedError, CorruptFileError, UnknownJobError) as error:
                refused.append((item, error))
                continue
            if new is not old:
                self.write(writer, old, new)
            applied.append(new)
        return applied, refused

    def write(self, writer: Writer, old: JobRecord, new: JobRecord) -> None:
        """Replace `old` by `new`, fenced on `old`'s generation and state."""
        if not self._wrote(writer, old, new):
            raise StoreError(f"job {old.job_id}: the record changed inside a write "
                             "transaction; this is a bug, please report it")

    def _wrote(self, writer: Writer, old: JobRecord, new: JobRecord) -> bool:
        """Replace `old` by `new` if the row is still at `old`'s generation and state."""
        done = writer.execute(*rows.update(new, old, writer.next_seq()))
        if done.rowcount != 1:
            writer.sequence -= 1
            return False
        failpoint("store.db.batch_item")
        return True

    def _from_held(self, writer: Writer, item: Any, job_id: str,
                   change: Callable[[JobRecord, Any], JobRecord]) -> JobRecord | None:
        """The new record if `item` carries the RUNNING record its owner holds at its
        generation and the row is still that (the UPDATE compares); None: read the row."""
        held = getattr(item, "held", None)
        if (held is None or held.job_id != job_id or held.state is not JobState.RUNNING
                or held.generation != getattr(item, "generation", None)):
            return None
        new = change(held, item)
        return new if self._wrote(writer, held, new) else None

    def delete(self, writer: Writer, job_ids: list[str], older_than_wall: float) -> int:
        """Delete those of `job_ids` that are still finished and older than the bound."""
        count = 0
        for job_id in job_ids:
            done = writer.execute("DELETE FROM jobs WHERE job_id=? AND state IN (?, ?, ?) AND "
                                  "updated_at<?", (job_id, *FINISHED, older_than_wall))
            count += done.rowcount
        return count

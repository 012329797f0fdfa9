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
- What can be computed before the write lock is (`prepare_held`,
  `prepare_claim`: the due rows of a claim are read outside the transaction),
  so the lock is held only for the compare-and-set statements and the commit:
  a row is PENDING at one generation only once too, so a claim's compare on
  (generation, state) writes what a read under the lock would have, and a
  job claimed or cancelled meanwhile is simply not won.
- Every written row gets the next change number of its transaction
  (`Writer.next_seq`), so `changes` returns each mutation once, in order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
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
Prepared = tuple[str, list[Any], int]  # a compare-and-set whose change number is set last
Ready = tuple[JobRecord, Prepared]     # a new record, and the statement that writes it


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

    def claim(self, writer: Writer, claim: Claim, now: float) -> list[JobRecord]:
        """Assign up to `claim.room` due PENDING jobs to `claim.owner` in this transaction."""
        return self.claim_prepared(writer, self.prepare_claim(claim, now))

    def settle(self, items: Sequence[Item], job_of: Callable[[Item], str],
               change: Callable[[JobRecord, Item], JobRecord], claimed: Sequence[Ready] = ()
               ) -> tuple[list[JobRecord], list[Refused], list[JobRecord]]:
        """`transition` of `items` and `claim_prepared` of `claimed` in one write
        transaction, the held records' successors built before it: (applied, refused,
        claims won)."""
        ready = self.prepare_held(items, job_of, change)  # before the write lock
        with self.db.write() as writer:
            applied, refused = self.transition(writer, items, job_of, change, ready)
            return applied, refused, self.claim_prepared(writer, claimed)

    def prepare_claim(self, claim: Claim, now: float) -> list[Ready]:
        """Up to `claim.room` due PENDING jobs, read (outside any write transaction, as a
        rule) and turned into their RUNNING successors owned by `claim.owner`.

        A job is PENDING at one generation only once (every claim raises it, and PENDING
        leads only to RUNNING or CANCELLED), so a row still PENDING at the generation read
        is the row read: `claim_prepared`'s compare-and-set on (generation, state) then
        writes exactly what an in-transaction read would have, and a job claimed or
        cancelled meanwhile fails it and is simply not won."""
        found = self.db.read(f"{rows.SELECT} {DUE}", (claim.wall, claim.room + len(claim.skip)))
        due = [r for r in self._decoded(found) if r.job_id not in claim.skip][:claim.room]
        ready = []
        for record in due:
            new = assigned(record, Assignment(record.job_id, claim.owner, record.generation), now)
            ready.append((new, rows.prepared_update(new, record)))
        return ready

    def claim_prepared(self, writer: Writer, ready: Iterable[Ready]) -> list[JobRecord]:
        """Write prepared claims in this transaction; the records won."""
        return [new for new, statement in ready if self._wrote_prepared(writer, statement)]

    def fetch_in(self, writer: Writer, job_id: str) -> JobRecord | None:
        found = writer.execute(f"{rows.SELECT} WHERE job_id=?", (job_id,)).fetchone()
        return None if found is None else rows.from_row(found)[0]

    def transition(self, writer: Writer, items: Sequence[Item], job_of: Callable[[Item], str],
                   change: Callable[[JobRecord, Item], JobRecord],
                   ready: Mapping[int, Ready] | None = None
                   ) -> tuple[list[JobRecord], list[Refused]]:
        """Apply `change` to each item's row in this transaction: (applied, refused).
        `ready`: `prepare_held(items, ...)`, if the caller made it before the transaction."""
        if ready is None:
            ready = self.prepare_held(items, job_of, change)
        applied: list[JobRecord] = []
        refused: list[Refused] = []
        for index, item in enumerate(items):
            job_id = job_of(item)
            prepared = ready.get(index)
            if prepared is not None and self._wrote_prepared(writer, prepared[1]):
                applied.append(prepared[0])  # the owner's record, written without a read
                continue
            try:
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
        return self._wrote_prepared(writer, rows.prepared_update(new, old))

    def _wrote_prepared(self, writer: Writer, statement: Prepared) -> bool:
        """Run a prepared compare-and-set with the transaction's next change number; whether
        the row was still the one it was computed from."""
        sql, parameters, at = statement
        parameters[at] = writer.next_seq()
        done = writer.execute(sql, parameters)
        if done.rowcount != 1:
            writer.sequence -= 1
            return False
        failpoint("store.db.batch_item")
        return True

    def prepare_held(self, items: Sequence[Item], job_of: Callable[[Item], str],
                     change: Callable[[JobRecord, Item], JobRecord]) -> dict[int, Ready]:
        """By position: the successor and compare-and-set of each item that carries the
        RUNNING record its owner holds at its generation (`Outcome.held`), computed without
        reading the row, so before the write transaction. A row RUNNING at one generation
        is that record (it moves on only by changing state or generation), so the UPDATE's
        compare is the fence; one that fails it is read and done as usual by `transition`."""
        ready: dict[int, Ready] = {}
        for index, item in enumerate(items):
            held = getattr(item, "held", None)
            if (held is None or held.job_id != job_of(item) or held.state is not JobState.RUNNING
                    or held.generation != getattr(item, "generation", None)):
                continue
            try:
                new = change(held, item)
            except (StaleTransitionError, FencedError):
                continue  # read the row in the transaction: the refusal is reported from there
            ready[index] = (new, rows.prepared_update(new, held))
        return ready

    def delete(self, writer: Writer, job_ids: list[str], older_than_wall: float) -> int:
        """Delete those of `job_ids` that are still finished and older than the bound."""
        count = 0
        for job_id in job_ids:
            done = writer.execute("DELETE FROM jobs WHERE job_id=? AND state IN (?, ?, ?) AND "
                                  "updated_at<?", (job_id, *FINISHED, older_than_wall))
            count += done.rowcount
        return count

"""The schedules table: one row per periodic job, and the transaction that fires it.

Table `schedules` lives in the job database (`jobs.db`) beside table `jobs`
and is created by this module on first use (`CREATE TABLE IF NOT EXISTS`).
A row keeps the schedule as registered (expression, time zone, policies),
whether it is enabled, the next fire time `next_fire` (integer milliseconds
since the epoch), the last one handled and the job it started.

Invariants:
- A fire is ONE write transaction (`ScheduleTable.fire`): it checks that the
  row's `next_fire` is still the value the caller computed from, inserts the
  job row of every fire time of the batch, and advances `next_fire` with a
  compare-and-set (`UPDATE … WHERE name=? AND next_fire=?`). A crash anywhere
  before COMMIT leaves neither the jobs nor the advance; after it, both. A
  second firer holding the old `next_fire` finds it moved and writes nothing.
  So each fire time is fired exactly once, whoever fires and whenever one dies.
- The job of fire time t has the id `fire_job_id(name, t)`: a second insert for
  the same (schedule, time) is refused by the primary key (counted in
  `duplicates`, which stays 0 unless the first invariant is broken).
- overlap=False: a fire time whose schedule's last started job is not finished
  is recorded as a CANCELLED job whose error says "skipped" (`harunner retry`
  runs it), so every fire time leaves exactly one job row.
- Registration never moves `next_fire` of a schedule whose expression and time
  zone are unchanged (times missed while no cluster ran stay due); a new,
  changed or re-enabled schedule starts from the next fire time after now; a
  schedule no job module declares any more is disabled, never deleted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harunner.failpoints import failpoint
from harunner.store.db import Database, Writer
from harunner.store.jobs import Store
from harunner.store.model import JobRecord, JobState, stamp
from harunner.store.table import JobTable
from harunner.store.transitions import Submission, created

log = logging.getLogger("harunner.store")

SCHEMA = """CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY, expression TEXT NOT NULL, timezone TEXT NOT NULL,
    catch_up TEXT NOT NULL, overlap INTEGER NOT NULL, enabled INTEGER NOT NULL,
    next_fire INTEGER NOT NULL, last_fire INTEGER, last_job TEXT,
    fired INTEGER NOT NULL, skipped INTEGER NOT NULL, dropped INTEGER NOT NULL,
    duplicates INTEGER NOT NULL, updated_at REAL NOT NULL)"""
COLUMNS = ("name", "expression", "timezone", "catch_up", "overlap", "enabled", "next_fire",
           "last_fire", "last_job", "fired", "skipped", "dropped", "duplicates", "updated_at")
SELECT = f"SELECT {', '.join(COLUMNS)} FROM schedules"
FIRE_FAILPOINTS = ("store.schedules.enqueued",)
SKIPPED = "skipped"


@dataclass(frozen=True)
class ScheduleRow:
    """One row of table `schedules` (times in milliseconds since the epoch)."""

    name: str
    expression: str
    timezone: str
    catch_up: str
    overlap: bool
    enabled: bool
    next_fire: int
    last_fire: int | None = None
    last_job: str | None = None
    fired: int = 0
    skipped: int = 0
    dropped: int = 0
    duplicates: int = 0
    updated_at: float = 0.0


@dataclass(frozen=True)
class Registration:
    """A schedule declared by a job module; `first_fire` is its next fire time after now."""

    name: str
    expression: str
    timezone: str
    catch_up: str
    overlap: bool
    first_fire: int


@dataclass(frozen=True)
class JobTemplate:
    """What a fired job is made of: the job's policy and its arguments for a fire time."""

    name: str
    retries: int
    backoff: float
    timeout: float | None
    args_for: Callable[[int], dict[str, Any]]
    describe: Callable[[int], str]


@dataclass(frozen=True)
class FireResult:
    """What one fire transaction wrote: the started jobs, the skipped ones, duplicates."""

    row: ScheduleRow
    started: tuple[JobRecord, ...]
    skipped: tuple[JobRecord, ...]
    duplicates: int


def fire_job_id(name: str, fire_ms: int) -> str:
    """The job id of schedule `name`'s fire at `fire_ms`: the same inputs, the same id."""
    slug = re.sub(r"[^A-Za-z0-9_]", "_", name)[:40]
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{slug}-{digest}-{fire_ms}"


class ScheduleTable:
    """Table `schedules` of `store`'s job database (its own connection per process and thread)."""

    def __init__(self, store: Store, busy_timeout: float = 0.2) -> None:
        store.init()
        self.store = store
        self.db = Database(store.layout.database, busy_timeout)
        self.jobs = JobTable(self.db, lambda error: log.warning("damaged job row: %s", error))
        self._ready = False

    def _exists(self) -> bool:
        if not self._ready:
            found = self.db.read("SELECT name FROM sqlite_master WHERE name='schedules'")
            self._ready = bool(found)
        return self._ready

    def _ensure(self) -> None:
        """Create the table if it is missing (a writer's first use); readers never create it."""
        if not self._exists():
            with self.db.write() as writer:
                writer.execute(SCHEMA)
            self._ready = True

    # -- reads ----------------------------------------------------------------------------

    def rows(self) -> list[ScheduleRow]:
        """Every schedule, enabled or not, by name (as many as job modules declare)."""
        if not self._exists():
            return []
        return [_decode(row) for row in self.db.read(f"{SELECT} ORDER BY name")]

    def get(self, name: str) -> ScheduleRow | None:
        if not self._exists():
            return None
        found = self.db.read(f"{SELECT} WHERE name=?", (name,))
        return _decode(found[0]) if found else None

    # -- writes ---------------------------------------------------------------------------

    def register(self, items: Sequence[Registration], now: float) -> list[ScheduleRow]:
        """Upsert the declared schedules and disable the others, in one transaction."""
        self._ensure()
        declared = {item.name: item for item in items}
        with self.db.write() as writer:
            old = {row.name: row for row in map(_decode, writer.execute(SELECT).fetchall())}
            for item in items:
                _upsert(writer, old.get(item.name), item, now)
            for name, row in old.items():
                if name not in declared and row.enabled:
                    writer.execute("UPDATE schedules SET enabled=0, updated_at=? WHERE name=?",
                                   (now, name))
                    log.info("schedule %s is no longer declared: disabled", name)
            return [_decode(row) for row in writer.execute(f"{SELECT} ORDER BY name")]

    def fire(self, name: str, expected_next: int, new_next: int, fires: Sequence[int],
             template: JobTemplate, now: float, dropped: int = 0) -> FireResult | None:
        """Fire `fires` and move next_fire expected_next → new_next atomically; None if lost.

        None means another firer (or a registration) moved `next_fire` first:
        nothing was written, and the caller reads the row again.
        """
        self._ensure()
        try:
            return self._fire(name, expected_next, new_next, fires, template, now, dropped)
        except _Lost:
            return None

    def _fire(self, name: str, expected_next: int, new_next: int, fires: Sequence[int],
              template: JobTemplate, now: float, dropped: int) -> FireResult | None:
        with self.db.write() as writer:
            found = writer.execute(f"{SELECT} WHERE name=?", (name,)).fetchone()
            row = None if found is None else _decode(found)
            if row is None or not row.enabled or row.next_fire != expected_next:
                return None
            started, skipped, duplicates, last_job = self._enqueue(writer, row, fires,
                                                                   template, now)
            failpoint("store.schedules.enqueued")
            done = writer.execute(
                "UPDATE schedules SET next_fire=?, last_fire=?, last_job=?, fired=fired+?, "
                "skipped=skipped+?, dropped=dropped+?, duplicates=duplicates+?, updated_at=? "
                "WHERE name=? AND next_fire=? AND enabled=1",
                (new_next, fires[-1] if fires else row.last_fire, last_job, len(started),
                 len(skipped), dropped, duplicates, now, name, expected_next))
            if done.rowcount != 1:
                raise _Lost(name)
            new_row = _decode(writer.execute(f"{SELECT} WHERE name=?", (name,)).fetchone())
        return FireResult(new_row, tuple(started), tuple(skipped), duplicates)

    def _enqueue(self, writer: Writer, row: ScheduleRow, fires: Sequence[int],
                 template: JobTemplate, now: float
                 ) -> tuple[list[JobRecord], list[JobRecord], int, str | None]:
        """Insert the job row of each fire time: started, or skipped while the last one runs."""
        started: list[JobRecord] = []
        skipped: list[JobRecord] = []
        duplicates, last_job = 0, row.last_job
        for fire_ms in fires:
            record = _fired_record(template, fire_ms, now)
            busy = None if row.overlap or last_job is None else self._unfinished(writer,
                                                                                 last_job)
            if busy is not None:
                record = _skipped(record, busy, now)
            if not self.jobs.insert(writer, record):
                duplicates += 1
                log.error("schedule %s: job %s for this fire time exists already; not "
                          "inserted again (a bug: next_fire and its jobs must move together)",
                          row.name, record.job_id)
                continue
            if busy is None:
                started.append(record)
                last_job = record.job_id
            else:
                skipped.append(record)
        return started, skipped, duplicates, last_job

    def _unfinished(self, writer: Writer, job_id: str) -> str | None:
        record = self.jobs.fetch_in(writer, job_id)
        return job_id if record is not None and not record.state.finished else None


class _Lost(Exception):
    """The compare-and-set of a fire found next_fire moved inside the transaction (rolls back)."""


def _upsert(writer: Writer, old: ScheduleRow | None, item: Registration, now: float) -> None:
    if old is None:
        writer.execute(f"INSERT INTO schedules ({', '.join(COLUMNS)}) VALUES "
                       f"({', '.join('?' for _ in COLUMNS)})",
                       (item.name, item.expression, item.timezone, item.catch_up,
                        int(item.overlap), 1, item.first_fire, None, None, 0, 0, 0, 0, now))
        return
    same_times = (old.expression, old.timezone) == (item.expression, item.timezone)
    next_fire = old.next_fire if same_times and old.enabled else item.first_fire
    if (next_fire, item.catch_up, item.overlap, old.enabled) == (old.next_fire, old.catch_up,
                                                                old.overlap, True):
        return
    writer.execute("UPDATE schedules SET expression=?, timezone=?, catch_up=?, overlap=?, "
                   "enabled=1, next_fire=?, updated_at=? WHERE name=?",
                   (item.expression, item.timezone, item.catch_up, int(item.overlap),
                    next_fire, now, item.name))


def _fired_record(template: JobTemplate, fire_ms: int, now: float) -> JobRecord:
    job_id = fire_job_id(template.name, fire_ms)
    item = Submission(template.name, template.args_for(fire_ms), template.retries,
                      template.backoff, template.timeout, job_id)
    record = created(job_id, item, now)
    note = f"{stamp(now)} pending@0 fired by its schedule for {template.describe(fire_ms)}"
    return dataclasses.replace(record, not_before=fire_ms / 1000, history=(note,))


def _skipped(record: JobRecord, busy: str, now: float) -> JobRecord:
    why = f"{SKIPPED}: the previous run {busy} had not finished (overlap=False)"
    return dataclasses.replace(record, state=JobState.CANCELLED, error=why,
                               history=(*record.history, f"{stamp(now)} cancelled@0 {why}"))


def _decode(row: Any) -> ScheduleRow:
    values = dict(zip(COLUMNS, row, strict=True))
    values["overlap"] = bool(values["overlap"])
    values["enabled"] = bool(values["enabled"])
    return ScheduleRow(**values)

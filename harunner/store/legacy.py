"""The import of harunner 0.1.0's job records (jobs/<id>/record files) into the job database.

Runs once per state directory, on the first open of the database by a
harunner that knows both formats: every readable `record` (or its
`record.prev` fallback) is inserted in one write transaction, and the marker
`legacy_imported` is set in the same transaction. So the import is durable
(one fsynced commit), all or nothing (a crash leaves no marker and the next
open imports again), and idempotent (a job already in the database is kept;
two processes opening at once serialise on the write lock and the second
finds the marker). Checkpoints, progress and logs stay where they are: the
new store keeps them in the same job folders. A record that cannot be read is
reported and left on disk, never silently dropped: the folder stays, and the
warning names it.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path

from harunner.errors import CorruptFileError, StoreError
from harunner.store import job_files
from harunner.store.db import Database
from harunner.store.layout import RECORD, Layout
from harunner.store.model import JobRecord, record_from
from harunner.store.table import JobTable

log = logging.getLogger("harunner.store")

MARKER = "legacy_imported"


def import_once(layout: Layout, database: Database, table: JobTable,
                report: Callable[[Path, CorruptFileError], None]) -> int:
    """Import the 0.1.0 records of `layout` unless done before; how many jobs were added."""
    if _done(database):
        return 0
    with database.write() as writer:
        if writer.execute("SELECT 1 FROM meta WHERE key=?", (MARKER,)).fetchone():
            return 0
        added = 0
        for record in _legacy_records(layout, report):
            added += table.insert(writer, record)
        writer.execute("INSERT INTO meta VALUES (?, 1)", (MARKER,))
    if added:
        log.warning("imported %d job records of harunner 0.1.0 from %s into %s", added,
                    layout.jobs, layout.database)
    return added


def _done(database: Database) -> bool:
    return bool(database.read("SELECT 1 FROM meta WHERE key=?", (MARKER,)))


def _record_of(job_id: str, data: object) -> JobRecord:
    return record_from(data, job_id)


def _legacy_records(layout: Layout, report: Callable[[Path, CorruptFileError], None]
                    ) -> list[JobRecord]:
    try:
        names = sorted(os.listdir(layout.jobs))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        folder = layout.job_folder(name)
        if not job_files.valid_job_id(name) or not (folder / RECORD).exists() and not (
                folder / "record.prev").exists():
            continue
        try:
            read = job_files.read_record(folder, functools.partial(_record_of, name), report)
        except (StoreError, OSError) as error:
            log.warning("cannot import the 0.1.0 record of job %s (%s); it stays in %s",
                        name, error, folder)
            continue
        if read is not None:
            found.append(read[0])
    return found

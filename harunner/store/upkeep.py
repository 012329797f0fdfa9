"""Upkeep of the store: pruning finished jobs, and checking the database.

`prune` deletes, in bounded batches, finished jobs last updated before a
wall-clock bound: each batch holds the jobs' locks (so no retry revives one
meanwhile), removes their files first (a crash leaves a record without
files, never files without a record), then deletes the rows in one
transaction that still checks they are finished and old. `check` runs
SQLite's quick_check and refuses a damaged database, leaving it as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from harunner.errors import CorruptFileError
from harunner.store import job_files
from harunner.store.db import Database
from harunner.store.layout import Layout
from harunner.store.table import JobTable

Held = Callable[[list[str], float], AbstractContextManager[set[str]]]

BATCH = 500


def prune(held: Held, layout: Layout, table: JobTable, db: Database,
          older_than_wall: float) -> int:
    """Delete finished jobs last updated before `older_than_wall`; how many. `held` holds
    the locks of jobs and yields those whose lock was busy (`Store._held`)."""
    import shutil  # here: a submission never prunes (shutil pulls in bz2 and lzma)

    count = 0
    while True:
        chosen = table.finished_before(older_than_wall, BATCH)
        with held(chosen, 0.0) as busy:  # no retry can revive them meanwhile
            free = [job_id for job_id in chosen if job_id not in busy]
            for job_id in free:  # files first: a crash leaves a record without files
                shutil.rmtree(layout.job_folder(job_id), ignore_errors=True)
                job_files.remove_entry(layout.legacy_job_lock(job_id))
            with db.write() as writer:
                deleted = table.delete(writer, free, older_than_wall)
        count += deleted
        if len(chosen) < BATCH or not free:
            return count


def check(db: Database, path: Path) -> int:
    """SQLite's quick_check of the database at `path`; 0, or `CorruptFileError`."""
    found = [str(row[0]) for row in db.read("PRAGMA quick_check")]
    if found != ["ok"]:
        raise CorruptFileError(f"{path}: integrity check failed ({'; '.join(found[:5])}); "
                               "restore it from a backup")
    return 0

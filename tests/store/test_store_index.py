"""Listing through the database's indexes, the change feed, and the import of 0.1.0 records.

Catches: a listing that filters or pages in Python after loading every job (the limit and
cursor tests would still pass, so `test_listing_reads_no_more_rows_than_asked` counts the
rows SQLite visits), a change feed that skips or repeats a change or goes backwards after a
prune, and an import that loses a 0.1.0 job, imports twice, or drops a damaged record
silently.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from harunner.errors import UnknownJobError
from harunner.store import (
    Assignment,
    JobRecord,
    JobState,
    Outcome,
    Owner,
    Store,
    Submission,
    durable,
    legacy,
)
from harunner.store.model import record_to_dict

ACTIVE = {JobState.PENDING, JobState.RUNNING}
A = Owner(0, 1)


def _clocked(tmp_path: Path) -> Store:
    clock = iter(range(1000, 100000))
    return Store(tmp_path / "state", clock=lambda: float(next(clock)))


def test_filters_paging_and_order_are_done_by_the_database(tmp_path: Path) -> None:
    store = _clocked(tmp_path)
    ids = [store.submit("a.x" if i % 2 else "a.y", {"i": i}).job_id for i in range(10)]
    store.assign(ids[3], A, 0)
    store.finish(ids[3], 1, result=3)
    assert [r.job_id for r in store.list_jobs(ACTIVE)] == ids[:3] + ids[4:]
    assert [r.job_id for r in store.list_jobs({JobState.SUCCEEDED})] == [ids[3]]
    assert [r.job_id for r in store.list_jobs(name="a.x")] == ids[1::2]
    assert [r.job_id for r in store.list_jobs(limit=3, newest_first=True)] == ids[:-4:-1]
    page = store.list_jobs(limit=3, newest_first=True, before=ids[7])
    assert [r.job_id for r in page] == [ids[6], ids[5], ids[4]]
    assert [r.job_id for r in store.list_jobs(limit=2, after=ids[7])] == ids[8:]
    assert store.list_jobs(set()) == []
    with pytest.raises(UnknownJobError):
        store.list_jobs(before="no-such-job")


def test_listing_reads_no_more_rows_than_asked(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.submit_many([Submission("a.x", {}) for _ in range(2000)])
    conn = store._db.connection()
    visited = []
    conn.set_progress_handler(lambda: visited.append(1), 100)  # a tick per 100 VM steps
    store.list_jobs(limit=10, newest_first=True)
    store.due_pending(1e12, limit=10)
    store.changes(0, limit=10)
    conn.set_progress_handler(None, 0)
    assert len(visited) < 100, f"{len(visited) * 100} VM steps for three small queries"


def test_the_change_feed_follows_every_mutation_in_order(tmp_path: Path) -> None:
    store = _clocked(tmp_path)
    start = store.head()
    first = store.submit_many([Submission("a.x", {"i": i}) for i in range(5)])
    records, cursor = store.changes(start, limit=3)
    assert [r.job_id for r in records] == [r.job_id for r in first[:3]]
    store.assign_many([Assignment(r.job_id, A, 0) for r in first[:2]])
    records, cursor = store.changes(cursor)
    assert [r.job_id for r in records] == [first[3].job_id, first[4].job_id,
                                           first[0].job_id, first[1].job_id]
    assert cursor == store.head() and store.changes(cursor) == ([], cursor)
    store.finish_many([Outcome(first[0].job_id, 1, result=0)])
    assert store.prune(1e12) == 1
    records, after_prune = store.changes(cursor)
    assert records == [] and after_prune == cursor
    store.cancel(first[2].job_id)
    records, last = store.changes(cursor)
    assert [(r.job_id, r.state) for r in records] == [(first[2].job_id, JobState.CANCELLED)]
    assert last > cursor + 1  # the pruned job's change number is never handed out again


def test_the_brief_feed_leaves_out_jobs_never_claimed_and_carries_no_json(tmp_path: Path
                                                                         ) -> None:
    store = _clocked(tmp_path)
    start = store.head()
    first = store.submit_many([Submission("a.x", {"i": i}) for i in range(4)])
    records, cursor = store.changes(start, brief=True)
    assert records == [] and cursor == store.head()  # passed, not returned
    store.assign_many([Assignment(r.job_id, A, 0) for r in first[:2]])
    store.finish_many([Outcome(first[0].job_id, 1, result={"big": "x" * 100})])
    records, cursor = store.changes(cursor, brief=True)
    full = {r.job_id: r for r in store.changes(start)[0]}
    assert [r.job_id for r in records] == [first[1].job_id, first[0].job_id]
    for record in records:
        assert (record.args, record.result, record.history) == ({}, None, ())
        expected = full[record.job_id]
        assert (record.state, record.generation, record.owner, record.attempts) == (
            expected.state, expected.generation, expected.owner, expected.attempts)


def test_due_pending_follows_not_before(tmp_path: Path) -> None:
    store = _clocked(tmp_path)
    jobs = [store.submit("a.x", {}).job_id for _ in range(3)]
    store.assign(jobs[0], A, 0)
    store.finish(jobs[0], 1, error="flaky", retry_at=5000.0)
    assert [r.job_id for r in store.due_pending(4999.0)] == jobs[1:]
    assert [r.job_id for r in store.due_pending(5000.0)] == jobs[1:] + [jobs[0]]
    assert [r.job_id for r in store.due_pending(5000.0, limit=1)] == [jobs[1]]
    assert [r.job_id for r in store.running()] == []


def test_rebuild_index_checks_the_database(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.submit("a.x", {})
    assert store.rebuild_index() == 0


def _legacy_job(root: Path, record: JobRecord, previous: JobRecord | None = None) -> Path:
    """Write `record` the way harunner 0.1.0 did (jobs/<id>/record, record.prev)."""
    folder = root / "jobs" / record.job_id
    folder.mkdir(parents=True)
    for name, value in (("record.prev", previous), ("record", record)):
        if value is not None:
            payload = json.dumps(record_to_dict(value)).encode()
            durable.write_atomic(folder / name, durable.KIND_RECORD, payload)
    return folder


def test_a_0_1_0_state_directory_is_imported_once(tmp_path: Path) -> None:
    root = tmp_path / "old"
    done = JobRecord(job_id="old-done", name="a.x", args={"n": 1}, state=JobState.SUCCEEDED,
                     generation=1, attempts=1, result={"ok": True}, created_at=1.0,
                     history=("t pending@0 submitted",))
    live = JobRecord(job_id="old-live", name="a.x", args={}, state=JobState.RUNNING,
                     generation=3, owner=Owner(1, 2), attempts=1, created_at=2.0)
    torn = JobRecord(job_id="old-torn", name="a.y", args={}, state=JobState.PENDING,
                     created_at=3.0)
    _legacy_job(root, done)
    folder = _legacy_job(root, live)
    torn_folder = _legacy_job(root, torn, previous=torn)
    (torn_folder / "record").write_bytes(b"torn")
    durable.write_atomic(folder / "ckpt.000000000004", durable.KIND_CHECKPOINT, json.dumps(
        {"job_id": "old-live", "generation": 3, "seq": 4, "state": {"page": 9}}).encode())
    (root / "jobs" / "bad").mkdir()
    (root / "jobs" / "bad" / "record").write_bytes(b"garbage")
    store = Store(root)
    assert {r.job_id: r for r in store.list_jobs()} == {
        "old-done": done, "old-live": live, "old-torn": torn}
    assert store.corrupt_seen >= 2  # the torn record and the bad one were reported
    checkpoint = store.read_checkpoint("old-live")
    assert checkpoint is not None and (checkpoint.seq, checkpoint.state) == (4, {"page": 9})
    assert store.take_over("old-live", 4, A).generation == 4
    assert legacy.import_once(store.layout, store._db, store._table, store._report) == 0
    assert Store(root).get("old-live").generation == 4  # not re-imported over the new state
    assert (root / "jobs" / "bad" / "record").read_bytes() == b"garbage"  # left for the user
    with sqlite3.connect(root / "jobs.db") as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='legacy_imported'").fetchone()


@pytest.mark.integration
@pytest.mark.parametrize("point", ["store.db.batch_item=kill@2", "store.db.before_commit=exit",
                                   "store.db.after_commit=kill"])
def test_a_crash_during_the_import_imports_all_or_nothing(children, tmp_path: Path,  # noqa: ANN001
                                                          point: str) -> None:
    root = tmp_path / "old"
    for n in range(5):
        _legacy_job(root, JobRecord(job_id=f"old-{n}", name="a.x", args={"n": n},
                                    state=JobState.PENDING, created_at=float(n)))
    child = children.start("open", root, failpoints=point)
    out, _ = child.communicate(timeout=60)
    assert child.returncode in (77, -9) and out == ""
    with sqlite3.connect(root / "jobs.db") as conn:
        count = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    assert count == (5 if "after_commit" in point else 0)
    assert [r.job_id for r in Store(root).list_jobs()] == [f"old-{n}" for n in range(5)]

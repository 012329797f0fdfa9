"""The index of unfinished jobs: list_jobs of active states reads only marked jobs."""

from __future__ import annotations

import os

from harunner.store import JobState, Owner, Store

ACTIVE = {JobState.PENDING, JobState.RUNNING}


def test_active_listing_follows_the_lifecycle(tmp_path):
    store = Store(tmp_path)
    done = store.submit("x.y", {})
    live = store.submit("x.y", {})
    store.assign(done.job_id, Owner(0, 1), 0)
    store.finish(done.job_id, 1, result=1)
    assert [r.job_id for r in store.list_jobs(ACTIVE)] == [live.job_id]
    assert sorted(os.listdir(tmp_path / "index" / "active")) == [live.job_id]
    assert {r.job_id for r in store.list_jobs()} == {done.job_id, live.job_id}
    store.cancel(live.job_id)
    assert store.list_jobs(ACTIVE) == []


def test_a_stale_marker_is_filtered_by_the_record_and_removed_by_rebuild(tmp_path):
    store = Store(tmp_path)
    job = store.submit("x.y", {})
    store.cancel(job.job_id)
    (tmp_path / "index" / "active" / job.job_id).touch()  # a crash before the unmark
    assert store.list_jobs(ACTIVE) == []
    assert store.rebuild_index() == 1
    assert os.listdir(tmp_path / "index" / "active") == []


def test_a_missing_marker_is_restored_by_rebuild(tmp_path):
    store = Store(tmp_path)
    job = store.submit("x.y", {})
    os.unlink(tmp_path / "index" / "active" / job.job_id)  # an index lost with the page cache
    assert store.list_jobs(ACTIVE) == []
    assert store.rebuild_index() == 1
    assert [r.job_id for r in store.list_jobs(ACTIVE)] == [job.job_id]


def test_garbage_in_the_index_is_skipped(tmp_path):
    store = Store(tmp_path)
    job = store.submit("x.y", {})
    (tmp_path / "index" / "active" / "no-such-job").touch()
    (tmp_path / "index" / "active" / "..bad name").touch()
    assert [r.job_id for r in store.list_jobs(ACTIVE)] == [job.job_id]

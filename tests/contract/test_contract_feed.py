"""The change feed on every backend: a cursor that misses no change and returns none twice.

A change is identified by (job, state, generation, updated_at). Over successive
`changes(cursor)` calls every change is returned at most once, and the last one
seen of each job is its current record. Catches etcd_feed_repeats (resumes at
the cursor: the last revision again) and etcd_feed_skips (resumes one revision
late: a change missed).
"""

from __future__ import annotations

import time

from harunner.store import Assignment, JobState, Outcome, Owner, Submission

A = Owner(0, 1)


def follow(store, cursor: int, limit: int):  # noqa: ANN001, ANN201
    """Every answer of `changes` from `cursor` until one is empty: (answers, last cursor);
    fails at once when an answer repeats a change of an earlier one."""
    answers, returned = [], set()
    for _ in range(200):
        records, after = store.changes(cursor, limit)
        assert after >= cursor
        if not records and after == cursor:
            return answers, cursor
        changes = {change_of(record) for record in records}
        assert not changes & returned, f"changes returned twice: {sorted(changes & returned)}"
        returned |= changes
        answers.append(records)
        cursor = after
    raise AssertionError("the feed never ran dry")


def change_of(record):  # noqa: ANN001, ANN201
    return (record.job_id, record.state, record.generation, record.updated_at)


def test_no_change_is_missed_and_none_is_returned_twice_across_batches(
        backend, store) -> None:  # noqa: ANN001
    cursor = store.head()
    writer = backend.open()  # the feed must see another store object's writes too
    jobs = [r.job_id for r in writer.submit_many([Submission("jobs.demo", {"k": k})
                                                  for k in range(60)])]
    writer.assign_many([Assignment(job, A, 0) for job in jobs[:30]])
    writer.finish_many([Outcome(job, 1, result=1) for job in jobs[:10]])
    writer.cancel(jobs[40])
    seen, all_changes = {}, []
    answers, cursor = follow(store, cursor, limit=7)
    for records in answers:
        assert len({r.job_id for r in records}) == len(records), "a job twice in one answer"
        for record in records:
            all_changes.append(change_of(record))
            seen[record.job_id] = record
    assert len(all_changes) == len(set(all_changes)), "a change returned twice"
    assert sorted(seen) == sorted(jobs)
    assert all(seen[job] == writer.get(job) for job in jobs), "a newest change was missed"
    writer.retry(jobs[40])
    records, after = store.changes(cursor, 7)
    assert [r.job_id for r in records] == [jobs[40]] and after > cursor
    assert store.changes(after, 7) == ([], after)


def test_the_brief_feed_leaves_out_unclaimed_jobs_and_heavy_fields(store) -> None:  # noqa: ANN001
    cursor = store.head()
    waiting, claimed = (store.submit("jobs.demo", {"big": "x" * 100}).job_id for _ in range(2))
    store.assign(claimed, A, 0)
    records, _ = store.changes(cursor, 100, brief=True)
    assert [r.job_id for r in records] == [claimed]
    assert (records[0].args, records[0].history, records[0].state) == ({}, (), JobState.RUNNING)
    assert waiting in [r.job_id for r in store.changes(cursor, 100)[0]]


def test_changes_during_a_reconcile_are_seen_after_it(store) -> None:  # noqa: ANN001
    job = store.submit("jobs.demo", {}).job_id
    store.assign(job, A, 0)
    cursor = store.head()  # a runner's start: head, then the full reconcile
    assert [r.job_id for r in store.running()] == [job]
    store.finish(job, 1, result=2)  # changed while reconciling
    records, _ = store.changes(cursor, 10)
    assert [(r.job_id, r.state) for r in records] == [(job, JobState.SUCCEEDED)]


def test_pruned_jobs_vanish_from_the_feed_and_the_cursor_passes_them(
        store) -> None:  # noqa: ANN001
    job = store.submit("jobs.demo", {}).job_id
    store.assign(job, A, 0)
    store.finish(job, 1, result=None)
    cursor = store.head()
    assert store.prune(time.time() + 1) == 1
    records, after = store.changes(cursor, 10)
    assert records == [] and after >= cursor
    assert store.changes(after, 10) == ([], after)

"""Batched transitions, retry, prune, and connections across threads and forks.

Catches: a batch that raises (instead of skipping) on one stale item, applies a stale item,
waits on a busy lock in `take_over_many`, finishes a job without its lock or below its
generation, or writes a finish from a stale held record; a retry that keeps the old
generation (a stale worker would not be fenced); a prune that leaves a finished job's files
or touches an unfinished job; a connection shared across threads or inherited through fork.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from harunner.errors import FencedError, StaleTransitionError, UnknownJobError
from harunner.store import (
    SCHEDULER_JOB,
    Assignment,
    JobState,
    Outcome,
    Owner,
    Store,
    Submission,
    TakeOver,
)
from harunner.store.transitions import Release

A, B = Owner(0, 1), Owner(1, 1)


def _running(store: Store, count: int) -> list[str]:
    ids = [r.job_id for r in store.submit_many([Submission("a.x", {"i": i})
                                                for i in range(count)])]
    store.assign_many([Assignment(job, A, 0) for job in ids])
    return ids


def test_submit_many_keeps_order_and_explicit_ids_are_idempotent(store: Store) -> None:
    first = store.submit("scheduler", {}, job_id=SCHEDULER_JOB)
    items = [Submission("a.x", {"i": i}, retries=2) for i in range(300)]
    records = store.submit_many([*items, Submission("s", {"new": 1}, job_id=SCHEDULER_JOB)])
    assert [r.args for r in records[:-1]] == [{"i": i} for i in range(300)]
    assert records[-1] == first and len({r.job_id for r in records}) == 301
    assert [r.job_id for r in store.list_jobs()][1:] == [r.job_id for r in records[:-1]]
    assert all(r.retries == 2 and r.state is JobState.PENDING for r in records[:-1])


def test_a_bad_item_refuses_the_whole_submission(store: Store) -> None:
    with pytest.raises(Exception, match="not JSON"):
        store.submit_many([Submission("a.x", {}), Submission("a.x", {"f": object()})])
    with pytest.raises(UnknownJobError):
        store.submit_many([Submission("a.x", {}, job_id="../x")])
    assert store.list_jobs() == []


def test_assign_many_skips_stale_items(store: Store) -> None:
    ids = [store.submit("a.x", {}).job_id for _ in range(4)]
    store.assign(ids[1], B, 0)
    store.cancel(ids[2])
    done = store.assign_many([Assignment(ids[0], A, 0), Assignment(ids[1], A, 0),
                              Assignment(ids[2], A, 0), Assignment(ids[3], A, 5),
                              Assignment("no-such-job", A, 0)])
    assert [(r.job_id, r.generation, r.owner) for r in done] == [(ids[0], 1, A)]
    assert store.get(ids[1]).owner == B


def test_take_over_many_applies_skips_and_reports_busy(store: Store, children) -> None:  # noqa: ANN001
    ids = _running(store, 4)
    store.finish(ids[2], 1, result=None)
    holder = children.start("hold", store.root, ids[1])
    assert children.read_line(holder, timeout=20) == "locked"
    started = time.monotonic()
    applied, busy = store.take_over_many([TakeOver(ids[0], 2, B), TakeOver(ids[1], 2, B),
                                          TakeOver(ids[2], 2, B), TakeOver(ids[3], 1, B)])
    assert time.monotonic() - started < store.lock_timeout
    assert [(r.job_id, r.generation, r.owner) for r in applied] == [(ids[0], 2, B)]
    assert busy == [TakeOver(ids[1], 2, B)]
    assert store.take_over_many([TakeOver(ids[0], 2, B)])[0] == [store.get(ids[0])]


def test_release_many_gives_back_only_its_own_unstarted_claims(store: Store) -> None:
    ids = _running(store, 5)
    store.take_over(ids[1], 2, B)          # moved on: no longer A's at generation 1
    store.finish(ids[2], 1, result=None)   # finished
    given = store.release_many([Release(ids[0], 1, A), Release(ids[1], 1, A),
                                Release(ids[2], 1, A), Release(ids[3], 1, B),
                                Release(ids[4], 2, A), Release("no-such-job", 1, A)])
    assert [r.job_id for r in given] == [ids[0]]
    back = store.get(ids[0])
    assert (back.state, back.generation, back.owner, back.attempts) == (JobState.PENDING, 1,
                                                                       None, 0)
    assert store.get(ids[1]).owner == B and store.get(ids[3]).owner == A
    again = store.assign(ids[0], B, 1)  # the next claim raises the generation as usual
    assert (again.generation, again.owner, again.attempts) == (2, B, 1)
    with pytest.raises(FencedError):    # nothing at the released generation writes again
        store.write_checkpoint(ids[0], 1, {})


def test_finish_many_is_fenced_per_job(store: Store) -> None:
    ids = _running(store, 4)
    store.take_over(ids[1], 2, B)
    done = store.finish_many([Outcome(ids[0], 1, result={"n": 0}), Outcome(ids[1], 1, result=1),
                              Outcome(ids[2], 1, error="boom", retry_at=10.0),
                              Outcome(ids[3], 1, error="bad")])
    assert [(r.job_id, r.state) for r in done] == [
        (ids[0], JobState.SUCCEEDED), (ids[2], JobState.PENDING), (ids[3], JobState.FAILED)]
    assert store.get(ids[0]).result == {"n": 0}
    assert store.get(ids[1]).state is JobState.RUNNING
    with pytest.raises(FencedError):
        store.write_checkpoint(ids[1], 1, {})


def test_a_finish_with_the_held_record_is_written_and_a_stale_one_refused(store: Store
                                                                         ) -> None:
    """The runners send the record they hold (`Outcome.held`): it is written without a read
    while the row is still that record, and refused like any stale finish once it moved on
    (taken over, or given back and claimed again), leaving the newer row as it was."""
    ids = _running(store, 3)
    held = {job: store.get(job) for job in ids}
    store.take_over(ids[1], 2, B)
    store.release_many([Release(ids[2], 1, A)])
    store.assign_many([Assignment(ids[2], B, 1)])
    moved = {job: store.get(job) for job in ids[1:]}
    done = store.finish_many([Outcome(job, 1, result=n, held=held[job])
                              for n, job in enumerate(ids)])
    assert [(r.job_id, r.state, r.result) for r in done] == [(ids[0], JobState.SUCCEEDED, 0)]
    assert store.get(ids[0]).history[:-1] == held[ids[0]].history
    assert {job: store.get(job) for job in ids[1:]} == moved
    with pytest.raises(FencedError):
        store.finish(ids[1], 1, result=1)


def test_finish_many_leaves_out_a_job_whose_lock_is_busy(store: Store, children) -> None:  # noqa: ANN001
    ids = _running(store, 2)
    holder = children.start("hold", store.root, ids[0])
    assert children.read_line(holder, timeout=20) == "locked"
    done = store.finish_many([Outcome(j, 1, result=1) for j in ids], lock_wait=0.05)
    assert [r.job_id for r in done] == [ids[1]]
    assert store.get(ids[0]).state is JobState.RUNNING


def test_retry_raises_the_generation_and_keeps_history(store: Store) -> None:
    (job,) = _running(store, 1)
    store.write_checkpoint(job, 1, {"step": 1})
    store.finish(job, 1, error="boom")
    record = store.retry(job)
    assert (record.state, record.generation, record.attempts, record.owner) == (
        JobState.PENDING, 2, 0, None)
    assert record.history[-1].endswith("pending@2 retried by the user")
    assert len(record.history) == 4
    with pytest.raises(FencedError):
        store.write_checkpoint(job, 1, {"step": 2})  # the worker of the failed attempt
    with pytest.raises(StaleTransitionError, match="only a failed or cancelled"):
        store.retry(job)
    assert store.assign(job, B, 2).generation == 3
    cancelled = store.cancel(store.submit("a.x", {}).job_id)
    assert store.retry(cancelled.job_id).generation == cancelled.generation + 1


def test_prune_deletes_old_finished_jobs_and_their_files(tmp_path: Path) -> None:
    now = [1000.0]
    store = Store(tmp_path, clock=lambda: now[0])
    ids = _running(store, 3)
    for job in ids:
        store.write_checkpoint(job, 1, {"x": 1})
        store.log_path(job).write_text("log\n")
    store.finish(ids[0], 1, result=1)
    store.cancel(ids[1])
    now[0] = 2000.0
    late = store.submit("a.x", {}).job_id
    store.assign(late, A, 0)
    store.finish(late, 1, result=1)
    assert store.prune(1500.0) == 2
    assert [r.job_id for r in store.list_jobs()] == [ids[2], late]
    for job in ids[:2]:
        assert not store.layout.job_folder(job).exists()
        with pytest.raises(UnknownJobError):
            store.get(job)
    assert store.read_checkpoint(ids[2]) is not None
    assert store.prune(1500.0) == 0


def test_each_thread_has_its_own_connection(store: Store) -> None:
    store.submit("a.x", {})
    seen, errors = [], []

    def work() -> None:
        try:
            seen.append(store._db.connection())
            store.submit_many([Submission("a.x", {})] * 5)
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(store.list_jobs()) == 21
    assert len({id(conn) for conn in seen + [store._db.connection()]}) == 5


def test_a_forked_child_opens_its_own_connection(store: Store) -> None:
    store.submit("a.x", {})
    parent = store._db.connection()
    pid = os.fork()
    if pid == 0:  # the child: must not touch the parent's connection
        code = 1
        try:
            fresh = store._db.connection() is not parent
            store.submit_many([Submission("a.x", {"child": 1})] * 3)
            code = 0 if fresh else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store._db.connection() is parent
    assert len(store.list_jobs()) == 4 and store.submit("a.x", {}).state is JobState.PENDING

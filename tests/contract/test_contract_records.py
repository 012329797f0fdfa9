"""The store contract on every backend: submit, transitions, fencing, checkpoints, results.

Each test runs on the local store and on etcd (`backend` fixture). What each one
catches among the broken stores of mutants.py is said in its docstring.
"""

from __future__ import annotations

import json
import time

import pytest

from harunner.errors import (
    CheckpointTooLargeError,
    FencedError,
    StaleTransitionError,
    UnknownJobError,
)
from harunner.store import (
    Assignment,
    JobState,
    Outcome,
    Owner,
    Progress,
    Submission,
    TakeOver,
    durable,
    job_files,
)
from harunner.store.contract import JobStore
from harunner.store.transitions import Claim, Release

A, B = Owner(0, 1), Owner(1, 1)


def running(store, owner=A):  # noqa: ANN001, ANN201
    job = store.submit("jobs.demo", {"n": 1}).job_id
    store.assign(job, owner, 0)
    return job


def test_every_backend_keeps_the_contract(store) -> None:  # noqa: ANN001
    assert isinstance(store, JobStore)


def test_submit_is_durable_and_read_back_by_another_store_and_a_fresh_process(
        backend, store, children) -> None:  # noqa: ANN001
    record = store.submit("jobs.demo", {"n": 1}, retries=2, backoff=0.5, timeout=9.0)
    many = store.submit_many([Submission("jobs.demo", {"k": k}) for k in range(40)])
    assert [r.args["k"] for r in many] == list(range(40))
    other = backend.open()
    assert other.get(record.job_id) == record
    assert [other.get(r.job_id) for r in many] == many
    status, out, err = children.run("show", backend.argv(), record.job_id)
    assert status == 0, err
    seen = json.loads(out[0])
    assert (seen["state"], seen["args"], seen["retries"], seen["timeout"]) == (
        "pending", {"n": 1}, 2, 9.0)


def test_submit_with_an_explicit_id_is_idempotent(store) -> None:  # noqa: ANN001
    first = store.submit("jobs.demo", {"a": 1}, job_id="fixed-1")
    again = store.submit("jobs.other", {"a": 2}, job_id="fixed-1")
    assert again == first
    both = store.submit_many([Submission("x", {}, job_id="fixed-2"),
                              Submission("y", {}, job_id="fixed-2")])
    assert both[0].job_id == both[1].job_id == "fixed-2"
    assert store.get("fixed-2").name == "x"


def test_unknown_jobs_are_refused_with_unknown_job_error(store) -> None:  # noqa: ANN001
    for call in (lambda: store.get("nope"), lambda: store.assign("nope", A, 0),
                 lambda: store.cancel("nope"), lambda: store.write_checkpoint("nope", 1, {}),
                 lambda: store.read_checkpoint("nope")):
        with pytest.raises(UnknownJobError):
            call()


def test_transitions_are_compare_and_set(store) -> None:  # noqa: ANN001
    job = store.submit("jobs.demo", {}).job_id
    record = store.assign(job, A, 0)
    assert (record.state, record.generation, record.owner, record.attempts) == (
        JobState.RUNNING, 1, A, 1)
    with pytest.raises(StaleTransitionError):
        store.assign(job, B, 0)
    assert store.take_over(job, 3, B).generation == 3
    assert store.take_over(job, 3, B).generation == 3  # idempotent
    with pytest.raises(StaleTransitionError):
        store.take_over(job, 2, A)  # not above the record's generation
    assert store.get(job).owner == B


def test_a_batch_applies_what_still_applies_and_skips_the_stale(store) -> None:  # noqa: ANN001
    jobs = [r.job_id for r in store.submit_many([Submission("jobs.demo", {})] * 5)]
    store.assign(jobs[0], B, 0)
    done = store.assign_many([Assignment(job, A, 0) for job in jobs])
    assert sorted(r.job_id for r in done) == sorted(jobs[1:])
    applied, busy = store.take_over_many([TakeOver(job, 5, B) for job in jobs[:3]]
                                         + [TakeOver(jobs[3], 1, B)])
    assert sorted(r.job_id for r in applied) == sorted(jobs[:3]) and busy == []
    finished = store.finish_many([Outcome(jobs[0], 5, result=0), Outcome(jobs[3], 0, result=1),
                                  Outcome(jobs[4], 1, result=4)])
    assert sorted(r.job_id for r in finished) == sorted([jobs[0], jobs[4]])
    assert store.get(jobs[3]).state is JobState.RUNNING
    given_back = store.release_many([Release(jobs[3], 1, A), Release(jobs[1], 1, A)])
    assert [r.job_id for r in given_back] == [jobs[3]]
    assert store.get(jobs[3]).state is JobState.PENDING


def test_a_stale_owner_is_fenced_and_a_never_granted_generation_refused(
        store) -> None:  # noqa: ANN001
    """Catches etcd_unfenced_writes (a stale checkpoint or progress accepted)."""
    job = running(store)
    store.write_checkpoint(job, 1, {"v": "old owner"})
    store.take_over(job, 2, B)
    with pytest.raises(FencedError):
        store.write_checkpoint(job, 1, {"v": "stale"})
    with pytest.raises(FencedError):
        store.set_progress(job, 1, Progress(5))
    with pytest.raises(FencedError):
        store.finish(job, 1, result="stale")
    for call in (lambda: store.write_checkpoint(job, 3, {"v": "future"}),
                 lambda: store.set_progress(job, 3, Progress(1)),
                 lambda: store.finish(job, 3, result="future")):
        with pytest.raises(StaleTransitionError):
            call()
    assert store.read_checkpoint(job).state == {"v": "old owner"}
    assert store.read_progress(job) is None
    assert store.get(job).state is JobState.RUNNING
    store.finish(job, 2, result="ok")
    with pytest.raises(StaleTransitionError):
        store.write_checkpoint(job, 2, {"v": "after the end"})


def test_the_newest_checkpoint_is_kept_and_progress_never_fences_it(
        backend, store) -> None:  # noqa: ANN001
    """Catches etcd_progress_fences (a progress write that moves the fence)."""
    job = running(store)
    seqs = []
    for value in range(1, 6):
        store.set_progress(job, 1, Progress(value, 5, f"step {value}"))
        seqs.append(store.write_checkpoint(job, 1, {"value": value}))
    assert seqs == sorted(set(seqs))
    newest = backend.open().read_checkpoint(job)
    assert (newest.state, newest.generation, newest.seq) == ({"value": 5}, 1, seqs[-1])
    assert store.read_progress(job) == Progress(5, 5, "step 5")
    fresh = running(store)
    assert store.read_checkpoint(fresh) is None and store.read_progress(fresh) is None


def test_results_errors_and_retries_are_recorded(backend, store) -> None:  # noqa: ANN001
    ok, bad, again = (running(store) for _ in range(3))
    store.finish(ok, 1, result={"sum": 6, "items": [1, 2, 3]})
    store.finish(bad, 1, error="ValueError: no")
    store.finish(again, 1, error="flaky", retry_at=1e9)
    other = backend.open()
    assert (other.get(ok).state, other.get(ok).result) == (JobState.SUCCEEDED,
                                                           {"sum": 6, "items": [1, 2, 3]})
    assert (other.get(bad).state, other.get(bad).error) == (JobState.FAILED, "ValueError: no")
    retried = other.get(again)
    assert (retried.state, retried.not_before, retried.owner) == (JobState.PENDING, 1e9, None)
    assert again not in [r.job_id for r in store.due_pending(1e9 - 1)]
    assert again in [r.job_id for r in store.due_pending(1e9)]


def test_cancel_fences_the_owner_and_retry_revives(store) -> None:  # noqa: ANN001
    job = running(store)
    cancelled = store.cancel(job)
    assert (cancelled.state, cancelled.generation) == (JobState.CANCELLED, 2)
    with pytest.raises(FencedError):
        store.write_checkpoint(job, 1, {})
    with pytest.raises(StaleTransitionError):
        store.cancel(job)
    revived = store.retry(job)
    assert (revived.state, revived.generation, revived.attempts) == (JobState.PENDING, 3, 0)
    with pytest.raises(StaleTransitionError):
        store.retry(job)
    assert store.assign(job, B, 3).generation == 4


def test_indexed_reads_due_running_owned_and_counted(store) -> None:  # noqa: ANN001
    jobs = [r.job_id for r in store.submit_many([Submission("jobs.demo", {})] * 6)]
    store.assign_many([Assignment(j, A, 0) for j in jobs[:2]]
                      + [Assignment(j, B, 0) for j in jobs[2:4]])
    assert sorted(r.job_id for r in store.owned_by(A)) == sorted(jobs[:2])
    assert len(store.owned_by(B, limit=1)) == 1
    assert store.owned_by(Owner(7, 7)) == []
    assert sorted(r.job_id for r in store.running()) == sorted(jobs[:4])
    assert sorted(r.job_id for r in store.due_pending(time.time() + 1)) == sorted(jobs[4:])
    assert len(store.due_pending(time.time() + 1, limit=1)) == 1
    assert store.count_unfinished() == 6
    store.finish(jobs[0], 1, result=None)
    store.take_over(jobs[1], 2, B)
    assert store.owned_by(A) == [] and len(store.owned_by(B)) == 3
    assert store.count_unfinished() == 5


def test_settle_finishes_and_claims_due_jobs(store) -> None:  # noqa: ANN001
    first = running(store)
    waiting = [r.job_id for r in store.submit_many([Submission("jobs.demo", {})] * 3)]
    finished, claimed = store.settle([Outcome(first, 1, result=1)], Claim(B, 2, time.time() + 1))
    assert [r.job_id for r in finished] == [first]
    assert len(claimed) == 2 and {r.job_id for r in claimed} < set(waiting)
    assert all(r.owner == B and r.generation == 1 for r in claimed)
    assert store.settle([], Claim(A, 5, time.time() + 1))[1][0].job_id in waiting


def test_listing_pages_in_creation_order(store) -> None:  # noqa: ANN001
    jobs = [r.job_id for r in store.submit_many([Submission("jobs.demo", {"k": k})
                                                 for k in range(10)])]
    store.submit("jobs.other", {})
    assert [r.job_id for r in store.list_jobs(name="jobs.demo")] == jobs
    assert [r.job_id for r in store.list_jobs(name="jobs.demo", newest_first=True)] == jobs[::-1]
    assert [r.job_id for r in store.list_jobs(limit=3, after=jobs[2])] == jobs[3:6]
    assert [r.job_id for r in store.list_jobs(newest_first=True, before=jobs[5], limit=2)] == [
        jobs[4], jobs[3]]
    store.assign(jobs[0], A, 0)
    assert [r.job_id for r in store.list_jobs({JobState.RUNNING})] == [jobs[0]]


def test_prune_deletes_old_finished_jobs_only(store) -> None:  # noqa: ANN001
    done, live = running(store), running(store)
    store.finish(done, 1, result=1)
    assert store.prune(time.time() - 3600) == 0
    assert store.prune(time.time() + 1) == 1
    with pytest.raises(UnknownJobError):
        store.get(done)
    assert store.get(live).state is JobState.RUNNING


LIMIT = 64 * 1024


@pytest.fixture
def limited(backend, monkeypatch):  # noqa: ANN001, ANN201
    """A store whose checkpoint limit is LIMIT bytes (etcd: its setting; local: its reader's)."""
    if backend.kind == "local":
        monkeypatch.setattr(durable, "MAX_PAYLOAD", LIMIT)
        monkeypatch.setattr(job_files, "MAX_PAYLOAD", LIMIT)
        return backend.open()
    return backend.open(max_value_bytes=LIMIT)


def test_a_checkpoint_over_the_limit_is_refused_and_the_last_one_stands(
        limited) -> None:  # noqa: ANN001
    """Catches etcd_no_size_check (a checkpoint over the configured limit sent anyway)."""
    job = running(limited)
    limited.write_checkpoint(job, 1, {"blob": "a" * (LIMIT // 2)})
    with pytest.raises(CheckpointTooLargeError, match=job) as refused:
        limited.write_checkpoint(job, 1, {"blob": "b" * (LIMIT + 10)})
    assert "\n" not in str(refused.value)
    assert limited.read_checkpoint(job).state == {"blob": "a" * (LIMIT // 2)}
    for size in (LIMIT - 200, LIMIT - 100, LIMIT - 60):
        try:
            limited.write_checkpoint(job, 1, {"blob": "c" * size})
        except CheckpointTooLargeError:
            continue
        assert limited.read_checkpoint(job).state == {"blob": "c" * size}

"""`Store.retry`, `Store.prune` and the filters of `Store.list_jobs`."""

from __future__ import annotations

import pytest

from harunner.errors import FencedError, StaleTransitionError
from harunner.store import JobState, Owner, Store


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def timed(tmp_path) -> Store:
    return Store(tmp_path / "state", lock_timeout=5.0, clock=Clock())


def failed_job(store: Store, name: str = "jobs.demo") -> str:
    job = store.submit(name, {"n": 1}).job_id
    store.assign(job, Owner(0, 1), 0)
    store.write_checkpoint(job, 1, {"i": 1})
    store.log_path(job).write_text("a line\n")
    store.finish(job, 1, error="ValueError: boom")
    return job


def test_retry_puts_a_failed_job_back_to_pending_one_generation_up(store):
    job = failed_job(store)
    record = store.retry(job)
    assert record.state is JobState.PENDING
    assert (record.generation, record.attempts, record.owner) == (2, 0, None)
    assert record.error == "ValueError: boom"
    assert "pending@2 retried" in record.history[-1]
    assert len(record.history) == 4
    assert store.get(job) == record
    assert [r.job_id for r in store.list_jobs({JobState.PENDING})] == [job]


def test_retried_job_is_assigned_again_and_fences_the_old_owner(store):
    job = failed_job(store)
    store.retry(job)
    running = store.assign(job, Owner(1, 1), 2)
    assert (running.generation, running.attempts) == (3, 1)
    with pytest.raises(FencedError):
        store.write_checkpoint(job, 1, {"i": 1})


def test_retry_of_a_cancelled_job(store):
    job = store.submit("jobs.demo", {}).job_id
    store.cancel(job)
    assert store.retry(job).generation == 2


@pytest.mark.parametrize("how", ["pending", "running", "succeeded"])
def test_retry_refuses_an_unfinished_or_succeeded_job(store, how):
    job = store.submit("jobs.demo", {}).job_id
    if how != "pending":
        store.assign(job, Owner(0, 1), 0)
    if how == "succeeded":
        store.finish(job, 1, result=1)
    before = store.get(job)
    with pytest.raises(StaleTransitionError, match="only a failed or cancelled"):
        store.retry(job)
    assert store.get(job) == before


def test_prune_deletes_old_finished_jobs_with_their_files(timed):
    old = failed_job(timed)
    cutoff = timed.clock()
    young = failed_job(timed)
    pending = timed.submit("jobs.demo", {}).job_id
    assert timed.prune(cutoff) == 1
    assert {r.job_id for r in timed.list_jobs()} == {young, pending}
    assert not timed.layout.job_folder(old).exists()
    assert timed.prune(timed.clock()) == 1          # the pending job stays
    assert [r.job_id for r in timed.list_jobs()] == [pending]


def test_prune_keeps_a_job_retried_meanwhile(timed):
    job = failed_job(timed)
    timed.retry(job)
    assert timed.prune(timed.clock()) == 0
    assert timed.get(job).state is JobState.PENDING


def test_list_jobs_filters_pages_and_orders(timed):
    ids = [timed.submit("a" if i % 2 else "b", {}).job_id for i in range(6)]
    assert [r.job_id for r in timed.list_jobs()] == ids
    assert [r.job_id for r in timed.list_jobs(newest_first=True)] == ids[::-1]
    assert [r.job_id for r in timed.list_jobs(name="a")] == ids[1::2]
    page = timed.list_jobs(newest_first=True, limit=2)
    assert [r.job_id for r in page] == ids[:-3:-1]
    nxt = timed.list_jobs(newest_first=True, limit=2, before=page[-1].job_id)
    assert [r.job_id for r in nxt] == [ids[3], ids[2]]
    timed.cancel(ids[0])
    assert [r.job_id for r in timed.list_jobs({JobState.CANCELLED})] == [ids[0]]
    assert len(timed.list_jobs({JobState.PENDING})) == 5

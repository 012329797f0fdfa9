"""Several short jobs per worker message: a worker runs its list in order and reports each
job as it ends; a worker that dies leaves the jobs it never ran to be queued again."""

from __future__ import annotations

import os
import signal
import time

import pytest
from executor_harness import OWNER, Harness, alive

from harunner.executor import lists
from harunner.store import JobState
from harunner.store.transitions import Release


@pytest.fixture
def one(tmp_path, monkeypatch):
    """One pool worker whose attempts are known (one was measured) and taken as short: the
    lists here are not cut by the measured time, which a loaded host makes long."""
    monkeypatch.setattr(lists, "BATCH_WINDOW", 60.0)
    h = Harness(tmp_path, worker_mode="pool", concurrency=1)
    h.executor.warm_up()
    assert h.run(h.submit("executor_test_jobs.succeed")).outcome == "succeeded"
    yield h
    h.close()


def lists_sent(harness: Harness, monkeypatch) -> list[list[str]]:
    """The job lists the pool hands to workers from now on, as they are handed."""
    pool, sent = harness.executor._pool, []
    original = pool.started
    monkeypatch.setattr(pool, "started", lambda jobs, proc, now: sent.append(
        [job_id for job_id, _ in jobs]) or original(jobs, proc, now))
    return sent


def queue_behind_a_first(harness: Harness, *records) -> None:
    """Start a quick job, then `records` while it runs: they go to the worker as one list."""
    harness.executor.start(harness.submit("executor_test_jobs.succeed"))
    for record in records:
        harness.executor.start(record)


def test_queued_short_jobs_go_to_the_worker_in_one_message_and_all_succeed(one, monkeypatch):
    sent = lists_sent(one, monkeypatch)
    records = [one.submit("executor_test_jobs.whoami", {"value": v}) for v in range(6)]
    queue_behind_a_first(one, *records)
    one.loop(lambda: not one.executor.running())
    assert [job_id for batch in sent[1:] for job_id in batch] == [r.job_id for r in records]
    assert len(sent) == 2  # the first job alone, then the six that queued behind it at once
    results = [one.store.get(r.job_id) for r in records]
    assert [r.state for r in results] == [JobState.SUCCEEDED] * 6
    assert [r.result["value"] for r in results] == list(range(6))
    assert len({r.result["pid"] for r in results}) == 1


def test_the_jobs_behind_a_killed_worker_run_again_on_a_new_one_uncounted(one, monkeypatch):
    sent = lists_sent(one, monkeypatch)
    pid_file = one.pid_file()
    head = one.submit("executor_test_jobs.sleeper", {"pid_file": pid_file})
    behind = [one.submit("executor_test_jobs.whoami", {"value": v}) for v in (1, 2)]
    queue_behind_a_first(one, head, *behind)
    one.loop(lambda: os.path.exists(pid_file))  # the first job reported, the list went out
    worker, _ = one.pids(pid_file)
    assert [head.job_id, *(r.job_id for r in behind)] in sent
    os.kill(worker, signal.SIGKILL)
    assert one.drive(head.job_id, until=("infra",)).outcome == "infra"  # the head's death
    one.loop(lambda: all(one.store.get(r.job_id).state.finished for r in behind))
    results = [one.store.get(r.job_id) for r in behind]
    assert [r.state for r in results] == [JobState.SUCCEEDED] * 2
    assert {r.result["pid"] for r in results} != {worker}
    assert [r.attempts for r in results] == [r.attempts for r in behind]
    assert not [e for e in one.exits if e.job_id in {r.job_id for r in behind}
                and e.outcome != "succeeded"]
    one.executor.kill(head.job_id)


def test_a_job_killed_while_it_waits_in_a_list_never_runs_and_the_one_ahead_goes_on(
        one, monkeypatch):
    sent = lists_sent(one, monkeypatch)
    pid_file, ran = one.pid_file(), one.pid_file()
    head = one.submit("executor_test_jobs.sleeper", {"pid_file": pid_file, "seconds": 0.5})
    waiting = one.submit("executor_test_jobs.sleeper", {"pid_file": ran})
    behind = one.submit("executor_test_jobs.whoami")
    queue_behind_a_first(one, head, waiting, behind)
    one.loop(lambda: os.path.exists(pid_file))  # the first job reported, the list went out
    worker, _ = one.pids(pid_file)
    assert [head.job_id, waiting.job_id, behind.job_id] in sent
    assert one.executor.worker_pid(waiting.job_id) is None  # not running: waiting behind
    assert one.executor.kill(waiting.job_id).outcome == "killed"
    assert alive(worker) and one.executor.worker_pid(head.job_id) == worker
    assert one.drive(head.job_id).outcome == "succeeded"
    # The worker got to the job given up (its record still says RUNNING here, so the
    # worker may have started it): the worker is killed as soon as its runner sees that,
    # and the job behind it runs on a new worker.
    one.loop(lambda: one.store.get(behind.job_id).state.finished)
    assert one.store.get(behind.job_id).state is JobState.SUCCEEDED
    assert one.store.get(behind.job_id).result["pid"] != worker
    assert not alive(worker)
    assert [e.outcome for e in one.exits if e.job_id == waiting.job_id] == []
    assert one.store.get(waiting.job_id).state is JobState.RUNNING  # nothing recorded


def test_an_outcome_read_early_by_a_kill_is_dropped_when_its_job_is_killed_too(one, monkeypatch):
    sent = lists_sent(one, monkeypatch)
    pid_file = one.pid_file()
    ahead = one.submit("executor_test_jobs.whoami")
    head = one.submit("executor_test_jobs.sleeper", {"pid_file": pid_file})
    queue_behind_a_first(one, ahead, head)
    one.loop(lambda: len(sent) == 2)  # the list went out; its outcomes are not read yet
    one.pids(pid_file)  # `ahead` ended and reported, `head` runs
    assert one.executor.kill(head.job_id).outcome == "killed"  # reads `ahead`'s outcome
    assert one.executor.kill(ahead.job_id).outcome == "killed"  # lost as well, meanwhile
    one.exits += one.executor.reap(time.monotonic())  # the early outcome, of a killed job
    assert ahead.job_id not in one.executor.running()
    assert not [e for e in one.exits if e.job_id == ahead.job_id]
    assert one.store.get(ahead.job_id).state is JobState.RUNNING  # killed: nothing recorded


def test_a_job_that_had_a_clock_gets_a_new_one_when_it_runs_from_a_list(one, monkeypatch):
    """A job resumed after an infrastructure fault still carries its last start; queued
    behind another in a list, it must get its own deadline when it runs, or never time out."""
    sent = lists_sent(one, monkeypatch)
    ahead = one.submit("executor_test_jobs.whoami")
    late = one.submit("executor_test_jobs.sleeper", {"pid_file": one.pid_file()}, timeout=0.3)
    queue_behind_a_first(one, ahead, late)
    one.executor._jobs[late.job_id].started_at = 1.0  # as `_resume` leaves it
    assert one.drive(late.job_id).outcome == "timeout"
    assert [ahead.job_id, late.job_id] in sent


def test_claimed_ahead_jobs_behind_a_long_one_are_given_back(one, monkeypatch):
    sent = lists_sent(one, monkeypatch)
    pid_file = one.pid_file()
    head = one.submit("executor_test_jobs.sleeper", {"pid_file": pid_file})
    ahead = [one.submit("executor_test_jobs.whoami", {"value": v}) for v in (1, 2)]
    one.executor.start(one.submit("executor_test_jobs.succeed"))
    one.executor.start(head)
    for record in ahead:
        one.executor.start(record, releasable=True)
    one.loop(lambda: os.path.exists(pid_file))
    worker, _ = one.pids(pid_file)
    assert [head.job_id, *(r.job_id for r in ahead)] in sent
    overdue = one.loop(lambda: one.executor.overdue(time.monotonic()), 5.0)
    assert [r.job_id for r in overdue] == [r.job_id for r in ahead]  # the head is not
    released = one.store.release_many([Release(r.job_id, r.generation, OWNER) for r in overdue])
    one.executor.forget([r.job_id for r in released])
    assert set(one.executor.running()) == {head.job_id}
    assert one.executor.worker_pid(head.job_id) == worker and alive(worker)
    assert one.executor.kill(head.job_id).outcome == "killed"
    one.loop(lambda: not one.executor._pool.working, 5.0)
    assert [one.store.get(r.job_id).state for r in ahead] == [JobState.PENDING] * 2

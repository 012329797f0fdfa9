"""Claiming ahead: the executor's room for a queue of short jobs, and giving back stuck claims.

Catches: a queue ahead of the workers while attempts are long (a long job would hold up
claimed jobs that another runner could run); no queue at all while attempts are short (the
workers would wait for the runner after every job); a claimed job stuck behind long jobs
that is never reported overdue; an attempt time taken from the runner's view (a runner that
reads an outcome late would see a no-op as long, and claim no queue ahead); a started
attempt, or a job taken over (not claimed ahead), reported overdue (giving it back would
run it twice, or hand back a take-over).
"""

from __future__ import annotations

import time

import pytest
from executor_harness import Harness, wait_for

from harunner.executor.executor import Executor
from harunner.executor.lookahead import RELEASE_AFTER


@pytest.fixture
def one(tmp_path):
    harness = Harness(tmp_path, concurrency=1)
    harness.executor.lookahead.prefetch = 8
    try:
        yield harness
    finally:
        harness.close()


def test_room_grows_a_queue_only_while_attempts_are_short(one: Harness) -> None:
    executor: Executor = one.executor
    assert executor.room() == executor.free_slots() == 1  # nothing measured yet: no queue
    one.run(one.submit("executor_test_jobs.succeed", {"value": 1}))
    assert executor.lookahead.attempt_time is not None  # the worker measured it
    executor.lookahead.attempt_time = 0.001  # as if attempts took a millisecond
    assert executor.room() == 1 + 8  # the free worker and the whole queue ahead
    executor.lookahead.attempt_time = 5.0  # as if attempts took seconds
    assert executor.room() == executor.free_slots()


def test_the_attempt_time_is_the_workers_measure_not_when_the_runner_read_it(
        one: Harness) -> None:
    executor: Executor = one.executor
    one.run(one.submit("executor_test_jobs.succeed", {"value": 1}))  # the worker is warm
    executor.lookahead.attempt_time = None
    executor.start(one.submit("executor_test_jobs.succeed", {"value": 2}))
    (proc,) = executor._pool.working.values()
    assert wait_for(lambda: proc.connection.poll(0), 20.0)  # its outcome waits in the pipe
    late = 0.5
    time.sleep(late)  # a runner busy elsewhere reads it only now
    one.loop(lambda: not executor.running())
    took = executor.lookahead.attempt_time
    assert took is not None and took < late, took


def test_a_claim_stuck_behind_a_long_job_is_overdue_and_forgotten(one: Harness) -> None:
    executor: Executor = one.executor
    long = one.submit("executor_test_jobs.sleeper", {"pid_file": one.pid_file()})
    executor.start(long, releasable=True)  # started at once: never overdue
    taken = one.submit("executor_test_jobs.succeed", {"value": 1})
    executor.start(taken)  # queued, but a take-over: never given back
    claimed = one.submit("executor_test_jobs.succeed", {"value": 2})
    started = time.monotonic()
    executor.start(claimed, releasable=True)
    assert executor.overdue(started) == []
    due = executor.release_due()
    assert due is not None and due <= started + RELEASE_AFTER + 0.01
    found = wait_for(lambda: executor.overdue(time.monotonic()), RELEASE_AFTER + 5)
    assert [r.job_id for r in found] == [claimed.job_id]
    executor.forget([claimed.job_id])
    assert claimed.job_id not in executor.running()
    assert set(executor.running()) == {long.job_id, taken.job_id}
    assert executor.release_due() is None

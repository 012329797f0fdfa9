"""What the executor and worker record for each way an attempt can end (real processes)."""

from __future__ import annotations

import signal
import time

import pytest
from executor_harness import OTHER, alive, wait_for, zombie_children

from harunner.store import JobState


def test_a_job_runs_to_success(harness):
    record = harness.submit("executor_test_jobs.succeed", {"value": 7})
    settled = harness.run(record)
    assert (settled.outcome, settled.exitcode) == ("succeeded", None)
    final = harness.store.get(record.job_id)
    assert final.state is JobState.SUCCEEDED
    assert final.result == {"value": 7, "attempt": 1}
    assert harness.executor.running() == {}
    assert harness.executor.free_slots() == harness.executor.concurrency


def test_a_raising_job_is_retried_per_policy_then_fails(harness):
    record = harness.submit("executor_test_jobs.boom", retries=2, backoff=0.05)
    delays = []
    for attempt in (1, 2):
        settled = harness.run(record)
        assert (settled.outcome, settled.exitcode) == ("retrying", None)
        pending = harness.store.get(record.job_id)
        assert pending.state is JobState.PENDING and pending.attempts == attempt
        assert f"ValueError: boom on attempt {attempt}" in pending.error
        delays.append(pending.not_before - pending.updated_at)
        record = harness.reassign(record.job_id)
    for delay, expected in zip(delays, [0.05, 0.10], strict=True):
        assert expected - 0.5 < delay <= expected + 1e-3  # retry_at is computed before finish
    settled = harness.run(record)
    assert (settled.outcome, settled.exitcode) == ("failed", None)
    final = harness.store.get(record.job_id)
    assert final.state is JobState.FAILED and final.attempts == 3
    log = harness.store.log_path(record.job_id).read_text()
    assert "Traceback" in log and "boom on attempt 3" in log


@pytest.mark.parametrize("job, args, exitcode, words", [
    ("crash", {"code": 13}, 13, "worker exited with code 13"),
    ("abort", {}, -signal.SIGABRT, "worker killed by signal SIGABRT"),
    ("exit_zero", {}, 0, "worker exited with code 0"),
])
def test_a_worker_that_dies_unrecorded_is_a_failed_attempt(harness, job, args, exitcode, words):
    record = harness.submit(f"executor_test_jobs.{job}", args, retries=1, backoff=0.05)
    settled = harness.run(record)
    assert (settled.outcome, settled.exitcode) == ("crashed", exitcode)
    pending = harness.store.get(record.job_id)
    assert pending.state is JobState.PENDING and pending.error == words
    assert pending.not_before > time.time() - 1
    settled = harness.run(harness.reassign(record.job_id))
    assert settled.outcome == "crashed"
    assert harness.store.get(record.job_id).state is JobState.FAILED
    after = harness.run(harness.submit("executor_test_jobs.succeed"))
    assert after.outcome == "succeeded"
    assert zombie_children() == []


def test_a_fenced_worker_exits_with_the_fenced_code_and_writes_nothing(harness):
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.checkpoint_forever", {"pid_file": pid_file})
    harness.executor.start(record)
    wait_for(lambda: (harness.store.read_checkpoint(record.job_id) or None), 10.0)
    taken = harness.store.take_over(record.job_id, record.generation + 1, OTHER)
    frozen = harness.store.read_checkpoint(record.job_id)
    settled = harness.drive(record.job_id)
    assert (settled.outcome, settled.exitcode) == ("fenced", None)
    assert harness.store.read_checkpoint(record.job_id) == frozen
    assert frozen.generation == record.generation
    assert harness.store.get(record.job_id) == taken
    assert "fenced" in harness.store.log_path(record.job_id).read_text()
    worker_pid = int(open(pid_file).read().split()[0])
    harness.loop(lambda: not alive(worker_pid))  # a fenced attempt retires its worker


def test_a_job_that_swallows_the_fence_still_counts_as_fenced(harness):
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.swallow_fence", {"pid_file": pid_file})
    harness.executor.start(record)
    wait_for(lambda: harness.store.read_checkpoint(record.job_id), 10.0)
    taken = harness.store.take_over(record.job_id, record.generation + 1, OTHER)
    settled = harness.drive(record.job_id)
    assert (settled.outcome, settled.exitcode) == ("fenced", None)
    assert harness.store.get(record.job_id) == taken


def test_a_worker_for_a_stale_generation_does_not_run(harness):
    record = harness.submit("executor_test_jobs.succeed")
    taken = harness.store.take_over(record.job_id, record.generation + 1, OTHER)
    settled = harness.run(record)
    assert (settled.outcome, settled.exitcode) == ("fenced", None)
    assert harness.store.get(record.job_id) == taken


def test_unknown_job_is_a_failed_attempt_with_a_clear_error(harness):
    record = harness.submit("executor_test_jobs.nope")
    settled = harness.run(record)
    assert settled.outcome == "failed"
    error = harness.store.get(record.job_id).error
    assert "UnknownJobError" in error and "no job named 'executor_test_jobs.nope'" in error


def test_job_output_goes_to_its_log(harness):
    record = harness.submit("executor_test_jobs.print_and_return")
    assert harness.run(record).outcome == "succeeded"
    log = harness.store.log_path(record.job_id).read_text()
    assert "to stdout" in log and "to stderr" in log
    assert "gen=1 attempt=1 INFO attempt 1 of executor_test_jobs.print_and_return starts" in log


def test_spawn_start_method_works_too(tmp_path):
    from executor_harness import Harness

    harness = Harness(tmp_path, start_method="spawn")
    try:
        record = harness.submit("executor_test_jobs.succeed", {"value": 3})
        assert harness.run(record).outcome == "succeeded"
    finally:
        harness.close()

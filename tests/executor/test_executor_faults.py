"""Infrastructure faults are not the job's failure; the job's own faults still are.

An infrastructure fault (the worker SIGKILLed from outside, the store's disk
full on a checkpoint) leaves the record RUNNING at its generation with the
attempt counter unchanged, re-runs the attempt from its checkpoint, and says
so in the job's log; a job with retries=0 still succeeds. A job that raises,
calls os._exit or crashes by another signal has failed an attempt.
"""

from __future__ import annotations

import os
import signal

import pytest
from executor_harness import OTHER

from harunner.executor import outcomes
from harunner.store import JobState


def test_a_worker_sigkilled_from_outside_resumes_without_losing_a_retry(harness):
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.resumable", {"pid_file": pid_file}, retries=0)
    harness.executor.start(record)
    worker_pid = harness.pids(pid_file)[0]
    os.kill(worker_pid, signal.SIGKILL)
    interrupted = harness.drive(record.job_id, until=("infra",))
    assert (interrupted.outcome, interrupted.exitcode) == ("infra", -signal.SIGKILL)
    during = harness.store.get(record.job_id)
    assert (during.state, during.generation, during.attempts) == (JobState.RUNNING, 1, 1)
    assert record.job_id in harness.executor.running()
    settled = harness.drive(record.job_id)
    assert settled.outcome == "succeeded"
    final = harness.store.get(record.job_id)
    assert final.result == {"resumed_from": {"step": 1}, "attempt": 1}
    assert (final.attempts, final.generation, final.error) == (1, 1, None)
    log = harness.store.log_path(record.job_id).read_text()
    assert "infrastructure fault: worker killed by SIGKILL from outside the job" in log
    assert "not counted against the job: attempt 1 resumes from its last checkpoint" in log


def test_a_full_disk_on_a_checkpoint_resumes_without_losing_a_retry(harness, tmp_path):
    record = harness.submit("executor_test_jobs.disk_full_once",
                            {"marker": str(tmp_path / "full-once")}, retries=0)
    harness.executor.start(record)
    interrupted = harness.drive(record.job_id, until=("infra",))
    assert interrupted.outcome == "infra"
    settled = harness.drive(record.job_id)
    assert settled.outcome == "succeeded"
    final = harness.store.get(record.job_id)
    assert final.result == {"resumed_from": {"step": 1}, "attempt": 1}
    assert (final.attempts, final.generation) == (1, 1)
    log = harness.store.log_path(record.job_id).read_text()
    assert "infrastructure fault, not counted against the job: DiskFullError" in log
    assert "attempt 1 resumes from its last checkpoint" in log


@pytest.mark.parametrize("job, outcome", [("raise_after_checkpoint", "failed"),
                                          ("crash", "crashed"), ("abort", "crashed")])
def test_a_job_that_raises_or_exits_itself_fails_its_attempt(harness, job, outcome):
    record = harness.submit(f"executor_test_jobs.{job}", retries=0)
    settled = harness.run(record)
    assert settled.outcome == outcome
    assert "infra" not in [e.outcome for e in harness.exits]
    final = harness.store.get(record.job_id)
    assert (final.state, final.attempts) == (JobState.FAILED, 1)


def test_sigkills_in_a_row_count_after_the_limit(harness, monkeypatch):
    monkeypatch.setattr(outcomes, "KILL_LIMIT", 3)
    monkeypatch.setattr(outcomes, "RESUME_MAX", 0.01)
    record = harness.submit("executor_test_jobs.kill_self_after_checkpoint", retries=0)
    settled = harness.run(record)
    assert (settled.outcome, settled.exitcode) == ("crashed", -signal.SIGKILL)
    assert [e.outcome for e in harness.exits] == ["infra"] * 3 + ["crashed"]
    final = harness.store.get(record.job_id)
    assert (final.state, final.attempts) == (JobState.FAILED, 1)
    assert harness.store.read_checkpoint(record.job_id).state == {"n": 4}


def test_a_resume_after_a_lost_owner_is_fenced_and_writes_nothing(harness):
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.resumable", {"pid_file": pid_file})
    harness.executor.start(record)
    os.kill(harness.pids(pid_file)[0], signal.SIGKILL)
    assert harness.drive(record.job_id, until=("infra",)).outcome == "infra"
    taken = harness.store.take_over(record.job_id, record.generation + 1, OTHER)
    assert harness.drive(record.job_id).outcome == "fenced"
    assert harness.store.get(record.job_id) == taken

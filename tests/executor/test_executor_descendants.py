"""Nothing an attempt started outlives it, not even a child that called setsid() (real processes).

Each case is run in both worker modes: the attempt ends normally, the worker
is killed by the executor (lost ownership), the worker dies by itself, or
the worker is SIGKILLed from outside. A double-forked daemon is covered too.
"""

from __future__ import annotations

import os
import signal

import pytest
from executor_harness import alive, wait_for, zombie_children


def session_child(harness, then: str):
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.setsid_child",
                            {"pid_file": pid_file, "then": then}, retries=1, backoff=0.01)
    harness.executor.start(record)
    worker_pid, child = harness.pids(pid_file)
    if then != "return":  # (a returning attempt may already have killed it)
        assert os.getsid(child) == child  # a session of its own: a group kill would miss it
    return record, worker_pid, child


def test_a_setsid_child_dies_when_its_attempt_returns(harness):
    record, worker_pid, child = session_child(harness, "return")
    settled = harness.drive(record.job_id)
    assert settled.outcome == "succeeded"
    assert not alive(child)  # killed before the outcome was sent, not eventually
    assert harness.store.get(record.job_id).result == {"child": child, "child_sid": child}


def test_a_setsid_child_dies_when_the_executor_kills_its_worker(harness):
    record, worker_pid, child = session_child(harness, "sleep")
    assert harness.executor.kill(record.job_id).outcome == "killed"
    assert not alive(worker_pid)
    wait_for(lambda: not alive(child), 2.0)
    assert zombie_children() == []


def test_a_setsid_child_dies_when_its_worker_exits_by_itself(harness):
    record, worker_pid, child = session_child(harness, "exit")
    settled = harness.drive(record.job_id)
    assert (settled.outcome, settled.exitcode) == ("crashed", 3)
    wait_for(lambda: not alive(child), 2.0)
    assert zombie_children() == []


def test_a_setsid_child_dies_when_its_worker_is_killed_from_outside(harness):
    record, worker_pid, child = session_child(harness, "sleep")
    os.kill(worker_pid, signal.SIGKILL)
    settled = harness.drive(record.job_id, until=("infra",))
    assert settled.outcome == "infra"
    wait_for(lambda: not alive(child), 2.0)
    harness.executor.kill(record.job_id)
    assert zombie_children() == []


def test_a_setsid_child_dies_when_its_attempt_times_out(harness):
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.setsid_child",
                            {"pid_file": pid_file, "then": "sleep"}, timeout=0.5)
    harness.executor.start(record)
    worker_pid, child = harness.pids(pid_file)
    assert harness.drive(record.job_id).outcome == "timeout"
    wait_for(lambda: not alive(child), 2.0)
    assert zombie_children() == []


def test_a_double_forked_daemon_dies_with_its_attempt(harness):
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.daemonize", {"pid_file": pid_file})
    harness.executor.start(record)
    worker_pid, daemon = harness.pids(pid_file)
    settled = harness.drive(record.job_id)
    assert settled.outcome == "succeeded"
    assert not alive(daemon)
    with pytest.raises(ProcessLookupError):
        os.kill(daemon, 0)  # reaped too, not a zombie left in the worker

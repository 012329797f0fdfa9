"""Timeouts, kills on lost ownership, and shutdown: whole process groups die (real processes)."""

from __future__ import annotations

import os
import signal
import time

from executor_harness import alive, wait_for, zombie_children

from harunner.store import JobState


def test_a_timeout_kills_the_worker_and_its_grandchild(harness):
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.sleeper", {"pid_file": pid_file},
                            timeout=0.5, retries=1, backoff=0.05)
    harness.executor.start(record)
    worker_pid, grandchild = harness.pids(pid_file)
    started = time.monotonic()
    settled = harness.drive(record.job_id)
    assert time.monotonic() - started < 3.0
    assert (settled.outcome, settled.exitcode) == ("timeout", -signal.SIGTERM)
    pending = harness.store.get(record.job_id)
    assert pending.state is JobState.PENDING and pending.error == "timed out after 0.5s"
    assert not alive(worker_pid)
    wait_for(lambda: not alive(grandchild), 2.0)


def test_a_worker_ignoring_sigterm_is_killed_after_the_grace(harness):
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.sleeper",
                            {"pid_file": pid_file, "ignore_term": True}, timeout=0.3)
    harness.executor.start(record)
    worker_pid, grandchild = harness.pids(pid_file)
    assert harness.executor.next_deadline() is not None
    settled = harness.drive(record.job_id)
    assert (settled.outcome, settled.exitcode) == ("timeout", -signal.SIGKILL)
    final = harness.store.get(record.job_id)
    assert final.state is JobState.FAILED and final.error == "timed out after 0.3s"
    wait_for(lambda: not alive(grandchild), 2.0)


def test_kill_stops_the_group_at_once_and_records_nothing(harness):
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.sleeper", {"pid_file": pid_file})
    harness.executor.start(record)
    worker_pid, grandchild = harness.pids(pid_file)
    killed = harness.executor.kill(record.job_id)
    assert (killed.outcome, killed.exitcode) == ("killed", -signal.SIGKILL)
    assert not alive(worker_pid)
    wait_for(lambda: not alive(grandchild), 2.0)
    assert harness.store.get(record.job_id) == record
    assert harness.executor.running() == {} and harness.executor.kill(record.job_id) is None
    assert harness.executor.reap(time.monotonic()) == []


def test_shutdown_kills_and_reaps_every_worker(harness):
    records, pids = [], []
    for index in range(3):  # concurrency 2: the third waits in the queue
        pid_file = harness.pid_file()
        record = harness.submit("executor_test_jobs.sleeper", {"pid_file": pid_file})
        harness.executor.start(record)
        records.append(record)
        if index < 2:
            pids.extend(harness.pids(pid_file))
    assert set(harness.executor.running()) == {r.job_id for r in records}
    assert harness.executor.free_slots() == 0
    pids.extend(harness.executor.worker_pids())
    exits = harness.executor.shutdown()
    assert sorted(e.job_id for e in exits) == sorted(r.job_id for r in records)
    assert {e.outcome for e in exits} == {"killed"}
    wait_for(lambda: not any(alive(pid) for pid in pids), 2.0)
    assert all(harness.store.get(r.job_id) == r for r in records)
    assert zombie_children() == []


def test_starting_a_second_worker_for_a_job_is_refused(harness):
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.sleeper", {"pid_file": pid_file})
    harness.executor.start(record)
    try:
        harness.executor.start(record)
    except Exception as error:
        assert "already has a worker" in str(error)
    else:
        raise AssertionError("a second start was accepted")


def test_a_dead_forkserver_costs_the_attempt_and_the_next_start_works(harness):
    from multiprocessing import forkserver

    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.sleeper", {"pid_file": pid_file},
                            retries=1, backoff=0.01)
    harness.executor.start(record)
    worker_pid, grandchild = harness.pids(pid_file)
    server = forkserver._forkserver._forkserver_pid
    assert server is not None and server != worker_pid
    os.kill(server, signal.SIGKILL)
    settled = harness.drive(record.job_id)
    assert settled.outcome == "crashed"
    assert harness.store.get(record.job_id).state is JobState.PENDING
    wait_for(lambda: not alive(worker_pid) and not alive(grandchild), 2.0)
    assert harness.run(harness.submit("executor_test_jobs.succeed")).outcome == "succeeded"

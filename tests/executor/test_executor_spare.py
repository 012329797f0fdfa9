"""worker_mode="process": one fresh worker per job, and a spare set up in advance takes the next."""

from __future__ import annotations

import os
import signal

import pytest
from executor_harness import Harness, alive, wait_for, zombie_children


@pytest.fixture
def process_harness(tmp_path):
    h = Harness(tmp_path, worker_mode="process")
    yield h
    h.close()


def test_warm_up_starts_a_spare_that_takes_the_next_job(process_harness):
    harness = process_harness
    harness.executor.warm_up()
    spare = harness.executor.spare_pid
    assert spare is not None and alive(spare)
    pid_file = harness.pid_file()
    record = harness.submit("executor_test_jobs.sleeper", {"pid_file": pid_file})
    harness.executor.start(record)
    assert harness.pids(pid_file)[0] == spare
    assert harness.executor.spare_pid is None
    harness.spare_after_start(spare)
    assert harness.executor.kill(record.job_id).outcome == "killed"


def test_each_job_gets_a_fresh_process(process_harness):
    harness = process_harness
    harness.executor.warm_up()
    pids = set()
    for value in (1, 2, 3):
        record = harness.submit("executor_test_jobs.whoami", {"value": value})
        assert harness.run(record).outcome == "succeeded"
        pids.add(harness.store.get(record.job_id).result["pid"])
    assert len(pids) == 3


def test_a_spare_that_died_idle_is_replaced(process_harness):
    harness = process_harness
    harness.executor.warm_up()
    spare = harness.executor.spare_pid
    os.kill(spare, signal.SIGKILL)
    wait_for(lambda: not alive(spare), 2.0)
    record = harness.submit("executor_test_jobs.succeed", {"value": 2})
    assert harness.run(record).outcome == "succeeded"
    harness.spare_after_start(spare)


def test_shutdown_kills_the_spare(process_harness):
    harness = process_harness
    harness.executor.warm_up()
    spare = harness.executor.spare_pid
    harness.executor.shutdown()
    assert harness.executor.spare_pid is None
    wait_for(lambda: not alive(spare), 2.0)
    assert zombie_children() == []


def test_spawned_spares_take_jobs_too(tmp_path):
    harness = Harness(tmp_path, start_method="spawn", worker_mode="process")
    try:
        harness.executor.warm_up()
        for value in (1, 2):
            spare = harness.executor.spare_pid
            record = harness.submit("executor_test_jobs.succeed", {"value": value})
            assert harness.run(record).outcome == "succeeded"
            assert harness.store.get(record.job_id).result["value"] == value
            harness.spare_after_start(spare)
    finally:
        harness.close()
    assert zombie_children() == []

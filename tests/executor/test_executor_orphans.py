"""No worker outlives its runner: SIGKILL a runner process and watch its worker die."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from executor_harness import HERE, TEST_JOBS, Harness, alive, wait_for, zombie_children

REPO = HERE.parent.parent


@pytest.mark.integration
@pytest.mark.parametrize("start_method, mode, job", [
    ("forkserver", "pool", "sleeper"), ("spawn", "pool", "sleeper"),
    ("forkserver", "process", "sleeper"), ("forkserver", "pool", "setsid_child"),
    ("spawn", "process", "setsid_child")])
def test_a_worker_dies_within_two_seconds_of_its_runner(tmp_path, start_method, mode, job):
    """Every worker (busy or idle) and the job's children, setsid() or not, die with it."""
    harness = Harness(tmp_path, adopt_orphans=False)
    pid_file = harness.pid_file()
    args = {"pid_file": pid_file, **({"then": "sleep"} if job == "setsid_child" else {})}
    record = harness.submit(f"executor_test_jobs.{job}", args)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(REPO), os.environ.get("PYTHONPATH")]))}
    runner = subprocess.Popen(
        [sys.executable, str(HERE / "runner_for_tests.py"), str(tmp_path / "state"), TEST_JOBS,
         record.job_id, start_method, mode], stdout=subprocess.PIPE, env=env, text=True)
    try:
        line = runner.stdout.readline()
        assert line.startswith("worker "), line
        worker_pid = int(line.split()[1])
        line = runner.stdout.readline()
        assert line.startswith("spare "), line
        spare_pid = int(line.split()[1])
        line = runner.stdout.readline()
        assert line.startswith("workers "), line
        workers = [int(pid) for pid in line.split()[1:]]
        assert worker_pid in workers and spare_pid in workers
        assert len(workers) == (3 if mode == "pool" else 2)
        assert harness.pids(pid_file)[0] == worker_pid
        grandchild = harness.pids(pid_file)[1]
        runner.kill()
        runner.wait(5)
        killed_at = time.monotonic()
        wait_for(lambda: not any(map(alive, (*workers, grandchild))), 2.0, 0.005)
        print(f"worker gone {1000 * (time.monotonic() - killed_at):.1f} ms after its runner")
        assert zombie_children() == []
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(5)
        runner.stdout.close()
        harness.close()
    assert harness.store.get(record.job_id).state.value == "running"


def test_the_worker_exits_at_once_if_its_runner_is_already_gone(tmp_path):
    from harunner.executor import worker

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    code = subprocess.run(
        [sys.executable, "-c",
         "import sys; from harunner.executor import worker; "
         f"worker.watch_runner({dead.pid}, 12345); sys.exit(0)"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=30).returncode
    assert code == worker.EXIT_ORPHANED
    assert Path(tmp_path).exists()


def test_the_watchdog_fires_when_the_runner_dies(tmp_path):
    from harunner.executor import worker

    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ticks = wait_for(lambda: worker.process_start_ticks(runner.pid) > 0 and
                         worker.process_start_ticks(runner.pid))
        watcher = subprocess.Popen(
            [sys.executable, "-c",
             "import time; from harunner.executor import worker; "
             f"worker.watch_runner({runner.pid}, {ticks}); time.sleep(60)"],
            env={**os.environ, "PYTHONPATH": str(REPO)})
        time.sleep(0.3)
        assert watcher.poll() is None
        os.kill(runner.pid, signal.SIGKILL)
        assert watcher.wait(2) == worker.EXIT_ORPHANED
    finally:
        runner.kill()
        runner.wait()

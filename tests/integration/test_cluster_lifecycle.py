"""Supervisor, workers and submissions against a real cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from harunner.store import JobState

from .conftest import alive, descendants, poll, zombies

pytestmark = pytest.mark.integration


def test_jobs_submitted_while_no_runner_is_up_run_once_it_starts(make_cluster):
    cluster = make_cluster()
    jobs = [cluster.submit("itjobs.ticker", to=5, delay=0.001) for _ in range(5)]
    assert all(cluster.record(j).state is JobState.PENDING for j in jobs)
    cluster.start()
    for job in jobs:
        final = cluster.finished(job)
        assert final.state is JobState.SUCCEEDED and final.result["count"] == 5


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_dying_worker_is_retried_and_its_runner_is_unaffected(make_cluster, how):
    cluster = make_cluster()
    cluster.start()
    pids = cluster.runner_pids()
    job = cluster.submit("itjobs.die_once", how=how)
    final = cluster.finished(job)
    assert final.state is JobState.SUCCEEDED, final
    assert final.result == "ok on attempt 2"
    assert final.attempts == 2
    assert cluster.runner_pids() == pids


def test_sigkill_of_the_supervisor_keeps_jobs_running_and_a_restart_adopts(make_cluster):
    cluster = make_cluster()
    supervisor = cluster.start()
    pids = cluster.runner_pids()
    job = cluster.submit("itjobs.ticker", to=100, delay=0.01)
    poll(lambda: cluster.checkpoint_i(job) >= 5, 30, "job started")
    supervisor.kill()
    supervisor.wait()
    at = cluster.checkpoint_i(job)
    poll(lambda: cluster.checkpoint_i(job) > at + 5, 10, "the job to go on")
    assert all(alive(p) for p in pids.values())
    cluster.start()
    assert cluster.runner_pids() == pids, "the new supervisor did not adopt the runners"
    assert cluster.finished(job).state is JobState.SUCCEEDED
    os.kill(pids[0], signal.SIGKILL)  # an adopted runner's death is still seen and repaired
    poll(lambda: cluster.runner_pid(0) != pids[0], 10, "slot 0 respawned")


def test_a_second_start_on_a_state_dir_in_use_is_refused(make_cluster):
    cluster = make_cluster()
    cluster.start()
    second = subprocess.run([sys.executable, "-m", "harunner", "start", "--config",
                             str(cluster.config_path)], capture_output=True, text=True,
                            timeout=30)
    assert second.returncode == 1
    assert "in use by a running supervisor" in second.stderr
    assert "Traceback" not in second.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_start_stops_cleanly_on_a_signal_within_5_seconds(make_cluster, signum):
    cluster = make_cluster()
    supervisor = cluster.start()
    job = cluster.submit("itjobs.sleeper", seconds=60)
    poll(lambda: cluster.store.read_checkpoint(job), 30, "worker started")
    started = time.monotonic()
    supervisor.send_signal(signum)
    supervisor.wait(timeout=10)
    assert time.monotonic() - started < 5.0
    assert supervisor.returncode == (130 if signum == signal.SIGINT else 0)  # Ctrl-C: 130
    poll(lambda: not [p for p in descendants(os.getpid()) if alive(p)], 2.0,
         "no runner or worker left")


def test_no_worker_outlives_its_runner_and_no_zombies_remain(make_cluster):
    cluster = make_cluster(respawn_backoff_ms=2000)
    cluster.start()
    job = cluster.submit("itjobs.sleeper", seconds=60)
    worker = int(poll(lambda: cluster.store.read_checkpoint(job), 30, "worker").state["pid"])
    slot, runner = cluster.owner_pid(job)
    os.kill(runner, signal.SIGKILL)
    killed = time.monotonic()
    poll(lambda: not alive(worker), 2.0, "the worker to die with its runner")
    assert time.monotonic() - killed < 2.0
    cluster.stop()
    assert zombies() == []


def test_harunner_stop_stops_the_cluster(make_cluster):
    cluster = make_cluster()
    supervisor = cluster.start()
    result = subprocess.run([sys.executable, "-m", "harunner", "stop", "--config",
                             str(cluster.config_path)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout
    supervisor.wait(timeout=5)


def test_a_crash_looping_slot_is_respawned_with_a_growing_back_off(make_cluster):
    from harunner.store.events import read_events

    cluster = make_cluster(slots=1, respawn_backoff_ms=100, respawn_backoff_max_ms=1600)
    cluster.start(wait=False, env={"HARUNNER_FAILPOINTS": "runner.started=exit"})

    def spawns() -> list[float]:
        return [e["t"] for e in read_events(cluster.layout.events) if e["event"] == "spawned"]

    poll(lambda: len(spawns()) >= 6, 60, "six spawns of the crashing slot", 0.05)
    times = spawns()[:6]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]  # start-up + back-off
    assert gaps[-1] - gaps[0] > 1.0, f"back-off 100 ms doubling to 1.6 s not seen: {gaps}"
    assert max(gaps) < 1.6 + 3.0, f"back-off not capped: gaps {gaps}"


def test_a_burst_of_submissions_causes_no_false_failover(make_cluster):
    """Sixty jobs at once: assigning and starting them must not starve the heartbeats."""
    cluster = make_cluster()
    cluster.start()
    jobs = [cluster.submit("itjobs.sleeper", seconds=1.0) for _ in range(60)]
    finals = [cluster.finished(job, timeout=120) for job in jobs]
    assert all(f.state is JobState.SUCCEEDED for f in finals)
    taken_over = [f.job_id for f in finals if f.generation != 1 or f.attempts != 1]
    assert taken_over == [], f"{len(taken_over)} jobs were taken over without any failure"


def test_a_hung_runner_is_killed_and_its_slot_respawned(make_cluster):
    cluster = make_cluster()
    cluster.start()
    pids = cluster.runner_pids()
    standby = max(pids)
    os.kill(pids[standby], signal.SIGSTOP)
    limit = 4 * cluster.config.hang_timeout_ms / 1000 + 5
    poll(lambda: cluster.runner_pid(standby) != pids[standby], limit, "the slot respawned",
         0.05)
    poll(lambda: not alive(pids[standby]), 5, "the hung runner to be gone")
    cluster.wait_up()

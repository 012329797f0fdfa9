"""Every CLI verb and every exit code, run as real commands against a real cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from integration.conftest import Cluster, alive, descendants, poll

from harunner.store import JobState

pytestmark = pytest.mark.integration


def harunner(cluster: Cluster, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARUNNER_")}
    return subprocess.run([sys.executable, "-m", "harunner", *args, "--config",
                           str(cluster.config_path)], capture_output=True, text=True,
                          timeout=timeout, cwd=cluster.root, env=env)


def ok(result: subprocess.CompletedProcess, code: int = 0) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def test_every_verb_and_exit_code(cli_cluster):
    cluster = cli_cluster()
    out = ok(harunner(cluster, "submit", "clijobs.count", "--arg", "to=20", "--wait"))
    job, result = out.splitlines()
    assert json.loads(result) == {"count": 20, "note": ""}
    assert json.loads(ok(harunner(cluster, "result", job))) == {"count": 20, "note": ""}
    shown = ok(harunner(cluster, "show", job))
    assert "attempt 1:" in shown and "(generation 1)" in shown and "progress:   20/20" in shown
    assert "counted to 20" in ok(harunner(cluster, "logs", job))

    boom = harunner(cluster, "submit", "clijobs.boom", "--wait")
    assert boom.returncode == 1 and "ValueError: boom" in boom.stderr
    failed = boom.stdout.strip()
    assert "last frame: " in ok(harunner(cluster, "show", failed))
    listed = json.loads(ok(harunner(cluster, "jobs", "--state", "failed", "--json")))
    assert [j["id"] for j in listed] == [failed]
    assert "pending (generation 2)" in ok(harunner(cluster, "retry", failed))
    poll(lambda: cluster.record(failed).generation == 3 and cluster.record(failed).state
         is JobState.FAILED, 30, "the retried job to fail again")
    ok(harunner(cluster, "result", failed), 1)

    forever = ok(harunner(cluster, "submit", "clijobs.wait_forever")).strip()
    poll(lambda: cluster.record(forever).state is JobState.RUNNING, 30, "it to run")
    assert "still running after 0.3 s" in harunner(
        cluster, "result", forever, "--wait", "--timeout", "0.3").stderr
    ok(harunner(cluster, "result", forever), 4)
    watch = subprocess.Popen([sys.executable, "-m", "harunner", "status", "--watch", "--json",
                              "--config", str(cluster.config_path)], stdout=subprocess.PIPE,
                             text=True)
    try:
        lines = [json.loads(watch.stdout.readline()) for _ in range(2)]
    finally:
        watch.kill()
        watch.wait()
    assert all(len(line["runners"]) == 3 for line in lines)
    assert "cancelled" in ok(harunner(cluster, "cancel", forever))
    ok(harunner(cluster, "result", forever), 3)

    table = ok(harunner(cluster, "jobs", "--limit", "2"))
    assert forever in table and job not in table
    ok(harunner(cluster, "jobs", "--state", "bogus"), 2)
    assert "pruned 3 finished jobs" in ok(harunner(cluster, "prune", "--older-than", "0s"))
    version = subprocess.run([sys.executable, "-m", "harunner", "--version"],
                             capture_output=True, text=True, timeout=60)
    assert ok(version).startswith("harunner ")
    assert "stopped" in ok(harunner(cluster, "stop"))
    assert "no cluster is running" in harunner(cluster, "stop").stderr
    ok(harunner(cluster, "stop"), 5)


def test_logs_follow_ends_when_the_job_does(cli_cluster):
    cluster = cli_cluster()
    job = ok(harunner(cluster, "submit", "clijobs.count", "--arg", "to=40")).strip()
    assert "counted to 40" in ok(harunner(cluster, "logs", job, "--follow"))
    assert cluster.record(job).state is JobState.SUCCEEDED


def test_stop_after_the_supervisor_was_killed_waits_for_the_runners(cli_cluster):
    cluster = cli_cluster()
    jobs = [ok(harunner(cluster, "submit", "itjobs.sleeper")).strip() for _ in range(3)]
    poll(lambda: all(cluster.store.read_checkpoint(job) for job in jobs), 30, "jobs to run")
    runners = cluster.runner_pids()
    assert cluster.supervisor is not None
    cluster.supervisor.kill()
    cluster.supervisor.wait()
    assert "stopped" in ok(harunner(cluster, "stop"))
    assert [pid for pid in runners.values() if alive(pid)] == []
    assert [pid for pid in descendants(os.getpid()) if alive(pid)] == []


def test_ctrl_c_of_start_exits_130(cli_cluster):
    cluster = cli_cluster()
    assert cluster.supervisor is not None
    cluster.supervisor.send_signal(signal.SIGINT)
    assert cluster.supervisor.wait(timeout=30) == 130


def test_status_marks_a_job_whose_owner_is_gone_as_interrupted(cli_cluster):
    cluster = cli_cluster()
    job = ok(harunner(cluster, "submit", "itjobs.sleeper")).strip()
    poll(lambda: cluster.checkpoint_i(job) == 0 and cluster.store.read_checkpoint(job), 30,
         "the sleeper to start")
    runners = cluster.runner_pids()
    assert cluster.supervisor is not None
    cluster.supervisor.kill()
    for pid in runners.values():
        os.kill(pid, signal.SIGKILL)
    poll(lambda: not any(alive(pid) for pid in runners.values()), 10, "the runners to die")
    poll(lambda: harunner(cluster, "status").returncode == 0 and "interrupted" in
         harunner(cluster, "status").stdout, 10, "status to say interrupted")
    assert "interrupted, resumes at next start" in ok(harunner(cluster, "status"))

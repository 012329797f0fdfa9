"""The Prometheus endpoint of a real cluster, scraped over HTTP before and after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from harunner.store import JobState

from .conftest import poll

pytestmark = pytest.mark.integration
prometheus_parser = pytest.importorskip("prometheus_client.parser")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples: Samples = {}
    for family in prometheus_parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, metric: str, **labels: str) -> float:
    """The sum of the samples of `metric` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == metric and wanted <= set(found))


def test_the_counters_and_the_report_count_a_sigkill_of_a_jobs_owner(make_cluster):
    port = free_port()
    cluster = make_cluster(metrics_port=port)
    cluster.start()
    # Up comes from the first beat, the role from the election after it: wait for both.
    poll(lambda: (s := scrape(port)) and value(s, "harunner_runner_up") == 3
         and value(s, "harunner_runner_role", role="primary") == 1 and s, 20,
         "three runners up on the endpoint, one of them primary")
    quick = [cluster.submit("itjobs.ticker", to=3, delay=0.001) for _ in range(3)]
    for job in quick:
        assert cluster.finished(job).state is JobState.SUCCEEDED
    job = cluster.submit("itjobs.ticker", to=300, delay=0.01)
    poll(lambda: cluster.checkpoint_i(job) >= 5, 30, "the long job checkpointing")
    before = scrape(port)
    assert value(before, "harunner_jobs", state="running", name="itjobs.ticker") == 1
    slot, pid = cluster.owner_pid(job)
    incarnation = value(before, "harunner_runner_incarnation", slot=str(slot))
    os.kill(pid, signal.SIGKILL)
    assert cluster.finished(job).state is JobState.SUCCEEDED

    def moved() -> Samples | None:
        after = scrape(port)
        respawned = value(after, "harunner_respawns_total") > value(before,
                                                                     "harunner_respawns_total")
        up_again = value(after, "harunner_runner_incarnation", slot=str(slot)) > incarnation
        return after if respawned and up_again else None

    after = poll(moved, 30, "the killed slot respawned and beating again")
    grew = {key: value(after, metric, **labels) - value(before, metric, **labels)
            for key, metric, labels in [
                ("crash", "harunner_failovers_total", {"cause": "crash"}),
                ("owned", "harunner_failover_seconds_count", {"stage": "owned"}),
                ("checkpoint", "harunner_failover_seconds_count", {"stage": "checkpoint"}),
                ("ended", "harunner_attempt_seconds_count", {"outcome": "succeeded"}),
                ("decisions", "harunner_paxos_decisions_total", {}),
                ("respawns", "harunner_respawns_total", {"slot": str(slot)}),
                ("finished", "harunner_jobs_finished", {"state": "succeeded"}),
            ]}
    assert grew["crash"] >= 1, grew  # the job (and the scheduler duty, if it was primary)
    assert grew["owned"] == grew["crash"], grew
    assert grew["checkpoint"] == 1, grew  # the job's first checkpoint after the take-over
    assert grew["respawns"] == 1, grew
    assert grew["ended"] == 1, grew
    assert grew["finished"] == 1, grew
    assert grew["decisions"] >= grew["crash"], grew
    assert value(after, "harunner_failovers_total", cause="hang") == 0
    assert value(after, "harunner_attempts_total", name="itjobs.ticker") == 4
    assert value(after, "harunner_checkpoint_write_seconds_count") >= 3 * 3 + 5
    assert value(after, "harunner_jobs", state="running", name="itjobs.ticker") == 0
    owned = value(after, "harunner_failover_seconds_sum", stage="owned") - value(
        before, "harunner_failover_seconds_sum", stage="owned")
    assert 0 < owned < 5 * grew["owned"], owned
    report_counts_the_failover(cluster, job)


def report_counts_the_failover(cluster, job: str) -> None:
    """`harunner report --json` on the same cluster: the SIGKILL is one crash failover."""
    done = subprocess.run([sys.executable, "-m", "harunner", "report", "--json", "--config",
                           str(cluster.config_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["failovers"] == {"crash": 1, "hang": 0}, report
    assert report["jobs_moved"] >= 1
    [figures] = [j for j in report["jobs"] if j["job"] == job]
    assert figures["failovers"] == 1 and 0 < figures["down_seconds"] < 5
    assert 0 < figures["availability"] < 1
    for stage in ("detect", "decide", "owned", "resume", "checkpoint"):
        assert report["stages"][stage]["count"] >= 1, (stage, report["stages"])
    assert report["still_down"] == []
    text = subprocess.run([sys.executable, "-m", "harunner", "report", "--config",
                           str(cluster.config_path)], capture_output=True, text=True, timeout=60)
    assert "failovers (runner deaths): 1 (crash 1, hang 0)" in text.stdout, text.stdout


def test_metrics_off_binds_no_port_and_never_imports_prometheus_client(make_cluster, tmp_path):
    """A stand-in prometheus_client on the path writes a marker if any process imports it."""
    trap = _trap(tmp_path)
    env = {"PYTHONPATH": os.pathsep.join([str(trap), os.environ.get("PYTHONPATH", "")])}
    cluster = make_cluster()
    cluster.start(env=env)
    job = cluster.submit("itjobs.ticker", to=5, delay=0.001)
    assert cluster.finished(job).state is JobState.SUCCEEDED
    pids = [cluster.supervisor.pid, *cluster.runner_pids().values()]
    assert not [pid for pid in pids if _listening_tcp(pid)], "a process listens on TCP"
    assert not (trap / "imported").exists(), (trap / "imported").read_text()


def test_the_trap_sees_an_import_when_metrics_are_on(tmp_path):
    """The check above can fail: with metrics on, the first measurement imports the library."""
    trap = _trap(tmp_path)
    code = "import harunner.metrics as m; m.checkpoint_written(0.001)"
    env = {**os.environ, "PYTHONPATH": str(trap), "HARUNNER_METRICS_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert (trap / "imported").exists()


def _trap(folder: Path) -> Path:
    trap = folder / "trap"
    (trap / "prometheus_client").mkdir(parents=True)
    (trap / "prometheus_client" / "__init__.py").write_text(
        "import os\n"
        f"with open({str(trap / 'imported')!r}, 'a') as f:\n"
        "    f.write(f'imported by pid {os.getpid()}\\n')\n"
        "raise ImportError('the trap of test_metrics_cluster')\n")
    return trap


def _listening_tcp(pid: int) -> bool:
    """Whether process `pid` holds a listening TCP socket (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                return True
    return False

"""harunner.metrics: no-ops when off, multiprocess files, the merge of dead processes, serving."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from harunner import metrics

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import multiprocess  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

WRITE = ("import harunner.metrics as m\n"
         "m.claimed('jobs.a', 2, 0.5)\n"
         "m.failover('crash', 0.02)\n"
         "m.checkpoint_written(0.003)\n"
         "m.respawned(1)\n")


def run_process(code: str, folder: Path | None) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in (metrics.ENV, metrics.PROMETHEUS_ENV)}
    if folder is not None:
        env[metrics.ENV] = str(folder)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout


def totals(folder: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))
    text = prometheus_client.generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_off_every_call_is_a_no_op_and_prometheus_client_is_never_imported():
    out = run_process(WRITE + "import sys\nprint('prometheus_client' in sys.modules)\n", None)
    assert out.strip() == "False"


def test_on_a_process_writes_its_own_files_in_the_folder(tmp_path):
    run_process(WRITE, tmp_path)
    names = sorted(p.name.rsplit("_", 1)[0] for p in tmp_path.glob("*.db"))
    assert names == ["counter", "histogram"]
    values = totals(tmp_path)
    assert values[("harunner_attempts_total", (("name", "jobs.a"),))] == 1
    assert values[("harunner_retries_total", (("name", "jobs.a"),))] == 1
    assert values[("harunner_failovers_total", (("cause", "crash"),))] == 1
    assert values[("harunner_respawns_total", (("slot", "1"),))] == 1
    assert values[("harunner_failover_seconds_count", (("stage", "owned"),))] == 1


def test_merging_dead_processes_keeps_every_count_and_bounds_the_files(tmp_path):
    for _ in range(3):
        run_process(WRITE, tmp_path)
    before = totals(tmp_path)
    assert len(list(tmp_path.glob("*.db"))) == 6
    assert metrics.merge_dead(tmp_path) == 6
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["counter_merged.db",
                                                             "histogram_merged.db"]
    assert totals(tmp_path) == before
    run_process(WRITE, tmp_path)  # and again: the merged file adds up, it is not replaced
    assert metrics.merge_dead(tmp_path) == 2
    after = totals(tmp_path)
    assert after[("harunner_failovers_total", (("cause", "crash"),))] == 4
    assert after[("harunner_checkpoint_write_seconds_count", ())] == 4


def test_the_files_of_live_processes_are_not_merged_and_survive_preparing(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    live = folder / f"counter_{os.getpid()}.db"
    live.write_bytes(b"")
    run_process(WRITE, folder)
    (folder / "counter_merged.db").write_bytes(b"")
    metrics.prepare_folder(folder)
    assert sorted(p.name for p in folder.glob("*.db")) == [live.name]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_serve_exposes_the_files_and_the_levels_and_stops(tmp_path):
    run_process(WRITE, tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    levels = [metrics.Level("harunner_runner_up", "up", 1.0, {"slot": "0"}),
              metrics.Level("harunner_runner_up", "up", 0.0, {"slot": "1"})]
    stop = metrics.serve("127.0.0.1", port, tmp_path, lambda: levels)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    finally:
        stop()
    assert 'harunner_runner_up{slot="0"} 1.0' in text
    assert 'harunner_runner_up{slot="1"} 0.0' in text
    assert 'harunner_failovers_total{cause="crash"} 1.0' in text
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["counter_merged.db",
                                                             "histogram_merged.db"]
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))  # stopped: the port is free again


def test_a_busy_metrics_port_stops_the_start_with_one_line():
    from harunner.config import Config
    from harunner.errors import ClusterError
    from harunner.supervisor import Supervisor

    root = Path(tempfile.mkdtemp(prefix="hrm-", dir="/tmp"))  # short: ipc:// paths
    saved = {name: os.environ.get(name) for name in (metrics.ENV, metrics.PROMETHEUS_ENV)}
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            supervisor = Supervisor(Config(state_dir=str(root / "state"), metrics_port=port))
            with pytest.raises(ClusterError, match=f"metrics endpoint 127.0.0.1:{port} cannot "
                               "be bound .*choose a free metrics_port, or 0"):
                supervisor.run()
        assert supervisor.slots[0].pid is None  # refused before any runner was started
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(root, ignore_errors=True)


def test_the_metrics_keys_are_checked_and_come_from_the_environment_too(tmp_path, monkeypatch):
    from harunner import config
    from harunner.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    assert config.load(None, env={}).metrics_port == 0
    loaded = config.load(None, env={"HARUNNER_METRICS_PORT": "9187",
                                    "HARUNNER_METRICS_DIR": "/ignored"})
    assert (loaded.metrics_port, loaded.metrics_host) == (9187, "127.0.0.1")
    with pytest.raises(ConfigError, match="metrics_port is 70000; 0 .metrics off. or a TCP port"):
        config.load(None, {"metrics_port": 70000}, env={})
    with pytest.raises(ConfigError, match="metrics_host is empty"):
        config.load(None, {"metrics_host": ""}, env={})


def test_the_grafana_dashboard_is_json_and_names_only_metrics_that_exist():
    import json
    import re

    root = Path(__file__).resolve().parents[1]
    dashboard = json.loads((root / "config" / "grafana-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"harunner_[a-z_]+", target["expr"])}
    written = {m._name for m in metrics._define(prometheus_client).values()}
    levels = set(re.findall(r'Level\("(harunner_[a-z_]+)"',
                            (root / "harunner" / "supervisor.py").read_text()))
    suffixes = ("_total", "_bucket", "_count", "_sum")
    known = written | levels | {n + s for n in written for s in suffixes}
    assert used and used <= known, used - known

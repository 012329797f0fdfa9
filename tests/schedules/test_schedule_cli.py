"""`harunner schedules`: declared, registered and fired schedules; a bad one exits 2 in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harunner.runner.cron import CronDuty
from harunner.store import Store

JOBS = """
from harunner import job

@job(name="cli.hourly", schedule="0 * * * *", timezone="Europe/Berlin")
def hourly(ctx, scheduled_at=""):
    return scheduled_at

@job(name="cli.quick", every="10s", overlap=True)
def quick(ctx):
    return 1
"""


def project(tmp_path: Path, source: str) -> Path:
    folder = tmp_path / "jobs"
    folder.mkdir(exist_ok=True)
    (folder / "clisched.py").write_text(source)
    config = tmp_path / "harunner.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\njobs = ["{folder}"]\n')
    return config


def schedules(config: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARUNNER_")}
    return subprocess.run([sys.executable, "-m", "harunner", "schedules", "--config",
                           str(config), *flags], capture_output=True, text=True, env=env,
                          timeout=60)


def test_declared_schedules_are_listed_before_any_runner_started(tmp_path):
    pytest.importorskip("croniter")
    done = schedules(project(tmp_path, JOBS), "--json")
    assert done.returncode == 0, done.stderr
    views = {view["name"]: view for view in json.loads(done.stdout)}
    assert views["cli.hourly"]["schedule"] == "0 * * * *"
    assert views["cli.hourly"]["timezone"] == "Europe/Berlin"
    assert views["cli.quick"]["schedule"] == "every 10s"
    assert all(v["status"].startswith("declared") and v["next_fire"] is None
               for v in views.values())


def test_registered_and_fired_schedules_show_next_last_and_the_job_state(tmp_path):
    pytest.importorskip("croniter")
    config = project(tmp_path, JOBS)
    store = Store(tmp_path / "state")
    duty = CronDuty(store, [str(tmp_path / "jobs")], wall=1_800_000_005.0)
    duty.tick(0.0, 1_800_000_010.0, primary=True)  # cli.quick fires at ...010
    done = schedules(config)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "SCHEDULE", "TZ"]
    hourly = next(line for line in lines if line.startswith("cli.hourly"))
    quick = next(line for line in lines if line.startswith("cli.quick"))
    assert "Europe/Berlin" in hourly and "2027-01-15T10:00:00+01:00" in hourly
    assert "2027-01-15T08:00:10+00:00" in quick and "pending" in quick
    views = {v["name"]: v for v in json.loads(schedules(config, "--json").stdout)}
    assert views["cli.quick"]["last_job_state"] == "pending"
    assert views["cli.quick"]["fired"] == 1 and views["cli.quick"]["status"] == "enabled"


def test_a_bad_schedule_is_one_line_and_exit_2(tmp_path):
    pytest.importorskip("croniter")
    config = project(tmp_path, JOBS.replace("0 * * * *", "0 25 * * *"))
    done = schedules(config)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "not a valid cron expression" in done.stderr and "cli" in done.stderr

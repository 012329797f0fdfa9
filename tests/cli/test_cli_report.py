"""`harunner report` over a synthetic event log: text, --json, --since, and its errors."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from harunner.cli.app import app
from harunner.cli.report import parse_since

T0 = 1_800_000_000.0
EVENTS = [
    {"t": T0, "event": "runner_started", "slot": 0, "incarnation": 1, "pid": 100},
    {"t": T0, "event": "runner_started", "slot": 1, "incarnation": 1, "pid": 101},
    {"t": T0 + 1, "event": "worker_started", "job": "job-a", "generation": 1, "slot": 0},
    {"t": T0 + 10, "event": "peer_exit", "slot": 0, "pid": 100},
    {"t": T0 + 10.001, "event": "detected", "slot": 0, "incarnation": 1, "reason": "exited"},
    {"t": T0 + 10.02, "event": "decided", "job": "job-a", "generation": 2, "slot": 1},
    {"t": T0 + 10.03, "event": "took_over", "job": "job-a", "generation": 2, "slot": 1},
    {"t": T0 + 10.031, "event": "worker_started", "job": "job-a", "generation": 2, "slot": 1},
]


@pytest.fixture
def logged(tmp_path, monkeypatch):
    """A project whose state directory holds the event log of one crash failover."""
    for name in list(os.environ):
        if name.startswith("HARUNNER_"):
            monkeypatch.delenv(name)
    (tmp_path / "harunner.toml").write_text(f'state_dir = "{tmp_path / "state"}"\n')
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "state" / "logs" / "events.jsonl"
    log.parent.mkdir(parents=True)
    lines = [json.dumps(e) for e in EVENTS] + ["{torn line"]
    log.write_text("\n".join(lines) + "\n")
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(app, ["report", *args])


def test_text_names_the_failover_its_stages_and_the_job(logged):
    result = run()
    assert result.exit_code == 0, result.output
    assert "failovers (runner deaths): 1 (crash 1, hang 0); jobs failed over: 1" in result.output
    assert "owned again (downtime)" in result.output
    assert "30.0 ms" in result.output  # death to owned again
    assert "still without an owner" not in result.output
    assert "job-a" in result.output


def test_json_is_the_same_report_for_machines(logged):
    result = run("--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["failovers"] == {"crash": 1, "hang": 0}
    assert report["events"] == len(EVENTS)  # the torn line is skipped
    assert report["stages"]["owned"]["worst"] == pytest.approx(0.030)
    assert report["jobs"][0]["job"] == "job-a"


def test_since_after_the_failover_leaves_it_out(logged):
    report = json.loads(run("--json", "--since", str(T0 + 11)).output)
    assert report["failovers"] == {"crash": 0, "hang": 0}
    assert report["window"]["start"] == T0 + 11


def test_since_accepts_an_age_and_an_iso_time():
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    iso = datetime(2027, 1, 15, tzinfo=UTC)
    assert parse_since("2027-01-15T00:00+00:00", now=0.0) == iso.timestamp()
    assert parse_since("1800000000.5", now=0.0) == 1_800_000_000.5
    assert parse_since(None, now=1.0) is None


def test_a_bad_since_and_a_missing_log_are_one_line_usage_errors(logged, tmp_path):
    bad = run("--since", "yesterday")
    assert bad.exit_code == 2 and "--since 'yesterday'" in bad.stderr
    (logged / "state" / "logs" / "events.jsonl").unlink()
    missing = run()
    assert missing.exit_code == 2 and "no event log at" in missing.stderr
    assert "Traceback" not in missing.output + missing.stderr

"""The CLI: clear one-line errors, exit code 2 for usage errors, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harunner.cli.app import app
from harunner.store import JobState, Store

JOBS = Path(__file__).parents[1] / "integration" / "itjobs"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with a config naming the test jobs and a state dir inside it."""
    for name in list(__import__("os").environ):
        if name.startswith("HARUNNER_"):
            monkeypatch.delenv(name)
    config = tmp_path / "harunner.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\njobs = ["{JOBS}"]\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_usage_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_submit_is_durable_and_prints_the_job_id(project):
    result = run("submit", "itjobs.ticker", "--arg", "to=3")
    assert result.exit_code == 0, result.stderr
    job_id = result.stdout.strip()
    record = Store(project / "state").get(job_id)
    assert record.state is JobState.PENDING and record.args == {"to": 3}


def test_unknown_job_names_it_and_lists_known_ones(project):
    assert_usage_error(run("submit", "itjobs.tickr"), "itjobs.tickr", "itjobs.ticker")


def test_malformed_arg_is_a_usage_error(project):
    assert_usage_error(run("submit", "itjobs.ticker", "--arg", "to"), "to")


def test_unknown_argument_names_the_parameter_and_the_signature(project):
    assert_usage_error(run("submit", "itjobs.ticker", "--arg", "speed=3"), "speed", "ticker(")


def test_nothing_is_stored_when_a_submission_is_refused(project):
    run("submit", "itjobs.ticker", "--arg", "speed=3")
    assert Store(project / "state").list_jobs() == []


def test_unknown_config_key_names_the_file_and_the_key(project):
    (project / "harunner.toml").write_text('slotz = 3\n')
    assert_usage_error(run("start"), "harunner.toml", "slotz")


def test_wrong_config_type_is_refused(project):
    (project / "harunner.toml").write_text('slots = "three"\n')
    assert_usage_error(run("start"), "slots", "integer")


def test_hang_timeout_shorter_than_two_heartbeats_is_refused(project):
    (project / "harunner.toml").write_text("heartbeat_ms = 100\nhang_timeout_ms = 150\n")
    assert_usage_error(run("start"), "hang_timeout_ms", "two heartbeats")


def test_bad_environment_value_names_the_environment(project, monkeypatch):
    monkeypatch.setenv("HARUNNER_SLOTS", "0")
    assert_usage_error(run("status"), "environment", "slots")


def test_missing_explicit_config_file(project):
    assert_usage_error(run("status", "--config", "nope.toml"), "nope.toml")


def test_too_long_socket_path_is_refused_at_start(project):
    deep = project / ("d" * 120)
    assert_usage_error(run("start", "--state-dir", str(deep)), "longer than", "state_dir")


def test_cancel_of_an_unknown_job(project):
    assert_usage_error(run("cancel", "no-such-job"), "no-such-job")


def test_status_and_stop_without_a_cluster(project):
    status = run("status")
    assert status.exit_code == 0 and "no runner heard" in status.stdout
    stop = run("stop")
    assert stop.exit_code == 5 and "no cluster is running" in stop.stderr


def test_status_json_lists_jobs(project):
    run("submit", "itjobs.ticker")
    result = run("status", "--json")
    assert result.exit_code == 0
    import json

    data = json.loads(result.stdout)
    assert [job["state"] for job in data["jobs"]] == ["pending"]


def test_a_real_process_gets_exit_code_2_and_no_traceback(project):
    result = subprocess.run([sys.executable, "-m", "harunner", "submit", "nope.job"],
                            capture_output=True, text=True, cwd=project, timeout=60)
    assert result.returncode == 2
    assert "nope.job" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_command_is_a_usage_error(project):
    result = subprocess.run([sys.executable, "-m", "harunner", "frobnicate"],
                            capture_output=True, text=True, cwd=project, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr

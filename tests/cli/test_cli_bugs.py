"""One test per bug of issue 8 that needs no cluster; each failed on the code before the fix."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import filelock
import pytest
from typer.testing import CliRunner

from harunner import config as config_module
from harunner.cli.app import app
from harunner.store import JobState, Owner, Store
from harunner.store.layout import Layout

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def one_line_usage_error(result, *fragments: str) -> None:
    stderr = result.stderr.strip()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "\n" not in stderr and "Traceback" not in result.output, stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


def test_submit_wait_on_a_job_cancelled_meanwhile_exits_3(cli_project):
    store = Store(cli_project / "state")

    def cancel_when_submitted() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            jobs = store.list_jobs()
            if jobs:
                store.cancel(jobs[0].job_id)
                return
            time.sleep(0.01)

    canceller = threading.Thread(target=cancel_when_submitted)
    canceller.start()
    result = run("submit", "clijobs.count", "--wait")
    canceller.join()
    assert result.exit_code == 3, result.output
    assert "cancelled" in result.stderr and "null" not in result.stdout


@pytest.mark.parametrize("command", [["submit", "clijobs.count"], ["status"], ["start"]])
@pytest.mark.parametrize("where", ["under_file", "proc"])
def test_unusable_state_dir_is_one_line_and_exit_2(cli_project, command, where):
    blocker = cli_project / "a-file"
    blocker.write_text("")
    state = {"under_file": blocker / "state", "proc": Path("/proc/harunner-state")}[where]
    result = run(*command, "--state-dir", str(state))
    one_line_usage_error(result, str(state), "state_dir")
    assert "starting" not in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="drops privileges to nobody with setpriv")
@pytest.mark.parametrize("command", [["submit", "clijobs.count"], ["status"], ["start"]])
def test_state_dir_without_permission_is_one_line_and_exit_2(cli_project, command):
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    probe = subprocess.run([*as_nobody, "-c", "import typer, harunner"], capture_output=True,
                           cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    if probe.returncode != 0:
        pytest.skip("uid 65534 cannot read this interpreter's packages (a 0700 virtualenv)")
    state = cli_project / "private"
    state.mkdir(mode=0o700)
    os.chmod(cli_project, 0o755)
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
         "harunner", *command, "--state-dir", str(state)],
        capture_output=True, text=True, cwd=cli_project, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(state) in lines[0] and "permission" in lines[0], lines


def test_argument_not_fitting_its_annotation_is_refused_and_nothing_stored(cli_project):
    result = run("submit", "clijobs.count", "--arg", "to=abc")
    one_line_usage_error(result, "to='abc'", "int")
    assert Store(cli_project / "state").list_jobs() == []


def test_text_parameter_keeps_what_was_written(cli_project):
    result = run("submit", "clijobs.count", "--arg", "note=123")
    assert result.exit_code == 0, result.output
    job = Store(cli_project / "state").get(result.stdout.strip())
    assert job.args == {"note": "123"}


def test_submit_wait_with_no_runner_says_so_and_times_out_with_4(cli_project):
    started = time.monotonic()
    result = run("submit", "clijobs.count", "--wait", "--timeout", "0.5")
    assert result.exit_code == 4, result.output
    assert "no runner is up" in result.stderr
    assert time.monotonic() - started < 30


def test_a_foreign_harunner_variable_warns_and_goes_on(cli_project):
    result = subprocess.run([sys.executable, "-m", "harunner", "submit", "clijobs.count"],
                            capture_output=True, text=True, cwd=cli_project, timeout=60,
                            env={**os.environ, "HARUNNER_BIN": "/opt/bin"})
    assert result.returncode == 0, result.stderr
    assert "HARUNNER_BIN" in result.stderr and "ignoring" in result.stderr


def test_a_misspelt_option_variable_is_still_refused(cli_project):
    one_line_usage_error(run("status", env={"HARUNNER_SLOT": "3"}), "HARUNNER_SLOTS")


def test_start_refuses_a_state_dir_in_use_before_saying_it_starts(cli_project):
    config = config_module.load(None, {})
    Layout(config.state_path).run.mkdir(parents=True)
    lock = filelock.FileLock(str(Layout(config.state_path).supervisor_lock), thread_local=False)
    with lock.acquire(timeout=1):
        result = run("start")
    assert result.exit_code == 1 and "in use" in result.stderr
    assert "starting" not in result.output


def test_start_says_1_runner_slot_and_warns_that_there_is_no_standby(cli_project):
    from harunner.cli.start import plan

    lines = plan(config_module.load(None, {"slots": 1}))
    assert lines[0].startswith("starting 1 runner slot on ")
    assert "no standby" in lines[1]
    assert plan(config_module.load(None, {}))[0].startswith("starting 3 runner slots")
    assert len(plan(config_module.load(None, {}))) == 1


def test_cancel_of_a_succeeded_job_reads_well(cli_project):
    store = Store(cli_project / "state")
    job = store.submit("clijobs.count", {}).job_id
    store.assign(job, Owner(0, 1), 0)
    store.finish(job, 1, result=1)
    result = run("cancel", job)
    assert result.exit_code == 1 and "has already succeeded" in result.stderr
    assert store.get(job).state is JobState.SUCCEEDED


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_readme_job_example_runs_as_written(tmp_path):
    block = python_blocks(REPO / "README.md")[0]
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(b"x" * 10)

    class FakeContext:
        state: dict = {}
        checkpoints: list = []

        def checkpoint(self, state):
            self.checkpoints.append(state)

        def progress(self, done, total=None, message=None):
            pass

    jobs = [v for v in namespace.values() if getattr(v, "job_spec", None)]
    assert len(jobs) == 1
    result = jobs[0](FakeContext(), folder=str(folder))
    assert result["count"] == 2


def test_readme_says_its_demo_output_is_an_excerpt_and_corrects_rq():
    text = (REPO / "README.md").read_text()
    assert "excerpt" in text
    assert "re-queues a dead worker's job after minutes" not in text
    assert "FailedJobRegistry" in text or "failed registry" in text


def test_jobs_md_says_the_generation_grows_on_retry_and_cancel_too():
    row = next(line for line in (REPO / "docs" / "jobs.md").read_text().splitlines()
               if line.startswith("| `ctx.generation`"))
    assert "retry" in row and "cancel" in row

"""The Python client against a real cluster: submit, result, failure, cancel, retry."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "cli"))

from cli_clusters import cli_cluster  # noqa: E402, F401
from integration.conftest import poll  # noqa: E402

from harunner import Cancelled, Client, JobFailed  # noqa: E402
from harunner.store import JobState  # noqa: E402

REPO = TESTS.parent

pytestmark = pytest.mark.integration


@pytest.fixture
def client(cli_cluster) -> Client:  # noqa: F811 - the fixture imported above
    return Client(config=cli_cluster().config_path)


def test_submit_and_result(client):
    handles = client.submit_many([("clijobs.count", {"to": n}) for n in (3, 4)])
    assert [h.result(timeout=60)["count"] for h in handles] == [3, 4]
    progress = handles[0].progress()
    assert progress is not None and (progress.done, progress.total) == (3, 3)


def test_failure_then_retry(client):
    handle = client.submit("clijobs.boom", message="bad input")
    with pytest.raises(JobFailed, match="bad input") as caught:
        handle.result(timeout=60)
    assert caught.value.error.startswith("ValueError: bad input")
    handle.retry()
    poll(lambda: handle.record().generation == 3 and handle.state() is JobState.FAILED, 60,
         "the retried attempt to fail again")


def test_cancel_a_running_job(client):
    handle = client.submit("clijobs.wait_forever")
    poll(lambda: handle.state() is JobState.RUNNING, 60, "the job to run")
    handle.cancel()
    with pytest.raises(Cancelled):
        handle.result(timeout=60)
    assert [r.job_id for r in client.jobs(state="cancelled")] == [handle.id]


def test_the_example_of_docs_jobs_md_runs(tmp_path):
    text = (REPO / "docs" / "jobs.md").read_text()
    block = re.findall(r"```python\n(# demo_client.py.*?)```", text, re.S)[0]
    (tmp_path / "demo_client.py").write_text(block)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "demo_client.py"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pending" in result.stdout and "no runner is up" in result.stdout

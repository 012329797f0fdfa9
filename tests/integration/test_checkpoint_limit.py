"""A cluster's `max_checkpoint_bytes` reaches its job workers (runner -> forkserver -> worker).

The runner hands the configured limit to its workers in the environment; a
job that checkpoints more than it fails its attempt with the error naming
the limit and the key, and its last acknowledged checkpoint stays the newest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harunner import config
from harunner.api.client import Client
from harunner.store import JobState

from .conftest import HERE

pytestmark = pytest.mark.integration
LIMIT_JOBS = HERE.parent / "executor" / "jobs_for_tests"


def test_the_configured_limit_fails_a_job_whose_checkpoint_is_bigger(make_cluster):
    cluster = make_cluster(max_checkpoint_bytes=4096)
    text = cluster.config_path.read_text().replace(
        f'jobs = ["{HERE / "itjobs"}"]', f'jobs = ["{HERE / "itjobs"}", "{LIMIT_JOBS}"]')
    Path(cluster.config_path).write_text(text)
    cluster.config = config.load(str(cluster.config_path), env={})
    cluster.start()
    client = Client(config=cluster.config)
    small = client.submit("limit_jobs.big_checkpoint", size=3000).id
    big = client.submit("limit_jobs.big_checkpoint", size=5000).id
    assert cluster.finished(small).state is JobState.SUCCEEDED
    failed = cluster.finished(big)
    assert failed.state is JobState.FAILED and failed.attempts == 1
    assert "CheckpointTooLargeError" in failed.error and "4,096 bytes" in failed.error
    assert "max_checkpoint_bytes" in failed.error
    assert cluster.store.read_checkpoint(big).state == {"step": 1}

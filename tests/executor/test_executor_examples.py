"""The shipped example jobs under a real executor: retries, and resumption after a lost owner."""

from __future__ import annotations

import hashlib
import sys

from executor_harness import EXAMPLE_JOBS, OTHER, wait_for

from harunner.api.discovery import find
from harunner.store import JobState


def policy(name: str) -> dict:
    spec = find([EXAMPLE_JOBS], name)
    return {"retries": spec.retries, "backoff": spec.backoff, "timeout": spec.timeout}


def take_over_after(harness, record, done):
    """Run `record` until `done(checkpoint state)`, then kill it and hand it to OTHER."""
    harness.executor.start(record)
    wait_for(lambda: (c := harness.store.read_checkpoint(record.job_id)) and done(c.state), 20)
    assert harness.executor.kill(record.job_id).outcome == "killed"
    return harness.store.take_over(record.job_id, record.generation + 1, OTHER)


def test_counter_resumes_from_its_checkpoint(harness):
    record = harness.submit("examples.counter", {"to": 40, "delay": 0.01})
    taken = take_over_after(harness, record, lambda state: state["i"] >= 5)
    settled = harness.run(taken)
    assert settled.outcome == "succeeded"
    result = harness.store.get(record.job_id).result
    assert result["count"] == 40 and result["resumed_from"] >= 5
    assert result["resumes"] == 1 and result["generations"] == [1, 2]


def test_flaky_fails_once_then_succeeds_on_retry(harness):
    record = harness.submit("examples.flaky", {}, **policy("examples.flaky"))
    assert harness.run(record).outcome == "retrying"
    pending = harness.store.get(record.job_id)
    assert pending.not_before - pending.updated_at < 0.15
    assert harness.run(harness.reassign(record.job_id)).outcome == "succeeded"
    final = harness.store.get(record.job_id)
    assert final.state is JobState.SUCCEEDED and final.result == {"attempt": 2}


def test_digest_folder_resumes_and_matches_an_uninterrupted_run(harness, tmp_path):
    folder = tmp_path / "data"
    for index in range(30):
        path = folder / f"d{index % 3}" / f"file{index:02}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([index]) * (1000 + index))
    files = sys.modules[find([EXAMPLE_JOBS], "files.digest_folder").module]
    expected = hashlib.sha256(b"").hexdigest()
    for name in files.list_files(folder):
        expected = files.chain(expected, name, files.file_digest(folder / name))
    record = harness.submit("files.digest_folder", {"folder": str(folder)})
    taken = take_over_after(harness, record, lambda state: state["index"] >= 3)
    assert harness.run(taken).outcome == "succeeded"
    assert harness.store.get(record.job_id).result == {"files": 30, "digest": expected}
    uninterrupted = harness.submit("files.digest_folder", {"folder": str(folder)})
    assert harness.run(uninterrupted).outcome == "succeeded"
    assert harness.store.get(uninterrupted.job_id).result["digest"] == expected

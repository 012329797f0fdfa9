"""Checkpoints in real workers: oversized ones fail the job, unreadable ones are loud.

- A checkpoint above `max_checkpoint_bytes` (16 MiB by default) is refused
  inside the job: its attempt fails as the job's own error (counted), and the
  last acknowledged checkpoint is still the newest file.
- A newest checkpoint that cannot be read back (corrupt, or larger than the
  store reads) is skipped loudly: a WARNING in the job's log, a
  `checkpoint_unreadable` event naming the file and the checkpoint used
  instead, and `harunner show` says so. When no checkpoint is readable the
  attempt fails with the error saying what to do; it is not re-run for ever.
"""

from __future__ import annotations

import os

from harunner.api.client import Client
from harunner.cli.inspect import checkpoint_line, show_text
from harunner.store import JobState, job_files
from harunner.store.durable import MAX_PAYLOAD
from harunner.store.events import read_events

MIB = 1024 * 1024


def test_a_checkpoint_above_the_limit_fails_the_attempt_and_writes_nothing(harness):
    record = harness.submit("limit_jobs.big_checkpoint", {"size": 17 * MIB}, retries=0)
    settled = harness.run(record, timeout=60)
    assert settled.outcome == "failed"
    final = harness.store.get(record.job_id)
    assert (final.state, final.attempts) == (JobState.FAILED, 1)
    assert "CheckpointTooLargeError" in final.error and "max_checkpoint_bytes" in final.error
    assert "16,777,216 bytes" in final.error
    assert harness.store.read_checkpoint(record.job_id).state == {"step": 1}
    assert job_files.checkpoint_seqs(harness.store.layout.job_folder(record.job_id)) == [1]


def _with_checkpoints(harness, count: int):
    record = harness.submit("limit_jobs.report_state", retries=0)
    for step in range(1, count + 1):
        harness.store.write_checkpoint(record.job_id, record.generation, {"step": step})
    return record


def _unreadable_events(harness, job_id: str) -> list[dict]:
    return [e for e in read_events(harness.store.layout.events)
            if e.get("event") == "checkpoint_unreadable" and e.get("job") == job_id]


def test_a_corrupt_newest_checkpoint_is_skipped_loudly(harness):
    record = _with_checkpoints(harness, 2)
    newest = job_files.checkpoint_path(harness.store.layout.job_folder(record.job_id), 2)
    data = bytearray(newest.read_bytes())
    data[-2] ^= 0x01
    newest.write_bytes(bytes(data))
    client = Client(state_dir=harness.store.root)
    assert "UNREADABLE and skipped: ckpt.000000000002" in checkpoint_line(client, record.job_id)
    assert "resumes from seq 1" in show_text(client, record.job_id)

    settled = harness.run(record)
    assert settled.outcome == "succeeded"
    assert harness.store.get(record.job_id).result == {"state": {"step": 1}, "resumed": True}
    log = harness.store.log_path(record.job_id).read_text()
    assert "WARNING checkpoint ckpt.000000000002 is unreadable and was skipped" in log
    assert "checksum mismatch" in log and "resumes from the older checkpoint 1" in log
    [event] = _unreadable_events(harness, record.job_id)
    assert event["file"] == str(newest) and event["resumes_from"] == 1
    assert "checksum mismatch" in event["error"]


def test_a_newest_checkpoint_too_big_to_read_is_skipped_loudly(harness):
    record = _with_checkpoints(harness, 1)
    folder = harness.store.layout.job_folder(record.job_id)
    with open(job_files.checkpoint_path(folder, 2), "wb") as handle:
        handle.truncate(MAX_PAYLOAD + 4096)  # sparse: an acknowledged 70 MB file of old
    settled = harness.run(record)
    assert settled.outcome == "succeeded"
    assert harness.store.get(record.job_id).result == {"state": {"step": 1}, "resumed": True}
    [event] = _unreadable_events(harness, record.job_id)
    assert "larger than any state file" in event["error"] and event["resumes_from"] == 1
    assert "is unreadable and was skipped" in harness.store.log_path(record.job_id).read_text()


def test_no_readable_checkpoint_fails_the_attempt_with_what_to_do(harness):
    record = _with_checkpoints(harness, 1)
    only = job_files.checkpoint_path(harness.store.layout.job_folder(record.job_id), 1)
    os.truncate(only, 10)
    client = Client(state_dir=harness.store.root)
    assert checkpoint_line(client, record.job_id).startswith("UNREADABLE: ")
    settled = harness.run(record, timeout=10)
    assert settled.outcome == "failed"
    final = harness.store.get(record.job_id)
    assert final.state is JobState.FAILED
    assert "no valid checkpoint" in final.error and "remove the checkpoint files" in final.error
    [event] = _unreadable_events(harness, record.job_id)
    assert event["resumes_from"] is None and "truncated" in event["error"]

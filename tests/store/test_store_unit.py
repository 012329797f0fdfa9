"""Unit tests of the store on real files: transitions, fencing, submit, listing, disk errors."""

from __future__ import annotations

import errno
import gc
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harunner.errors import (
    DiskFullError,
    DurabilityError,
    FencedError,
    JobArgumentError,
    StaleTransitionError,
    StoreError,
    UnknownJobError,
)
from harunner.store import (
    SCHEDULER_JOB,
    TRANSITIONS,
    JobRecord,
    JobState,
    Owner,
    Progress,
    Store,
    Submission,
    advance,
    job_files,
)

A, B = Owner(0, 1), Owner(1, 1)


def test_submit_is_durable_pending_and_private(store: Store) -> None:
    record = store.submit("jobs.demo", {"n": 1}, retries=2, backoff=0.5, timeout=60.0)
    assert (record.state, record.generation, record.attempts) == (JobState.PENDING, 0, 0)
    assert Store(store.root).get(record.job_id) == record
    assert store.layout.database.is_file()
    assert store.layout.database.stat().st_mode & 0o777 == 0o600
    assert (store.root / "run").stat().st_mode & 0o777 == 0o700
    assert store.root.stat().st_mode & 0o777 == 0o700


def test_submit_refuses_arguments_that_are_not_json(store: Store) -> None:
    with pytest.raises(JobArgumentError, match="not JSON"):
        store.submit("jobs.demo", {"when": object()})


def test_explicit_job_id_is_idempotent(store: Store) -> None:
    first = store.submit("scheduler", {}, job_id=SCHEDULER_JOB)
    assert store.submit("scheduler", {"other": 1}, job_id=SCHEDULER_JOB) == first


def test_job_ids_sort_by_creation_and_are_short() -> None:
    ids = [job_files.new_job_id(t, b"\x00\x01") for t in (1.0, 1795000000.0, 1795000000.001)]
    assert ids == sorted(ids) and all(len(job_id) == 13 for job_id in ids)


def test_reading_an_empty_state_directory_creates_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "absent")
    assert store.list_jobs() == []
    with pytest.raises(UnknownJobError, match="harunner status"):
        store.get("nope-0000")
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("job_id", ["../etc", "a/b", "", ".", "x" * 101])
def test_bad_job_ids_are_unknown(store: Store, job_id: str) -> None:
    with pytest.raises(UnknownJobError):
        store.get(job_id)
    with pytest.raises(UnknownJobError):
        store.cancel(job_id)


def test_list_jobs_oldest_first_filters_and_skips_corrupt(store: Store) -> None:
    clock = iter(range(100, 200))
    store.clock = lambda: float(next(clock))
    ids = [store.submit("jobs.demo", {"i": i}).job_id for i in range(3)]
    store.assign(ids[1], A, 0)
    with sqlite3.connect(store.layout.database) as conn:
        conn.execute("UPDATE jobs SET args='garbage' WHERE job_id=?", (ids[2],))
    assert [r.job_id for r in store.list_jobs()] == ids[:2]
    assert [r.job_id for r in store.list_jobs({JobState.RUNNING})] == [ids[1]]
    assert [r.job_id for r in store.list_jobs({JobState.PENDING})] == [ids[0]]
    assert store.corrupt_seen == 2  # reported on each listing that met it


def test_assign_is_a_compare_and_set(store: Store) -> None:
    job = store.submit("jobs.demo", {}).job_id
    record = store.assign(job, A, 0)
    assert (record.state, record.generation, record.owner, record.attempts) == (
        JobState.RUNNING, 1, A, 1)
    with pytest.raises(StaleTransitionError, match="expected pending@0, found running@1"):
        store.assign(job, B, 0)
    assert store.get(job).owner == A


def test_take_over_raises_generation_and_is_idempotent(store: Store, running: str) -> None:
    record = store.take_over(running, 3, B)
    assert (record.generation, record.owner, record.attempts) == (3, B, 1)
    assert store.take_over(running, 3, B) == record
    for generation, owner in ((3, A), (2, B), (1, A)):
        with pytest.raises(StaleTransitionError, match="cannot take it over"):
            store.take_over(running, generation, owner)


def test_take_over_refuses_jobs_that_are_not_running(store: Store, running: str) -> None:
    pending = store.submit("jobs.demo", {}).job_id
    with pytest.raises(StaleTransitionError, match="pending"):
        store.take_over(pending, 1, A)
    store.finish(running, 1, result=1)
    with pytest.raises(StaleTransitionError, match="succeeded"):
        store.take_over(running, 2, A)


def test_checkpoints_are_fenced_both_ways(store: Store, running: str) -> None:
    assert store.write_checkpoint(running, 1, {"done": 1}) == 1
    store.take_over(running, 2, B)
    with pytest.raises(FencedError, match="a newer owner has taken this job over") as fenced:
        store.write_checkpoint(running, 1, {"done": 2})
    assert "generation 1" in str(fenced.value) and "generation 2" in str(fenced.value)
    with pytest.raises(StaleTransitionError, match="never granted"):
        store.write_checkpoint(running, 3, {"done": 2})
    checkpoint = store.read_checkpoint(running)
    assert checkpoint is not None and (checkpoint.seq, checkpoint.state) == (1, {"done": 1})


def test_checkpoint_keeps_newest_and_previous(store: Store, running: str) -> None:
    for done in range(5):
        store.write_checkpoint(running, 1, {"done": done})
    folder = store.root / "jobs" / running
    assert job_files.checkpoint_seqs(folder) == [4, 5]
    checkpoint = store.read_checkpoint(running)
    assert checkpoint is not None
    assert (checkpoint.seq, checkpoint.generation, checkpoint.state) == (5, 1, {"done": 4})


def test_checkpoint_state_must_be_a_json_object(store: Store, running: str) -> None:
    with pytest.raises(StoreError, match="not JSON-serialisable"):
        store.write_checkpoint(running, 1, {"x": {1, 2}})
    with pytest.raises(StoreError, match="must be a dict"):
        store.write_checkpoint(running, 1, [1, 2])  # type: ignore[arg-type]


def test_no_checkpoint_yet_reads_none(store: Store, running: str) -> None:
    assert store.read_checkpoint(running) is None


def test_finish_success_and_failure(store: Store, running: str) -> None:
    record = store.finish(running, 1, result={"count": 3})
    assert (record.state, record.result, record.error) == (JobState.SUCCEEDED, {"count": 3}, None)
    with pytest.raises(StaleTransitionError, match="succeeded, not running"):
        store.write_checkpoint(running, 1, {})
    other = store.submit("jobs.demo", {}).job_id
    store.assign(other, A, 0)
    assert store.finish(other, 1, error="boom").state is JobState.FAILED


def test_finish_with_a_result_that_is_not_json_fails_the_job(store: Store, running: str) -> None:
    record = store.finish(running, 1, result=object())
    assert record.state is JobState.FAILED
    assert record.error is not None and record.error.startswith("result is not JSON-serialisable")


def test_finish_with_retry_goes_pending_and_next_assign_raises_generation(
        store: Store, running: str) -> None:
    record = store.finish(running, 1, error="flaky", retry_at=1234.5)
    assert (record.state, record.generation, record.not_before, record.owner) == (
        JobState.PENDING, 1, 1234.5, None)
    with pytest.raises(StaleTransitionError, match="pending, not running"):
        store.write_checkpoint(running, 1, {})
    record = store.assign(running, B, 1)
    assert (record.generation, record.attempts, record.error) == (2, 2, "flaky")


def test_finish_is_fenced(store: Store, running: str) -> None:
    store.take_over(running, 2, B)
    with pytest.raises(FencedError):
        store.finish(running, 1, result=1)
    assert store.get(running).state is JobState.RUNNING


def test_cancel_fences_the_running_owner(store: Store, running: str) -> None:
    record = store.cancel(running)
    assert (record.state, record.generation) == (JobState.CANCELLED, 2)
    with pytest.raises(FencedError):
        store.write_checkpoint(running, 1, {})
    with pytest.raises(FencedError):
        store.set_progress(running, 1, Progress(1))
    with pytest.raises(StaleTransitionError, match="already cancelled"):
        store.cancel(running)


def test_cancel_a_pending_job(store: Store) -> None:
    job = store.submit("jobs.demo", {}).job_id
    assert store.cancel(job).state is JobState.CANCELLED
    with pytest.raises(StaleTransitionError):
        store.assign(job, A, 1)


def test_progress_is_fenced_and_readable(store: Store, running: str) -> None:
    assert store.read_progress(running) is None
    store.set_progress(running, 1, Progress(3, 10, "resizing"))
    assert store.read_progress(running) == Progress(3, 10, "resizing")
    with pytest.raises(StaleTransitionError):
        store.set_progress(running, 2, Progress(4))
    (store.root / "jobs" / running / "progress").write_bytes(b"torn")
    assert store.read_progress(running) is None


def test_log_path(store: Store, running: str) -> None:
    assert store.log_path(running) == store.root / "jobs" / running / "job.log"


def test_every_edge_of_the_table_and_no_other() -> None:
    record = JobRecord(job_id="j", name="n", args={}, state=JobState.PENDING)
    for source in JobState:
        for target in JobState:
            start = JobRecord(**{**record.__dict__, "state": source})
            if target in TRANSITIONS[source]:
                assert advance(start, target, now=0.0, note="t").state is target
            else:
                with pytest.raises(StaleTransitionError):
                    advance(start, target, now=0.0, note="t")


def test_history_records_each_transition(store: Store, running: str) -> None:
    store.take_over(running, 2, B)
    history = store.get(running).history
    assert [entry.split(" ", 1)[1] for entry in history] == [
        "pending@0 submitted", "running@1 assigned to slot 0/incarnation 1",
        "running@2 taken over by slot 1/incarnation 1"]


def _fail_with(code: int):  # noqa: ANN202
    def fail(*_args: object) -> None:
        raise OSError(code, os.strerror(code))
    return fail


def test_full_disk_keeps_the_old_checkpoint(store: Store, running: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store.write_checkpoint(running, 1, {"done": 1})
    with monkeypatch.context() as patch:
        patch.setattr(os, "write", _fail_with(errno.ENOSPC))
        with pytest.raises(DiskFullError, match="previous version is intact"):
            store.write_checkpoint(running, 1, {"done": 2})
    checkpoint = store.read_checkpoint(running)
    assert checkpoint is not None and checkpoint.state == {"done": 1}
    assert not [name for name in os.listdir(store.root / "jobs" / running) if ".tmp" in name]


def test_full_disk_keeps_the_old_record(store: Store, running: str) -> None:
    conn = store._db.connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")  # SQLite sees a full disk past this size
    with pytest.raises(DiskFullError, match="previous state is intact"):
        store.finish(running, 1, result={"big": "x" * 200_000})
    with pytest.raises(DiskFullError):
        store.submit_many([Submission("jobs.demo", {"pad": "y" * 5000}) for _ in range(20)])
    record = store.get(running)
    assert (record.state, record.generation) == (JobState.RUNNING, 1)
    assert [r.job_id for r in store.list_jobs()] == [running]
    conn.execute("PRAGMA max_page_count=1073741823")
    assert store.finish(running, 1, result=1).state is JobState.SUCCEEDED


class _FailingCommit:
    """A connection whose COMMIT fails as a failed fsync does (SQLITE_IOERR_FSYNC)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT":
            error = sqlite3.OperationalError("disk I/O error")
            error.sqlite_errorcode = 1034  # type: ignore[attr-defined]
            raise error
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def test_failed_commit_fsync_raises_durability_error_and_rolls_back(
        store: Store, running: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = store._db.connection()
    monkeypatch.setattr(store._db, "connection", lambda: _FailingCommit(real))
    with pytest.raises(DurabilityError, match="must stop"):
        store.take_over(running, 2, B)
    with pytest.raises(DurabilityError):
        store.submit("jobs.demo", {})
    assert not issubclass(DurabilityError, StoreError)
    monkeypatch.undo()
    assert store.get(running).generation == 1
    assert [r.job_id for r in store.list_jobs()] == [running]


def test_failed_fsync_raises_and_keeps_the_old_file(store: Store, running: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store.write_checkpoint(running, 1, {"done": 1})
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", _fail_with(errno.EIO))
        with pytest.raises(DurabilityError, match="must stop"):
            store.write_checkpoint(running, 1, {"done": 2})
    checkpoint = store.read_checkpoint(running)
    assert checkpoint is not None and checkpoint.state == {"done": 1}
    assert job_files.checkpoint_seqs(store.root / "jobs" / running) == [1]


def test_network_file_systems_are_recognised() -> None:
    mountinfo = ("22 1 8:1 / / rw - ext4 /dev/vda rw\n"
                 "40 22 0:50 / /mnt/share rw - nfs4 server:/x rw\n")
    assert job_files.file_system_type(Path("/mnt/share/state"), mountinfo) == "nfs4"
    assert job_files.file_system_type(Path("/mnt/shared"), mountinfo) == "ext4"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root and mount rights; skipped otherwise)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        gc.collect()  # closes the database connections of stores the test dropped
        subprocess.run(["umount", str(mount)], check=True)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def test_a_really_full_disk_keeps_the_old_checkpoint(tiny_disk: Path) -> None:
    store = Store(tiny_disk / "state")
    job = store.submit("jobs.demo", {}).job_id
    store.assign(job, A, 0)
    store.write_checkpoint(job, 1, {"done": 1})
    filler = _fill(tiny_disk)
    with pytest.raises(DiskFullError, match="previous version is intact"):
        store.write_checkpoint(job, 1, {"done": 2, "pad": "x" * 8192})
    checkpoint = store.read_checkpoint(job)
    assert checkpoint is not None and checkpoint.state == {"done": 1}
    filler.unlink()
    assert store.write_checkpoint(job, 1, {"done": 2}) == 2
    store.close()


def test_a_really_full_disk_refuses_a_submission_and_keeps_the_jobs(tiny_disk: Path) -> None:
    store = Store(tiny_disk / "state")
    first = store.submit("jobs.demo", {})
    filler = _fill(tiny_disk)
    with pytest.raises(DiskFullError):
        store.submit_many([Submission("jobs.demo", {"pad": "z" * 4000}) for _ in range(100)])
    assert [r.job_id for r in Store(tiny_disk / "state").list_jobs()] == [first.job_id]
    filler.unlink()
    assert len(store.submit_many([Submission("jobs.demo", {})] * 3)) == 3
    store.close()

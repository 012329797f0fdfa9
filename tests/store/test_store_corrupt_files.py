"""Corrupt state files: every torn, flipped, misdirected or misplaced checkpoint is detected,
reported, and the previous good version is used; with no good version, `CorruptFileError`. A
damaged job row is reported and skipped; a damaged job database is reported clearly and left
as it is (never reset).

Catches: a reader without checksum, header, job-id or seq checks; one that follows symlinks;
a writer that reuses the seq of a corrupt newest file; a row decoder that trusts its columns;
a store that recreates a database it cannot read.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
from pathlib import Path

import pytest

from harunner.errors import CorruptFileError
from harunner.store import Store, Submission, durable, job_files


def _two_checkpoints(store: Store, job: str) -> tuple[Path, bytes]:
    store.write_checkpoint(job, 1, {"value": 1})
    store.write_checkpoint(job, 1, {"value": 2})
    newest = job_files.checkpoint_path(store.root / "jobs" / job, 2)
    return newest, newest.read_bytes()


def _reads_previous(store: Store, job: str) -> bool:
    checkpoint = store.read_checkpoint(job)
    return checkpoint is not None and (checkpoint.seq, checkpoint.state) == (1, {"value": 1})


def test_truncation_at_every_byte_offset(store: Store, running: str) -> None:
    newest, data = _two_checkpoints(store, running)
    for size in range(len(data)):
        newest.write_bytes(data[:size])
        assert _reads_previous(store, running), f"truncated to {size} bytes"
    assert store.corrupt_seen == len(data)


def test_seeded_random_bit_flips(store: Store, running: str) -> None:
    newest, data = _two_checkpoints(store, running)
    rng = random.Random(20260509)
    for case in range(300):
        mangled = bytearray(data)
        for bit in rng.sample(range(len(data) * 8), rng.randint(1, 3)):
            mangled[bit // 8] ^= 1 << (bit % 8)
        newest.write_bytes(bytes(mangled))
        assert _reads_previous(store, running), f"case {case}: {bytes(mangled)!r}"
    assert store.corrupt_seen == 300


def _payload(job: str, seq: int, **changes: object) -> bytes:
    fields = {"job_id": job, "generation": 1, "seq": seq, "state": {"value": 2}, **changes}
    return json.dumps(fields).encode()


def _envelope(job: str) -> bytes:
    return durable.encode(durable.KIND_CHECKPOINT, _payload(job, 2))


CASES = {
    "bad magic": lambda job: b"XXXX" + _envelope(job)[4:],
    "future version": lambda job: _envelope(job)[:4] + bytes([99]) + _envelope(job)[5:],
    "record kind": lambda job: durable.encode(durable.KIND_RECORD, _payload(job, 2)),
    "other job": lambda job: durable.encode(durable.KIND_CHECKPOINT, _payload("other-0000", 2)),
    "seq of another file": lambda job: durable.encode(durable.KIND_CHECKPOINT, _payload(job, 1)),
    "not json": lambda job: durable.encode(durable.KIND_CHECKPOINT, b"{not json"),
    "not an object": lambda job: durable.encode(durable.KIND_CHECKPOINT, b"[1, 2]"),
    "state not a dict": lambda job: durable.encode(durable.KIND_CHECKPOINT,
                                                   _payload(job, 2, state=[2])),
    "generation missing": lambda job: durable.encode(
        durable.KIND_CHECKPOINT, json.dumps({"job_id": job, "seq": 2, "state": {}}).encode()),
    "empty": lambda job: b"",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrong_header_or_payload_is_detected(store: Store, running: str, case: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    newest, _ = _two_checkpoints(store, running)
    newest.write_bytes(CASES[case](running))
    with caplog.at_level(logging.WARNING, logger="harunner.store"):
        assert _reads_previous(store, running)
    assert store.corrupt_seen == 1
    assert newest.name in caplog.text


def test_directory_in_place_of_the_newest_checkpoint(store: Store, running: str) -> None:
    newest, _ = _two_checkpoints(store, running)
    newest.unlink()
    newest.mkdir()
    assert _reads_previous(store, running) and store.corrupt_seen == 1
    assert store.write_checkpoint(running, 1, {"value": 3}) == 3
    assert not newest.exists()


@pytest.mark.parametrize("target", ["ckpt.000000000001", "/etc/hostname"])
def test_symlink_in_place_of_the_newest_checkpoint(store: Store, running: str,
                                                   target: str) -> None:
    newest, _ = _two_checkpoints(store, running)
    newest.unlink()
    newest.symlink_to(target)
    assert _reads_previous(store, running) and store.corrupt_seen == 1


def test_fifo_in_place_of_the_newest_checkpoint_does_not_block(store: Store,
                                                              running: str) -> None:
    newest, _ = _two_checkpoints(store, running)
    newest.unlink()
    os.mkfifo(newest)
    assert _reads_previous(store, running) and store.corrupt_seen == 1


def test_no_good_checkpoint_is_a_clear_error(store: Store, running: str) -> None:
    store.write_checkpoint(running, 1, {"value": 1})
    only = job_files.checkpoint_path(store.root / "jobs" / running, 1)
    only.write_bytes(only.read_bytes()[:-1])
    with pytest.raises(CorruptFileError, match="no valid checkpoint"):
        store.read_checkpoint(running)


def test_corrupt_newest_is_never_resurrected(store: Store, running: str) -> None:
    newest, data = _two_checkpoints(store, running)
    newest.write_bytes(data[:-3])
    assert store.write_checkpoint(running, 1, {"value": 3}) == 3
    folder = store.root / "jobs" / running
    assert job_files.checkpoint_seqs(folder) == [1, 3]
    job_files.checkpoint_path(folder, 3).write_bytes(b"torn")
    assert _reads_previous(store, running)


def test_leftover_temp_files_are_ignored_and_cleaned(store: Store, running: str) -> None:
    store.write_checkpoint(running, 1, {"value": 1})
    folder = store.root / "jobs" / running
    (folder / ".ckpt.000000000002.999.abcd.tmp").write_bytes(b"half")
    assert store.read_checkpoint(running) is not None and store.corrupt_seen == 0
    store.write_checkpoint(running, 1, {"value": 2})
    assert not [name for name in os.listdir(folder) if name.endswith(".tmp")]


def _damage_row(store: Store, job: str, column: str, value: object) -> None:
    """Write `value` into one column of the job's row behind the store's back."""
    with sqlite3.connect(store.layout.database) as conn:
        conn.execute(f"UPDATE jobs SET {column}=? WHERE job_id=?", (value, job))


@pytest.mark.parametrize(("column", "value"), [("args", "{not json"), ("state", "sleeping"),
                                               ("history", "[1, 2]"), ("generation", "x"),
                                               ("owner_incarnation", None)])
def test_a_damaged_row_is_reported_and_skipped(store: Store, running: str, column: str,
                                               value: object) -> None:
    other = store.submit("jobs.demo", {}).job_id
    _damage_row(store, running, column, value)
    with pytest.raises(CorruptFileError, match=f"record of job {running}"):
        store.get(running)
    assert [record.job_id for record in store.list_jobs()] == [other]
    assert store.corrupt_seen == 1
    assert store.changes(0)[0] == [store.get(other)]


def test_a_file_that_is_not_a_database_is_reported_and_never_reset(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.submit("jobs.demo", {})
    Store(tmp_path)._db.close()
    store._db.close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"jobs.db{suffix}").unlink(missing_ok=True)
    garbage = b"this is not a database, it is a shopping list\n" * 200
    store.layout.database.write_bytes(garbage)
    for call in (lambda s: s.get("x-1"), lambda s: s.list_jobs(),
                 lambda s: s.submit("jobs.demo", {})):
        with pytest.raises(CorruptFileError, match="job database is damaged") as caught:
            call(Store(tmp_path))
        assert str(store.layout.database) in str(caught.value)
    assert store.layout.database.read_bytes() == garbage


def test_a_damaged_page_fails_the_integrity_check(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.submit_many([Submission("jobs.demo", {"pad": "x" * 3000}) for _ in range(40)])
    store._db.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = store._db.connection().execute("PRAGMA page_size").fetchone()[0]
    store._db.close()
    data = bytearray(store.layout.database.read_bytes())
    for offset in range(3 * page + 16, 3 * page + 400):
        data[offset] ^= 0x5A
    store.layout.database.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="integrity check failed|job database is damaged"):
        Store(tmp_path).rebuild_index()
    assert store.layout.database.read_bytes() == bytes(data)

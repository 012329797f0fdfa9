"""Corrupt state files: every torn, flipped, misdirected or misplaced file is detected, reported,
and the previous good version is used; with no good version, `CorruptFileError`.

Catches: a reader without checksum, header, job-id or seq checks; one that follows symlinks;
a writer that reuses the seq of a corrupt newest file or rotates a corrupt record over the
good previous copy.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import pytest

from harunner.errors import CorruptFileError
from harunner.store import JobState, Owner, Store, durable, job_files


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


def _record(store: Store, job: str) -> Path:
    return store.root / "jobs" / job / "record"


def test_torn_record_at_every_offset_falls_back_to_the_previous(store: Store,
                                                                running: str) -> None:
    data = _record(store, running).read_bytes()
    for size in range(len(data)):
        _record(store, running).write_bytes(data[:size])
        record = store.get(running)
        assert (record.state, record.generation) == (JobState.PENDING, 0), size
    assert store.corrupt_seen == len(data)


def test_record_of_another_job_and_flipped_bits(store: Store, running: str) -> None:
    other = store.submit("jobs.demo", {}).job_id
    _record(store, running).write_bytes(_record(store, other).read_bytes())
    assert store.get(running).state is JobState.PENDING and store.corrupt_seen == 1
    rng = random.Random(7)
    good = (store.root / "jobs" / running / "record.prev").read_bytes()
    for _ in range(50):
        mangled = bytearray(good)
        mangled[rng.randrange(len(good))] ^= 1 << rng.randrange(8)
        _record(store, running).write_bytes(bytes(mangled))
        assert store.get(running).generation == 0


def test_missing_record_with_a_previous_copy_falls_back(store: Store, running: str) -> None:
    _record(store, running).unlink()
    assert store.get(running).state is JobState.PENDING and store.corrupt_seen == 1


def test_a_write_after_a_corrupt_record_keeps_the_good_previous(store: Store,
                                                                running: str) -> None:
    _record(store, running).write_bytes(b"garbage")
    store.assign(running, Owner(1, 1), 0)
    assert store.get(running).generation == 1 and store.get(running).owner == Owner(1, 1)
    _record(store, running).write_bytes(b"garbage again")
    assert store.get(running).state is JobState.PENDING


def test_no_good_record_is_a_clear_error(store: Store) -> None:
    job = store.submit("jobs.demo", {}).job_id
    _record(store, job).write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match="no readable record"):
        store.get(job)
    assert store.list_jobs() == []

"""Crash-point sweep: a child writing checkpoints is killed at every failpoint of the write path.

Each run: a child process writes checkpoints {"value": 1, 2, ...}, printing "ack" after each
`write_checkpoint` returns, and dies (os._exit or SIGKILL) at the K-th hit of one failpoint.
A fresh reader must then see exactly the last acknowledged checkpoint, or the one being
written if the crash came after its rename: never a partial file, never an older one. A
following write must get a seq above every file present.

The same sweep runs over the record's write path (the job database): a child raises the
job's generation with `take_over` again and again and dies just before or just after a
COMMIT; the record read afterwards has exactly the last acknowledged generation, or the next
one if the crash came after the commit.

And over the batches: a child submits, assigns and finishes batches of jobs and dies before
or after a commit, or in the middle of a batch (after its k-th row). Every acknowledged batch
must be there in the acknowledged state; the batch in flight must be absent or whole, never
partly applied, and applied exactly when the crash came after its commit.

Catches: a store that acknowledges before the rename or the commit (reader sees K-2 or
less), renames an unsynced or partial file into place, reuses the seq of a corrupt newest
file, prunes the last good checkpoint before the new one is in place, or commits a batch in
pieces (seen with a mutant that commits after every row: the mid-batch runs fail).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harunner.failpoints import EXIT_CODE
from harunner.store import (
    CHECKPOINT_FAILPOINTS,
    FAILPOINTS,
    RECORD_FAILPOINTS,
    Owner,
    Store,
    Submission,
    job_files,
)

BATCH_POINTS = ("store.db.before_commit", "store.db.after_commit", "store.db.batch_item")

RUNS = 20
BEFORE_RENAME = {"store.checkpoint.before_write", "store.after_temp_write", "store.after_fsync",
                 "store.db.before_commit", "store.db.batch_item"}
BATCH = 7
NEXT_STATE = {None: "pending", "pending": "running", "running": "succeeded"}
ACK_STATE = {"submit": "pending", "assign": "running", "finish": "succeeded"}


def _one_run(children, root: Path, point: str, nth: int) -> str | None:  # noqa: ANN001
    """Crash a writer at the `nth` hit of `point`; a description of what went wrong, or None."""
    store = Store(root)
    job = store.submit("jobs.demo", {}).job_id
    store.assign(job, Owner(0, 1), 0)
    verb = "exit" if nth % 2 else "kill"
    child = children.start("sweep", root, job, 1, nth + 1, failpoints=f"{point}={verb}@{nth}")
    out, err = child.communicate(timeout=60)
    acks = [line.split() for line in out.splitlines() if line.startswith("ack")]
    if child.returncode not in (EXIT_CODE, -9):
        return f"{point}@{nth}: child exited {child.returncode}: {err.strip()[-300:]}"
    last_acked = int(acks[-1][2]) if acks else 0
    expected = last_acked if point in BEFORE_RENAME else last_acked + 1
    return _check_after_crash(Store(root), job, point, nth, last_acked, expected)


def _check_after_crash(reader: Store, job: str, point: str, nth: int, last_acked: int,
                       expected: int) -> str | None:
    checkpoint = reader.read_checkpoint(job)
    value = checkpoint.state["value"] if checkpoint else 0
    where = f"{point}@{nth}: acked {last_acked}"
    if last_acked != nth - 1 or value != expected or reader.corrupt_seen:
        return f"{where}, read {value}, expected {expected}, corrupt seen {reader.corrupt_seen}"
    folder = reader.root / "jobs" / job
    highest = max(job_files.checkpoint_seqs(folder), default=0) if folder.is_dir() else 0
    seq = reader.write_checkpoint(job, 1, {"value": -1})
    after = reader.read_checkpoint(job)
    leftovers = [name for name in os.listdir(folder) if name.endswith(".tmp")]
    if seq <= highest or after is None or after.state != {"value": -1} or leftovers:
        return f"{where}: next write got seq {seq} (files up to {highest}), left {leftovers}"
    return None


@pytest.mark.integration
@pytest.mark.parametrize("point", CHECKPOINT_FAILPOINTS)
def test_crash_at_every_failpoint_keeps_the_last_acknowledged_checkpoint(
        point: str, children, tmp_path: Path) -> None:  # noqa: ANN001
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = list(pool.map(lambda nth: _one_run(children, tmp_path / f"run{nth}",
                                                      point, nth), range(1, RUNS + 1)))
    assert [problem for problem in problems if problem] == []


def _one_record_run(children, root: Path, point: str, nth: int) -> str | None:  # noqa: ANN001
    """Crash a take-over at the `nth` hit of `point`; a description of what went wrong, or None."""
    store = Store(root)
    job = store.submit("jobs.demo", {}).job_id
    store.assign(job, Owner(0, 1), 0)
    verb = "exit" if nth % 2 else "kill"
    child = children.start("takeover", root, job, nth + 1, failpoints=f"{point}={verb}@{nth}")
    out, err = child.communicate(timeout=60)
    acks = [int(line.split()[1]) for line in out.splitlines() if line.startswith("ack")]
    if child.returncode not in (EXIT_CODE, -9):
        return f"{point}@{nth}: child exited {child.returncode}: {err.strip()[-300:]}"
    last_acked = acks[-1] if acks else 1
    expected = last_acked if point in BEFORE_RENAME else last_acked + 1
    reader = Store(root)
    record = reader.get(job)
    if last_acked != nth or record.generation != expected or reader.corrupt_seen:
        return (f"{point}@{nth}: acked {last_acked}, read generation {record.generation}, "
                f"expected {expected}, corrupt seen {reader.corrupt_seen}")
    reader.take_over(job, expected + 1, Owner(2, 1))
    return None if reader.get(job).owner == Owner(2, 1) else f"{point}@{nth}: no progress"


@pytest.mark.integration
@pytest.mark.parametrize("point", RECORD_FAILPOINTS)
def test_crash_at_every_record_failpoint_keeps_the_last_acknowledged_record(
        point: str, children, tmp_path: Path) -> None:  # noqa: ANN001
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = list(pool.map(lambda nth: _one_record_run(children, tmp_path / f"run{nth}",
                                                             point, nth), range(1, RUNS + 1)))
    assert [problem for problem in problems if problem] == []


def _one_batch_run(children, root: Path, point: str, nth: int) -> str | None:  # noqa: ANN001
    """Crash a batch writer at the `nth` hit of `point`; what went wrong, or None."""
    Store(root).init()
    verb = "exit" if nth % 2 else "kill"
    child = children.start("batches", root, BATCH, 50, failpoints=f"{point}={verb}@{nth}")
    out, err = child.communicate(timeout=60)
    if child.returncode not in (EXIT_CODE, -9):
        return f"{point}@{nth}: child exited {child.returncode}: {err.strip()[-300:]}"
    acked: dict[int, str] = {}
    for line in out.splitlines():
        _, op, batch = line.split()
        acked[int(batch)] = ACK_STATE[op]
    reader = Store(root)
    states: dict[int, list[str]] = {}
    for record in reader.list_jobs():
        states.setdefault(record.args["batch"], []).append(record.state.value)
    last = max(acked, default=0)
    in_flight = last + 1 if last == 0 or acked[last] == "succeeded" else last
    for batch in sorted(set(states) | set(acked) | {in_flight}):
        expected = acked.get(batch)
        if batch == in_flight and point not in BEFORE_RENAME:
            expected = NEXT_STATE[expected]
        found = states.get(batch, [])
        want = [expected] * BATCH if expected else []
        if found != want:
            return f"{point}@{nth}: batch {batch} is {found}, expected {want} (acked {acked})"
    if reader.corrupt_seen or len(reader.submit_many([Submission("jobs.demo", {})] * 2)) != 2:
        return f"{point}@{nth}: store unusable after the crash"
    return None


@pytest.mark.integration
@pytest.mark.parametrize("point", BATCH_POINTS)
def test_crash_in_or_around_a_batch_keeps_it_whole(point: str, children,  # noqa: ANN001
                                                   tmp_path: Path) -> None:
    hits = range(1, 2 * RUNS, 2) if point == "store.db.batch_item" else range(1, 10)
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = list(pool.map(lambda nth: _one_batch_run(children, tmp_path / f"run{nth}",
                                                            point, nth), hits))
    assert [problem for problem in problems if problem] == []


def test_the_sweeps_cover_every_failpoint_of_the_store() -> None:
    swept = set(CHECKPOINT_FAILPOINTS) | set(RECORD_FAILPOINTS) | set(BATCH_POINTS)
    assert swept == set(FAILPOINTS)

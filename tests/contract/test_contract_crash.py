"""The contract under real processes: racing owners, and writers SIGKILLed mid-write.

- Four processes race to raise one job's generation: each generation is won by
  one of them at most (catches etcd_no_compare and local_unfenced).
- A child writing checkpoints dies (os._exit or SIGKILL, harunner/failpoints.py)
  at the n-th hit of a point of the write path: a fresh reader sees exactly the
  last acknowledged checkpoint, or the one in flight if the point is after its
  commit; never an older one; the next write is accepted and newer.
- A child submitting, assigning and finishing batches of 7 dies before or after
  a txn, between chunks (etcd, with max_txn_ops 16: chunks of 3 jobs) or after
  the k-th row (local): every acknowledged batch is in its acknowledged state;
  in the batch in flight every chunk (local: the whole batch) is whole, in its
  old state or its new one (catches etcd_split_batches).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from harunner.failpoints import EXIT_CODE
from harunner.store import CHECKPOINT_FAILPOINTS, Owner

pytestmark = pytest.mark.integration

WRITERS = 4
CHECKPOINT_POINTS = {"local": CHECKPOINT_FAILPOINTS,
                     "etcd": ("store.checkpoint.before_write", "store.etcd.before_txn",
                              "store.etcd.after_txn")}
BEFORE_COMMIT = {"store.checkpoint.before_write", "store.after_temp_write", "store.after_fsync",
                 "store.db.before_commit", "store.db.batch_item", "store.etcd.before_txn"}
BATCH_POINTS = {"local": ("store.db.before_commit", "store.db.after_commit",
                          "store.db.batch_item"),
                "etcd": ("store.etcd.before_txn", "store.etcd.after_txn",
                         "store.etcd.between_chunks")}
BATCH, CHUNK, SMALL_TXN = 7, 3, 16  # etcd: (16 - 1) // 5 = 3 submissions, (16 - 1) // 4 = 3 moves
NEXT = {None: "pending", "pending": "running", "running": "succeeded"}
ACKED = {"submit": "pending", "assign": "running", "finish": "succeeded"}


def test_racing_owners_win_each_generation_once(backend, store, children) -> None:  # noqa: ANN001
    job = store.submit("jobs.demo", {}).job_id
    store.assign(job, Owner(99, 1), 0)
    racers = [children.start("race", backend.argv(), job, writer, 2.0)
              for writer in range(WRITERS)]
    wins: Counter[int] = Counter()
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err[-500:]
        wins.update(int(line.split()[1]) for line in out.splitlines())
    assert wins, "no take-over was accepted at all"
    twice = [generation for generation, count in wins.items() if count > 1]
    assert twice == [], f"generations won by two owners: {twice}"
    assert backend.open().get(job).generation == max(wins)


def _checkpoint_run(backend, children, point: str, nth: int) -> str | None:  # noqa: ANN001
    store = backend.open()
    job = store.submit("jobs.demo", {}).job_id
    store.assign(job, Owner(0, 1), 0)
    verb = "exit" if nth % 2 else "kill"
    status, out, err = children.run("sweep", backend.argv(), job, 1, nth + 1,
                                    failpoints=f"{point}={verb}@{nth}")
    if status not in (EXIT_CODE, -9):
        return f"{point}@{nth}: child exited {status}: {err.strip()[-300:]}"
    acks = [line.split() for line in out if line.startswith("ack")]
    last = int(acks[-1][2]) if acks else 0
    expected = last if point in BEFORE_COMMIT else last + 1
    reader = backend.open()
    found = reader.read_checkpoint(job)
    value = found.state["value"] if found else 0
    if last != nth - 1 or value != expected:
        return f"{point}@{nth}: acked {last}, read {value}, expected {expected}"
    highest = found.seq if found else 0
    seq = reader.write_checkpoint(job, 1, {"value": -1})
    if seq <= highest or reader.read_checkpoint(job).state != {"value": -1}:
        return f"{point}@{nth}: the next write got seq {seq} after {highest}"
    return None


def test_a_checkpoint_writer_killed_mid_write_leaves_the_last_acknowledged(
        backend, children) -> None:  # noqa: ANN001
    runs = [(point, nth) for point in CHECKPOINT_POINTS[backend.kind] for nth in range(1, 7)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        problems = list(pool.map(lambda run: _checkpoint_run(backend, children, *run), runs))
    assert [problem for problem in problems if problem] == []


def _batch_run(backend, children, point: str, nth: int) -> str | None:  # noqa: ANN001
    backend = backend.variant(f"run{nth}")
    options = {"max_txn_ops": SMALL_TXN} if backend.kind == "etcd" else {}
    verb = "exit" if nth % 2 else "kill"
    status, out, err = children.run("batches", backend.argv(**options), BATCH, 30,
                                    failpoints=f"{point}={verb}@{nth}")
    if status not in (EXIT_CODE, -9):
        return f"{point}@{nth}: child exited {status}: {err.strip()[-300:]}"
    acked = {int(batch): ACKED[op] for _, op, batch in (line.split() for line in out)}
    states: dict[int, dict[int, str]] = {}
    for record in backend.open().list_jobs():
        states.setdefault(record.args["batch"], {})[record.args["k"]] = record.state.value
    last = max(acked, default=0)
    in_flight = last + 1 if last == 0 or acked[last] == "succeeded" else last
    for batch in sorted(set(states) | set(acked)):
        found = states.get(batch, {})
        if batch != in_flight:
            if found != dict.fromkeys(range(BATCH), acked.get(batch)):
                return f"{point}@{nth}: acknowledged batch {batch} is {found} ({acked})"
            continue
        problem = _in_flight_problem(backend.kind, found, acked.get(batch))
        committed = point not in BEFORE_COMMIT
        if not problem and committed and NEXT[acked.get(batch)] not in found.values():
            problem = "lost a chunk etcd or SQLite had committed"
        if problem:
            return f"{point}@{nth}: batch {batch} in flight {problem}: {found}"
    return None


def _in_flight_problem(kind: str, found: dict[int, str], before: str | None) -> str | None:
    """Why the batch in flight is not whole per chunk (local: as a whole), or None."""
    size = CHUNK if kind == "etcd" else BATCH
    chunks = [range(start, min(start + size, BATCH)) for start in range(0, BATCH, size)]
    for chunk in chunks:
        seen = {found.get(k) for k in chunk}
        if len(seen) != 1 or not seen <= {before, NEXT[before]}:
            return f"has a chunk {list(chunk)} partly applied or in a wrong state {seen}"
    return None


@pytest.mark.parametrize("index", range(3))
def test_a_batch_writer_killed_mid_batch_leaves_whole_chunks(
        backend, children, index: int) -> None:  # noqa: ANN001
    point = BATCH_POINTS[backend.kind][index]
    hits = range(1, 16, 2) if point == "store.db.batch_item" else range(1, 9)
    with ThreadPoolExecutor(max_workers=3) as pool:
        problems = list(pool.map(lambda nth: _batch_run(backend, children, point, nth), hits))
    assert [problem for problem in problems if problem] == []

"""Fencing under stress: real processes race on one job with random generations.

Four writer processes loop: read the job's generation, pick one near it (lower, equal or
higher), raise the job to it with `take_over` if higher, then write checkpoints at it. Each
prints every accepted call with its monotonic start and end time. The invariants:

- every accepted checkpoint has its own seq, and in seq order generations never go down;
- a checkpoint whose call started after another accepted call (take-over or checkpoint) at a
  higher generation had returned was refused (no write below the highest generation at
  that time succeeds), and real-time order agrees with seq order.

The same test runs against deliberately broken stores (defined in store_child.py, test code
only): one that checks the generation *before* taking the lock, one that locks nothing. Both
must be caught.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harunner.store import Owner, Store

WRITERS = 4
SECONDS = 3.0


def _run(children, root: Path, mutant: str) -> tuple[list[tuple], list[tuple], list[str]]:  # noqa: ANN001
    """Race the writers on a fresh job: (accepted checkpoints, take-overs, failed writes)."""
    store = Store(root)
    job = store.submit("jobs.demo", {}).job_id
    store.assign(job, Owner(0, 1), 0)
    started = [children.start("fence", root, job, writer, SECONDS, 1000 + writer,
                              *([mutant] if mutant else [])) for writer in range(WRITERS)]
    acks, takes, errors = [], [], []
    for child in started:
        out, err = child.communicate(timeout=SECONDS + 60)
        assert child.returncode == 0, err
        for line in out.splitlines():
            kind, *fields = line.split()
            if kind == "error":
                errors.append(fields[0])
            else:
                numbers = tuple(float(field) for field in fields)
                (acks if kind == "ack" else takes).append(numbers)
    return acks, takes, errors


def _violations(acks: list[tuple], takes: list[tuple]) -> list[str]:
    """Every breach of the fencing invariants in the logged accepted calls."""
    problems = []
    seqs = [int(seq) for _, seq, _, _ in acks]
    if len(set(seqs)) != len(seqs):
        problems.append("two accepted checkpoints share a seq")
    ordered = sorted(acks, key=lambda ack: ack[1])
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after[0] < before[0]:
            problems.append(f"seq {after[1]:.0f} at generation {after[0]:.0f} follows seq "
                            f"{before[1]:.0f} at generation {before[0]:.0f}")
    granted = sorted([(end, gen) for gen, _, end in takes] +
                     [(end, gen) for gen, _, _, end in acks])
    for generation, seq, start, _ in acks:
        higher = [gen for end, gen in granted if end < start and gen > generation]
        if higher:
            problems.append(f"seq {seq:.0f} accepted at generation {generation:.0f} after "
                            f"generation {max(higher):.0f} was granted")
    return problems


@pytest.mark.integration
def test_writers_racing_on_one_job_never_break_fencing(children, tmp_path: Path) -> None:  # noqa: ANN001
    acks, takes, errors = _run(children, tmp_path / "state", "")
    assert len(acks) >= 50 and len(takes) >= 5, (len(acks), len(takes))
    assert _violations(acks, takes) == [] and errors == []
    final = Store(tmp_path / "state").list_jobs()[0]
    checkpoint = Store(tmp_path / "state").read_checkpoint(final.job_id)
    assert checkpoint is not None and checkpoint.seq == max(int(ack[1]) for ack in acks)
    assert final.generation == max([1, *(int(take[0]) for take in takes)])


@pytest.mark.integration
@pytest.mark.parametrize("mutant", ["fence_outside_lock", "no_lock"])
def test_broken_stores_are_caught(children, tmp_path: Path, mutant: str) -> None:  # noqa: ANN001
    acks, takes, errors = _run(children, tmp_path / "state", mutant)
    assert _violations(acks, takes) or errors, "the broken store went unnoticed"
